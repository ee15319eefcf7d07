//! The failpoints and the power-loss simulation (`--features failpoints`). Failpoints are
//! global to the process, so these run on their own, one at a time (scripts/test.sh):
//! `cargo test -p concord-wal --features failpoints crash:: -- --test-threads=1`.

use super::*;
use crate::crash::drop_unsynced_under;

/// Configures a failpoint for the rest of the scope.
struct Armed(&'static str);

impl Armed {
    fn new(name: &'static str, actions: &str) -> Armed {
        fail::cfg(name, actions).unwrap();
        Armed(name)
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        fail::remove(self.0);
    }
}

fn last_index(dir: &Path) -> u64 {
    let (wal, _) = open(dir, small());
    wal.last_index()
}

#[test]
fn a_power_loss_drops_an_append_whose_sync_did_not_complete_and_a_crash_keeps_it() {
    let payload = "p".repeat(300);
    for power_loss in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(d.path(), small());
        wal.append(&entries(1..=3, 1, &payload), Some(&hs(1, 3)))
            .unwrap();
        {
            let _fp = Armed::new("wal::sync", "return(eio)");
            let err = wal.append(&entries(4..=5, 1, &payload), None).unwrap_err();
            assert!(
                matches!(&err, WalError::Io { source, .. } if source.raw_os_error() == Some(libc::EIO)),
                "{err}"
            );
        }
        assert!(matches!(
            wal.append(&entries(4..=4, 1, "x"), None),
            Err(WalError::Broken)
        ));
        drop(wal);
        if power_loss {
            // The write went to the page cache; its sync never completed.
            assert!(drop_unsynced_under(d.path()) >= 600);
            assert_eq!(last_index(d.path()), 3);
        } else {
            // A process crash keeps what the kernel was handed.
            assert_eq!(last_index(d.path()), 5);
        }
    }
}

#[test]
fn a_power_loss_keeps_every_synced_append() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    let payload = "q".repeat(700);
    // Across rotations (4 KiB segments), and with the zeros written ahead.
    for i in 1..=20 {
        wal.append(&entries(i..=i, 1, &payload), Some(&hs(1, i)))
            .unwrap();
    }
    assert_eq!(drop_unsynced_under(d.path()), 0);
    drop(wal);
    let (wal, rec) = open(d.path(), small());
    assert_eq!(wal.last_index(), 20);
    assert_eq!(rec.hard_state, hs(1, 20));
}

#[test]
fn an_injected_enospc_on_write_fails_the_append_and_leaves_the_log_as_it_was() {
    let d = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(d.path(), small());
    wal.append(&entries(1..=2, 1, "a"), None).unwrap();
    {
        let _fp = Armed::new("wal::write", "1*return(enospc)");
        let err = wal.append(&entries(3..=3, 1, "b"), None).unwrap_err();
        assert!(
            matches!(&err, WalError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC)),
            "{err}"
        );
    }
    drop(wal);
    let (mut wal, _) = open(d.path(), small());
    assert_eq!(wal.last_index(), 2);
    wal.append(&entries(3..=3, 1, "b"), None).unwrap();
}
