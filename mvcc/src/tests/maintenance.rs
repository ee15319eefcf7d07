//! Operations support: alarms gate commands the same way on every member, HashKV does not
//! depend on how far physical compaction got, defragmentation gives space back.

use std::time::Duration;

use super::*;

fn alarm(activate: bool, member: u64, alarm: AlarmType) -> Command {
    Command::Alarm {
        activate,
        member,
        alarm,
    }
}

fn grant(id: i64) -> Command {
    Command::LeaseGrant { id, ttl: 60 }
}

#[test]
fn nospace_refuses_what_adds_data_and_keeps_the_rest() {
    let (_d, mut t) = harness();
    t.one(put("a", "1"));
    t.one(put("b", "1"));
    t.one(grant(5));
    let raised = t.one(alarm(true, 9, AlarmType::NoSpace));
    let nospace = Alarm {
        member: 9,
        alarm: AlarmType::NoSpace,
    };
    assert!(matches!(
        raised.result,
        Ok(CommandResponse::Alarm(Some(a))) if a == nospace
    ));
    // Raising it again changes nothing.
    assert!(matches!(
        t.one(alarm(true, 9, AlarmType::NoSpace)).result,
        Ok(CommandResponse::Alarm(None))
    ));
    assert_eq!(t.store.alarms(), vec![nospace]);
    let rev = t.store.revision();
    let refused = [
        put("c", "1"),
        grant(6),
        txn(vec![], vec![], vec![put_op(b"c", b"1")]),
    ];
    for cmd in refused {
        assert_eq!(t.one(cmd).result.unwrap_err(), MvccError::NoSpace);
    }
    assert_eq!(t.store.revision(), rev, "nothing refused was written");
    // Deletes, a txn without puts, compaction and lease revokes still apply.
    assert!(t.one(del("a", "")).result.is_ok());
    assert!(t
        .one(txn(
            vec![],
            vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: "b".into(),
                ..Default::default()
            })],
            vec![]
        ))
        .result
        .is_ok());
    assert!(t
        .one(Command::Compact {
            revision: t.store.revision()
        })
        .result
        .is_ok());
    assert!(t.one(Command::LeaseRevoke { id: 5 }).result.is_ok());
    // Cleared, writes work again.
    assert!(matches!(
        t.one(alarm(false, 9, AlarmType::NoSpace)).result,
        Ok(CommandResponse::Alarm(Some(a))) if a == nospace
    ));
    assert!(t.store.alarms().is_empty());
    assert!(t.one(put("c", "1")).result.is_ok());
}

#[test]
fn corrupt_refuses_every_client_command_and_alarms_survive_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("db");
    {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        store
            .apply(
                1,
                &[
                    put("a", "1"),
                    alarm(true, 3, AlarmType::Corrupt),
                    alarm(true, 4, AlarmType::NoSpace),
                ],
            )
            .unwrap();
    }
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.alarms().len(), 2);
    assert!(store.has_alarm(AlarmType::Corrupt) && store.has_alarm(AlarmType::NoSpace));
    let out = store
        .apply(
            2,
            &[
                del("a", ""),
                Command::Compact { revision: 1 },
                Command::LeaseRevoke { id: 1 },
                Command::LeaseCheckpoint {
                    checkpoints: vec![],
                },
                alarm(false, 3, AlarmType::Corrupt),
                del("a", ""),
            ],
        )
        .unwrap();
    for a in &out[..3] {
        assert_eq!(a.result.clone().unwrap_err(), MvccError::ClusterCorrupt);
    }
    assert!(out[3].result.is_ok() && out[4].result.is_ok());
    // Cleared earlier in the same batch: the delete after it applies.
    assert!(out[5].result.is_ok());
    assert_eq!(store.alarms().len(), 1);
}

#[test]
fn hash_kv_is_the_same_whatever_physical_compaction_reached() {
    let (_d1, mut a) = harness();
    let (_d2, mut b) = harness();
    let mut rng = Rng::new(7);
    let mut cmds = Vec::new();
    for _ in 0..400 {
        let k = format!("k{}", rng.below(30));
        cmds.push(if rng.below(4) == 0 {
            del(&k, "")
        } else {
            put(&k, &format!("{}", rng.below(1000)))
        });
    }
    for c in &cmds {
        a.one(c.clone());
        b.one(c.clone());
    }
    let cur = a.store.revision();
    let before = a.store.view().hash_kv(0).unwrap();
    assert_eq!(before, b.store.view().hash_kv(0).unwrap());
    assert_eq!(before.revision, cur);
    // A different history gives a different hash.
    let (_d3, mut c) = harness();
    for cmd in &cmds[..cmds.len() - 1] {
        c.one(cmd.clone());
    }
    c.one(put("other", "x"));
    assert_ne!(c.store.view().hash_kv(0).unwrap().hash, before.hash);

    let target = cur / 2;
    a.one(Command::Compact { revision: target });
    b.one(Command::Compact { revision: target });
    // One store has physically compacted, the other maybe not yet: same hashes.
    assert!(a.store.wait_compacted(target, Duration::from_secs(30)));
    let ha = a.store.view().hash_kv(0).unwrap();
    let hb = b.store.view().hash_kv(0).unwrap();
    assert_eq!(ha, hb);
    assert_eq!(ha.compact_revision, target);
    assert!(b.store.wait_compacted(target, Duration::from_secs(30)));
    assert_eq!(b.store.view().hash_kv(0).unwrap(), ha);
    // etcd's bounds: at or below the compaction point, or past the current revision.
    assert_eq!(
        a.store.view().hash_kv(target).unwrap_err(),
        MvccError::Compacted
    );
    assert_eq!(
        a.store.view().hash_kv(cur + 1).unwrap_err(),
        MvccError::FutureRevision
    );
}

#[test]
fn defragment_gives_back_the_space_of_deleted_and_compacted_data() {
    let (_d, mut t) = harness();
    // Values LZ4 cannot shrink much: random hex digits.
    let mut rng = Rng::new(3);
    for i in 0..2000 {
        let v: String = (0..512)
            .map(|_| format!("{:08x}", rng.next() as u32))
            .collect();
        t.one(put(&format!("k{i}"), &v));
    }
    t.store.sync().unwrap();
    t.one(del("k", "l"));
    t.one(Command::Compact {
        revision: t.store.revision(),
    });
    assert!(t
        .store
        .wait_compacted(t.store.revision(), Duration::from_secs(30)));
    let (before, after) = t.store.defragment().unwrap();
    assert!(before > 4 << 20, "before: {before}");
    assert!(after < before / 4, "before {before}, after {after}");
    assert_eq!(t.store.view().count_keys().unwrap(), 0);
    assert!(!t.store.is_defragmenting());
}
