//! Damage to the WAL: a torn tail is cut and the member recovers; a flipped byte in the middle
//! of the log is refused with an error naming the file and offset.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use concord_proto::etcdserverpb as pb;
use concord_tests::Concord;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn put_keys(c: &Concord, prefix: &str, n: usize) {
    rt().block_on(async {
        let mut kv = c.kv().await;
        for i in 0..n {
            kv.put(pb::PutRequest {
                key: format!("{prefix}{i:04}").into_bytes(),
                value: format!("value-{i}").into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    });
}

fn count(c: &Concord, prefix: &str) -> i64 {
    rt().block_on(async {
        let mut kv = c.kv().await;
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().unwrap() += 1;
        let r = kv
            .range(pb::RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: end,
                count_only: true,
                ..Default::default()
            })
            .await
            .unwrap();
        r.into_inner().count
    })
}

/// Offset just past the last record of a segment: records are `[len u32 LE][crc u32][len
/// bytes]`, and a zero length ends the data of a preallocated segment.
fn end_of_data(bytes: &[u8]) -> usize {
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        at += 8 + len;
    }
    at
}

#[test]
fn torn_tail_is_truncated_and_the_member_recovers() {
    let mut c = Concord::start();
    put_keys(&c, "k", 50);
    c.kill9();

    // A crash in the middle of writing a record: a header promising 4000 bytes, then only part
    // of them. Nothing was acknowledged for it.
    let seg = c.wal_segments().pop().expect("a wal segment");
    let mut bytes = Vec::new();
    std::fs::File::open(&seg)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let end = end_of_data(&bytes);
    let mut f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(end as u64)).unwrap();
    let mut torn = Vec::new();
    torn.extend_from_slice(&4000u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    torn.extend_from_slice(&[1, 7, 7, 7, 7, 7, 7]);
    f.write_all(&torn).unwrap();
    f.sync_all().unwrap();
    drop(f);

    c.restart();
    assert!(c.log().contains("torn"), "the cut is logged:\n{}", c.log());
    assert_eq!(count(&c, "k"), 50);
    put_keys(&c, "after", 10);
    c.kill9();
    c.restart();
    assert_eq!(count(&c, "k"), 50);
    assert_eq!(count(&c, "after"), 10);

    // A file cut short in the middle of its last record (no zeros after it) is also a torn tail.
    c.kill9();
    let seg = c.wal_segments().pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut bytes = Vec::new();
    std::fs::File::open(&seg)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let end = end_of_data(&bytes) as u64;
    assert!(end < len);
    // Append a half-written record at the end of the data and cut the file right after it.
    let mut f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(end)).unwrap();
    f.write_all(&torn[..6]).unwrap();
    f.set_len(end + 6).unwrap();
    drop(f);
    c.restart();
    assert_eq!(count(&c, "after"), 10);
    put_keys(&c, "again", 3);
    assert_eq!(count(&c, "again"), 3);
}

#[test]
fn flipped_byte_in_the_middle_of_the_log_is_refused() {
    let mut c = Concord::start();
    put_keys(&c, "k", 200);
    assert!(c.stop(), "clean shutdown:\n{}", c.log());

    let seg = c.wal_segments().into_iter().next().expect("a wal segment");
    let mut bytes = Vec::new();
    std::fs::File::open(&seg)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let end = end_of_data(&bytes);
    assert!(end > 1000, "the log holds the writes ({end} bytes)");
    let at = end / 2;
    let mut f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(at as u64)).unwrap();
    f.write_all(&[bytes[at] ^ 0x5a]).unwrap();
    f.sync_all().unwrap();
    drop(f);

    let out = c.run_to_exit(Duration::from_secs(60)).unwrap();
    assert!(!out.status.success(), "must refuse to start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = seg.file_name().unwrap().to_string_lossy().to_string();
    assert!(stderr.contains("wal corrupted"), "{stderr}");
    assert!(stderr.contains(&name), "names the file: {stderr}");
    assert!(stderr.contains("offset"), "names the offset: {stderr}");
}
