//! The durable encodings as today's Concord writes them, byte for byte (issue 11 §1.11): a
//! change that would misread data already on disk or in a Raft log fails here. A new layout
//! takes a new tag (a new entry kind, `REC_FORMAT`, `STORE_FORMAT`) and these bytes must still
//! decode.

use super::*;
use crate::keys::{self, Rec};

/// Little-endian bytes of an i64 / u32 / u64, as the fixtures spell them.
fn i(n: i64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}
fn tag(variant: u32) -> Vec<u8> {
    variant.to_le_bytes().to_vec()
}
fn bytes(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(b);
    v
}
fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// Commands as Raft log entries carry them (after the entry header): bincode 1 with its
/// default options (u32 variant tags, u64 lengths, fixed-width little-endian integers).
#[test]
fn commands_written_today_still_decode() {
    let put = cat(&[
        tag(0),
        bytes(b"k"),
        bytes(b"v"),
        i(5),
        vec![1, 0, 0], // prev_kv, ignore_value, ignore_lease
    ]);
    let delete = cat(&[tag(1), bytes(b"a"), bytes(b"z"), vec![1]]);
    let txn = cat(&[
        tag(2),
        (1u64).to_le_bytes().to_vec(), // one compare
        bytes(b"k"),
        bytes(b""),
        tag(3), // NotEqual
        tag(2), // Mod(..)
        i(9),
        (1u64).to_le_bytes().to_vec(), // one success op
        tag(2),                        // DeleteRange
        bytes(b"k"),
        bytes(b""),
        vec![0],
        (1u64).to_le_bytes().to_vec(), // one failure op
        tag(0),                        // Range
        bytes(b"k"),
        bytes(b"l"),
        i(10),      // limit
        i(0),       // revision
        tag(1),     // Ascend
        tag(2),     // Create
        vec![1, 0], // keys_only, count_only
        i(0),
        i(0),
        i(0),
        i(7), // max_create_revision
    ]);
    let cases: Vec<(Vec<u8>, Command)> = vec![
        (
            put,
            Command::Put(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                lease: 5,
                prev_kv: true,
                ignore_value: false,
                ignore_lease: false,
            }),
        ),
        (
            delete,
            Command::DeleteRange(DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                prev_kv: true,
            }),
        ),
        (
            txn,
            Command::Txn(TxnRequest {
                compare: vec![Compare {
                    key: b"k".to_vec(),
                    range_end: Vec::new(),
                    result: CompareResult::NotEqual,
                    target: CompareTarget::Mod(9),
                }],
                success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                    key: b"k".to_vec(),
                    range_end: Vec::new(),
                    prev_kv: false,
                })],
                failure: vec![RequestOp::Range(RangeRequest {
                    key: b"k".to_vec(),
                    range_end: b"l".to_vec(),
                    limit: 10,
                    sort_order: SortOrder::Ascend,
                    sort_target: SortTarget::Create,
                    keys_only: true,
                    max_create_revision: 7,
                    ..Default::default()
                })],
            }),
        ),
        (cat(&[tag(3), i(42)]), Command::Compact { revision: 42 }),
        (
            cat(&[tag(4), i(0x1234), i(60)]),
            Command::LeaseGrant {
                id: 0x1234,
                ttl: 60,
            },
        ),
        (
            cat(&[tag(5), i(0x1234)]),
            Command::LeaseRevoke { id: 0x1234 },
        ),
        (
            cat(&[
                tag(6),
                (2u64).to_le_bytes().to_vec(),
                i(1),
                i(30),
                i(2),
                i(45),
            ]),
            Command::LeaseCheckpoint {
                checkpoints: vec![(1, 30), (2, 45)],
            },
        ),
        (
            cat(&[
                tag(7),
                vec![1],
                0x0102_0304_0506_0708u64.to_le_bytes().to_vec(),
                tag(1),
            ]),
            Command::Alarm {
                activate: true,
                member: 0x0102_0304_0506_0708,
                alarm: AlarmType::Corrupt,
            },
        ),
    ];
    for (written, expected) in cases {
        assert_eq!(Command::decode(&written).unwrap(), expected);
        assert_eq!(
            expected.encode(),
            written,
            "{expected:?} encodes differently now"
        );
    }
}

/// Records in the `kv` and `history` column families, and lease records.
#[test]
fn records_written_today_still_decode() {
    let written = cat(&[
        vec![1, 0], // REC_FORMAT 1, not a tombstone
        i(3),       // create
        i(8),       // mod
        i(1),       // sub
        i(4),       // version
        i(0x77),    // lease
        b"value".to_vec(),
    ]);
    let rec = Rec::decode(&written).unwrap();
    assert_eq!(
        rec,
        Rec {
            create: 3,
            modr: 8,
            sub: 1,
            version: 4,
            lease: 0x77,
            value: b"value".to_vec(),
            tombstone: false,
        }
    );
    assert_eq!(rec.encode(), written);
    let mut tombstone = written.clone();
    tombstone[1] = 1;
    assert!(Rec::is_tombstone(&tombstone).unwrap());
    // A record of another layout is refused, not misread.
    let mut newer = written;
    newer[0] = 2;
    assert!(Rec::decode(&newer).is_err());

    let lease = cat(&[i(60), i(25)]);
    assert_eq!(keys::decode_lease(&lease).unwrap(), (60, 25));
    assert_eq!(keys::encode_lease(60, 25), lease);
}

/// The store records its layout; a store written before the record existed is layout 1, and
/// one of a newer layout is refused with a clear error instead of being misread.
#[test]
fn the_store_records_its_format_and_refuses_a_newer_one() {
    let (d, s) = open();
    s.apply(1, &[put("a", "1")]).unwrap();
    drop(s);
    let path = d.path().join("db");
    {
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, crate::source::CF_NAMES)
            .unwrap();
        let meta = db.cf_handle("meta").unwrap();
        assert_eq!(
            db.get_cf(meta, b"format").unwrap(),
            Some(STORE_FORMAT.to_le_bytes().to_vec())
        );
        db.put_cf(meta, b"format", 99i64.to_le_bytes()).unwrap();
    }
    let err = Store::open(&path, StoreOptions::default())
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "the store is in format 99; this version of Concord reads format 1"
    );
}

/// The raised alarms' rows in `meta`.
#[test]
fn alarm_rows_written_today_still_parse() {
    let written = cat(&[
        b"alarm/".to_vec(),
        0x0102_0304_0506_0708u64.to_be_bytes().to_vec(),
        vec![0, 0, 0, 1],
    ]);
    let alarm = Alarm {
        member: 0x0102_0304_0506_0708,
        alarm: AlarmType::NoSpace,
    };
    assert_eq!(keys::parse_alarm_key(&written).unwrap(), alarm);
    assert_eq!(keys::alarm_key(&alarm), written);
    let mut unknown = written.clone();
    *unknown.last_mut().unwrap() = 9;
    assert!(keys::parse_alarm_key(&unknown).is_err());
}
