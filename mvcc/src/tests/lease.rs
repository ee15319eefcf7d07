//! Leases in the state machine: grant, attach, detach, revoke, checkpoint.

use super::*;

/// A put of `k` attached to `lease`.
fn leased(k: &str, lease: i64) -> Command {
    Command::Put(PutRequest {
        key: k.into(),
        value: b"v".to_vec(),
        lease,
        ..Default::default()
    })
}

fn keys(s: &Store, id: i64) -> Option<Vec<String>> {
    s.view().lease(id).unwrap().map(|(_, keys)| {
        keys.iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    })
}

#[test]
fn keys_follow_their_lease_and_revoke_deletes_them_in_one_revision() {
    let (_d, s) = open();
    let out = s
        .apply(
            1,
            &[
                leased("early", 7),
                Command::LeaseGrant { id: 7, ttl: 10 },
                Command::LeaseGrant { id: 7, ttl: 20 },
                Command::LeaseGrant { id: 8, ttl: 30 },
            ],
        )
        .unwrap();
    assert_eq!(out[0].result, Err(MvccError::LeaseNotFound));
    assert!(out[1].result.is_ok());
    assert_eq!(out[2].result, Err(MvccError::LeaseExists));
    // Granting does not take a revision.
    assert_eq!(s.revision(), 1);
    s.apply(
        2,
        &[
            leased("a", 7),
            leased("b", 7),
            leased("c", 8),
            leased("d", 0),
        ],
    )
    .unwrap();
    assert_eq!(keys(&s, 7).unwrap(), vec!["a", "b"]);
    // Moving b to lease 8, deleting a, and keeping c's lease with ignore_lease.
    let keep = Command::Put(PutRequest {
        key: b"c".to_vec(),
        value: b"v2".to_vec(),
        ignore_lease: true,
        ..Default::default()
    });
    s.apply(
        3,
        &[
            leased("b", 8),
            Command::DeleteRange(DeleteRangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            }),
            keep,
        ],
    )
    .unwrap();
    assert_eq!(keys(&s, 7).unwrap(), Vec::<String>::new());
    assert_eq!(keys(&s, 8).unwrap(), vec!["b", "c"]);
    let before = s.revision();
    let out = s
        .apply(
            4,
            &[
                Command::LeaseRevoke { id: 8 },
                Command::LeaseRevoke { id: 9 },
            ],
        )
        .unwrap();
    assert_eq!(
        out[0].revision,
        before + 1,
        "one revision for the whole revoke"
    );
    let deleted: Vec<_> = out[0]
        .events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision))
        .collect();
    assert_eq!(
        deleted,
        vec![
            (EventKind::Delete, b"b".to_vec(), before + 1),
            (EventKind::Delete, b"c".to_vec(), before + 1)
        ]
    );
    assert_eq!(out[1].result, Err(MvccError::LeaseNotFound));
    assert_eq!(keys(&s, 8), None);
    let left = s
        .view()
        .range(&RangeRequest {
            key: b"\0".to_vec(),
            range_end: b"\0".to_vec(),
            ..Default::default()
        })
        .unwrap();
    let names: Vec<_> = left.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(names, vec![b"d".to_vec()]);
    let ids: Vec<i64> = s.view().leases().unwrap().iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![7]);
}

#[test]
fn checkpoints_record_remaining_ttls_of_known_leases() {
    let (_d, s) = open();
    s.apply(
        1,
        &[
            Command::LeaseGrant { id: -5, ttl: 100 },
            Command::LeaseGrant { id: 3, ttl: 60 },
        ],
    )
    .unwrap();
    s.apply(
        2,
        &[Command::LeaseCheckpoint {
            checkpoints: vec![(3, 42), (99, 10)],
        }],
    )
    .unwrap();
    let mut leases = s.view().leases().unwrap();
    leases.sort_by_key(|l| l.id);
    assert_eq!(
        leases,
        vec![
            Lease {
                id: -5,
                ttl: 100,
                remaining: 0
            },
            Lease {
                id: 3,
                ttl: 60,
                remaining: 42
            },
        ]
    );
    // A failed txn that would attach a key to a missing lease changes nothing.
    let txn = Command::Txn(TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: b"x".to_vec(),
                lease: 3,
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: b"y".to_vec(),
                lease: 4,
                ..Default::default()
            }),
        ],
        failure: vec![],
    });
    let out = s.apply(3, &[txn]).unwrap();
    assert_eq!(out[0].result, Err(MvccError::LeaseNotFound));
    assert_eq!(keys(&s, 3).unwrap(), Vec::<String>::new());
}
