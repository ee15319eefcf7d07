//! Compaction: logical (reads below the point fail, at and above it are unchanged) and
//! physical (old versions, tombstones and revision entries leave the store).

use std::time::Duration;

use super::*;

#[test]
fn compaction_keeps_reads_at_or_above_and_drops_the_rest() {
    let (_d, mut t) = harness();
    let mut rng = Rng::new(42);
    for _ in 0..300 {
        let k = format!("k{}", rng.below(20));
        if rng.below(4) == 0 {
            t.one(del_prev(&k, ""));
        } else {
            t.one(put(&k, &format!("{}", rng.below(1000))));
        }
    }
    let cur = t.store.revision();
    let before: Vec<_> = (1..=cur).map(|r| t.all_at(r).unwrap()).collect();
    let target = cur / 2;
    assert!(t.one(Command::Compact { revision: target }).result.is_ok());
    assert!(t.store.wait_compacted(target, Duration::from_secs(30)));
    for r in 1..=cur {
        match t.all_at(r) {
            Ok(got) => {
                assert!(r >= target);
                assert_eq!(got, before[(r - 1) as usize], "at {r}");
            }
            Err(e) => {
                assert!(r < target);
                assert_eq!(e, MvccError::Compacted);
            }
        }
    }
    // Compacting at or below the last point, or past the end, fails.
    assert!(matches!(
        t.one(Command::Compact { revision: target }).result,
        Err(MvccError::Compacted)
    ));
    assert!(matches!(
        t.one(Command::Compact { revision: cur + 5 }).result,
        Err(MvccError::FutureRevision)
    ));
    // Old rows are physically gone: fewer history rows than writes.
    let n = rows(&t.store, Cf::History).len();
    assert!(n < 300, "history rows left: {n}");
    // Compact again to the end; reads at the end still match.
    assert!(t.one(Command::Compact { revision: cur }).result.is_ok());
    assert!(t.store.wait_compacted(cur, Duration::from_secs(30)));
    assert_eq!(t.all_at(cur).unwrap(), before[(cur - 1) as usize]);
    assert!(rows(&t.store, Cf::History).len() <= 20);
}

#[test]
fn compaction_in_chunks_of_many_revisions() {
    let (_d, mut t) = harness();
    // 12k single puts over 50 keys, then a txn with 10k+ writes at one revision.
    for chunk in 0..12 {
        let cmds: Vec<Command> = (0..1000)
            .map(|i| put(&format!("k{:02}", (chunk * 1000 + i) % 50), &format!("{i}")))
            .collect();
        t.apply(cmds);
    }
    let big: Vec<RequestOp> = (0..15_000)
        .map(|i| {
            if i % 3 == 0 {
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: format!("k{:02}", i % 50).into_bytes(),
                    ..Default::default()
                })
            } else {
                put_op(format!("t{i:05}").as_bytes(), b"v")
            }
        })
        .collect();
    t.one(txn(vec![], big, vec![]));
    t.one(put("k00", "last"));
    let cur = t.store.revision();
    assert_eq!(cur, 1 + 12_000 + 2);
    let checks = [cur - 2, cur - 1, cur];
    let before: Vec<_> = checks.iter().map(|r| t.all_at(*r).unwrap()).collect();
    for target in [cur - 2, cur - 1] {
        assert!(t.one(Command::Compact { revision: target }).result.is_ok());
        assert!(t.store.wait_compacted(target, Duration::from_secs(60)));
        assert_physically_compacted(&t.store, target);
        for (r, b) in checks.iter().zip(&before) {
            if *r >= target {
                assert_eq!(
                    &t.all_at(*r).unwrap(),
                    b,
                    "at {r} after compaction to {target}"
                );
            }
        }
    }
}
