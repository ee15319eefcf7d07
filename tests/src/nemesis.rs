//! Faults on a running [`Cluster`], each recorded with its kind, target and time span on the
//! run's [`Clock`].
//!
//! | kind | what happens |
//! |---|---|
//! | `kill` | `kill -9` of one member (the leader half of the time), restarted on its data dir 1–5 s later |
//! | `pause` | `SIGSTOP` of one member (the leader half of the time) for 1–10 s, then `SIGCONT` |
//! | `partition-leader` | the leader cut off from every other member, both ways |
//! | `partition-minority` | a random minority (with the leader half of the time) cut off from the rest |
//! | `partition-majority-split` | no two members see the same majority: with 5 members a ring where each member reaches only its two neighbours; with 3, a bridge (the leader and one follower cannot reach each other, the third reaches both) |
//! | `partition-asymmetric` | one direction only: the leader's messages to the others are refused while theirs reach it, or the reverse |
//! | `blackhole` | one member (the leader half of the time) and the rest: the proxies accept but silently drop every byte both ways |
//! | `membership` | `member remove` of one member (possibly the leader) under load; it must stop by itself; then `member add --learner` with a fresh data dir on the same addresses, start with `--initial-cluster-state existing`, `member promote` once caught up |
//! | `crash-before-fsync` | failpoint `wal::before_sync`: the member (the leader half of the time) dies between a log write and its fdatasync; restarted 1–3 s later |
//! | `crash-after-fsync` | failpoint `wal::after_sync`: dies right after the fdatasync, before anything learns of it |
//! | `crash-mid-apply` | failpoint `apply::before_write`, `apply::after_write` or `apply::before_flush`: dies with a batch of committed entries decoded but not written, written but not answered, or before the store flush that lets the log shrink |
//! | `crash-mid-snapshot` | a follower removed and added back; its first start dies installing the leader's snapshot (`snapshot::after_wal`: the log replaced, the store not yet; `snapshot::mid_swap`: the old store moved aside, the new one not yet in); started again, it must finish the install, catch up and be promoted |
//! | `fsync-eio` | failpoint `wal::sync`: one fdatasync of the log fails with EIO; the member must stop with that error (fail-stop); restarted |
//! | `write-enospc` | failpoint `wal::write`: one log write fails with ENOSPC; the member must stop with that error; restarted |
//! | `power-loss` | every log write not yet covered by a completed fdatasync is put back as it was, then SIGKILL (`concord_wal::crash`); half the time at once, half at the member's next log write (between the write and its fdatasync, failpoint `wal::power_loss`); restarted 1–3 s later |
//!
//! The disk kinds need `concord-failpoints` members ([`FaultKind::needs_failpoints`]).
//!
//! Partitions hold for 3–8 s. Faults run one at a time; [`Nemesis::run`] leaves healthy
//! gaps between them and heals everything before it returns.
//!
//! # What cannot be injected here
//!
//! * **Disk faults outside the failpoints**: errors come only where a failpoint is (the log's
//!   write and fdatasync); RocksDB's own I/O, snapshot files and directory operations get no
//!   injected errors, and there are no slow disks, no silent corruption and no torn writes
//!   inside a synced range. (Damaged WAL files are tested separately, between runs:
//!   `wal_damage.rs`, `crash_safety.rs`.)
//! * **Power loss beyond the log**: the simulation drops the log's unsynced writes only.
//!   RocksDB's files, snapshot files and directory entries keep what the kernel had (their
//!   writers sync before they return, but a missing sync there would go unnoticed), and no
//!   torn sector is simulated: an unsynced write is dropped whole.
//! * **Clock faults**: every member shares the machine's clock; no skew or jumps (leases
//!   depend on the leader's monotonic clock only).
//! * **Packet-level faults**: links are cut, refused or blackholed per TCP connection; no
//!   reordering, duplication, corruption or added latency inside a connection, and client
//!   connections (not proxied) are only affected through the member they reach.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::rng::{Clock, Rng};
use crate::Cluster;

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum FaultKind {
    Kill,
    Pause,
    PartitionLeader,
    PartitionMinority,
    PartitionMajoritySplit,
    PartitionAsymmetric,
    Blackhole,
    Membership,
    CrashBeforeFsync,
    CrashAfterFsync,
    CrashMidApply,
    CrashMidSnapshot,
    FsyncEio,
    WriteEnospc,
    PowerLoss,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 15] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::PartitionLeader,
        FaultKind::PartitionMinority,
        FaultKind::PartitionMajoritySplit,
        FaultKind::PartitionAsymmetric,
        FaultKind::Blackhole,
        FaultKind::Membership,
        FaultKind::CrashBeforeFsync,
        FaultKind::CrashAfterFsync,
        FaultKind::CrashMidApply,
        FaultKind::CrashMidSnapshot,
        FaultKind::FsyncEio,
        FaultKind::WriteEnospc,
        FaultKind::PowerLoss,
    ];

    /// Whether the kind needs `concord-failpoints` members.
    pub fn needs_failpoints(self) -> bool {
        matches!(
            self,
            FaultKind::CrashBeforeFsync
                | FaultKind::CrashAfterFsync
                | FaultKind::CrashMidApply
                | FaultKind::CrashMidSnapshot
                | FaultKind::FsyncEio
                | FaultKind::WriteEnospc
                | FaultKind::PowerLoss
        )
    }

    /// Short name (as `--faults` takes it).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::PartitionMinority => "partition-minority",
            FaultKind::PartitionMajoritySplit => "partition-majority-split",
            FaultKind::PartitionAsymmetric => "partition-asymmetric",
            FaultKind::Blackhole => "blackhole",
            FaultKind::Membership => "membership",
            FaultKind::CrashBeforeFsync => "crash-before-fsync",
            FaultKind::CrashAfterFsync => "crash-after-fsync",
            FaultKind::CrashMidApply => "crash-mid-apply",
            FaultKind::CrashMidSnapshot => "crash-mid-snapshot",
            FaultKind::FsyncEio => "fsync-eio",
            FaultKind::WriteEnospc => "write-enospc",
            FaultKind::PowerLoss => "power-loss",
        }
    }

    /// The kind of a short name.
    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One injected fault.
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// What was hit, in words ("m1 (leader)", "{m0} | {m1 m2}", ...).
    pub target: String,
    /// When it began (nanoseconds on the run's clock).
    pub start_ns: u64,
    /// When it was healed.
    pub end_ns: u64,
    /// Things worth knowing (e.g. a removed member that had to be killed).
    pub notes: Vec<String>,
    /// The fault could not be carried out or undone as intended.
    pub error: Option<String>,
}

/// The note of a failpoint that was armed but never reached.
const NOT_FIRED: [&str; 2] = ["did not fire", "no snapshot install reached"];

impl Fault {
    /// Whether the fault happened as meant: no error, and (a failpoint) it fired.
    pub fn took_effect(&self) -> bool {
        self.error.is_none()
            && !self
                .notes
                .iter()
                .any(|n| NOT_FIRED.iter().any(|p| n.starts_with(p)))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{} .. {}] {} {}",
            Clock::fmt(self.start_ns),
            Clock::fmt(self.end_ns),
            self.kind,
            self.target
        )?;
        for n in &self.notes {
            write!(f, "\n      note: {n}")?;
        }
        if let Some(e) = &self.error {
            write!(f, "\n      ERROR: {e}")?;
        }
        Ok(())
    }
}

/// Chooses, injects, holds and heals faults, and records them.
pub struct Nemesis {
    clock: Clock,
    rng: Rng,
    faults: Vec<Fault>,
    /// Print each fault as it happens (to stderr).
    pub verbose: bool,
    /// Longest hold of a partition.
    pub max_partition: Duration,
    /// Longest pause.
    pub max_pause: Duration,
}

fn names(c: &Cluster, set: &[usize]) -> String {
    set.iter()
        .map(|i| c.members[*i].name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Who leads `among` (as they all agree) just before a fault is healed, with its term.
fn leader_note(c: &Cluster, among: &[usize]) -> String {
    match c.leader_among(among) {
        Some(l) => {
            let term = c
                .status(l)
                .and_then(|s| s.header)
                .map_or(0, |h| h.raft_term);
            format!(
                "before healing, {{{}}} agreed on leader {} (term {term})",
                names(c, among),
                c.members[l].name
            )
        }
        None => format!(
            "before healing, {{{}}} did not agree on a leader among them",
            names(c, among)
        ),
    }
}

/// Notes who leads the live members, then starts member `i` again if it is down (a failed
/// restart is the fault's error).
fn restart_noted(c: &mut Cluster, i: usize, f: &mut Fault) {
    f.notes.push(leader_note(c, &c.live()));
    if c.exited(i) {
        if let Err(e) = c.try_restart(i) {
            f.error = Some(format!("restart failed: {e:#}"));
        }
    }
}

fn sleep_unless(d: Duration, stop: Option<&AtomicBool>) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return;
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
    }
}

impl Nemesis {
    /// A nemesis whose choices come from `seed`.
    pub fn new(clock: Clock, seed: u64) -> Nemesis {
        Nemesis {
            clock,
            rng: Rng::derive(seed, 0xfa17),
            faults: Vec::new(),
            verbose: true,
            max_partition: Duration::from_secs(8),
            max_pause: Duration::from_secs(10),
        }
    }

    /// Every fault so far.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// How many faults of each kind were injected.
    pub fn counts(&self) -> BTreeMap<FaultKind, usize> {
        count(&self.faults)
    }

    fn begin(&self, kind: FaultKind, target: String) -> Fault {
        let f = Fault {
            kind,
            target,
            start_ns: self.clock.now_ns(),
            end_ns: 0,
            notes: Vec::new(),
            error: None,
        };
        if self.verbose {
            eprintln!(
                "[{:>9}] nemesis: {} {}",
                Clock::fmt(f.start_ns),
                f.kind,
                f.target
            );
        }
        f
    }

    fn finish(&mut self, mut f: Fault) -> &Fault {
        f.end_ns = self.clock.now_ns();
        if self.verbose {
            let mut line = format!(
                "[{:>9}] nemesis: {} healed after {:.1}s",
                Clock::fmt(f.end_ns),
                f.kind,
                (f.end_ns - f.start_ns) as f64 / 1e9
            );
            for n in &f.notes {
                line.push_str(&format!("; note: {n}"));
            }
            if let Some(e) = &f.error {
                line.push_str(&format!("; ERROR: {e}"));
            }
            eprintln!("{line}");
        }
        self.faults.push(f);
        self.faults.last().expect("just pushed")
    }

    /// The leader, waiting up to 10 s for one; `None` if there is none.
    fn find_leader(&self, c: &Cluster) -> Option<usize> {
        let live = c.live();
        c.try_wait_leader_among(&live, Duration::from_secs(10))
    }

    /// The leader half of the time (when there is one), else a uniformly chosen member.
    fn pick_target(&mut self, c: &Cluster) -> (usize, bool) {
        let leader = self.find_leader(c);
        match leader {
            Some(l) if self.rng.chance(0.5) => (l, true),
            _ => {
                let i = self.rng.index(c.members.len());
                (i, Some(i) == leader)
            }
        }
    }

    fn label(c: &Cluster, i: usize, leader: bool) -> String {
        if leader {
            format!("{} (leader)", c.members[i].name)
        } else {
            c.members[i].name.clone()
        }
    }

    /// `kill -9` of member `i`, restarted on its data dir after `down`.
    pub fn kill(&mut self, c: &mut Cluster, i: usize, leader: bool, down: Duration) -> &Fault {
        let mut f = self.begin(
            FaultKind::Kill,
            format!(
                "{} for {:.1}s",
                Self::label(c, i, leader),
                down.as_secs_f64()
            ),
        );
        c.kill9(i);
        sleep_unless(down, None);
        restart_noted(c, i, &mut f);
        self.finish(f)
    }

    /// `SIGSTOP` of member `i` for `dur`, then `SIGCONT`.
    pub fn pause(&mut self, c: &mut Cluster, i: usize, leader: bool, dur: Duration) -> &Fault {
        let mut f = self.begin(
            FaultKind::Pause,
            format!(
                "{} for {:.1}s",
                Self::label(c, i, leader),
                dur.as_secs_f64()
            ),
        );
        if !c.pause(i) {
            f.error = Some("not running".into());
        }
        sleep_unless(dur, None);
        f.notes.push(leader_note(c, &c.live()));
        c.resume(i);
        self.finish(f)
    }

    /// Cuts `side` off from the other members, both ways, for `dur`.
    pub fn partition(
        &mut self,
        c: &mut Cluster,
        kind: FaultKind,
        side: &[usize],
        note: &str,
        dur: Duration,
    ) -> &Fault {
        let rest: Vec<usize> = (0..c.members.len()).filter(|i| !side.contains(i)).collect();
        let mut f = self.begin(
            kind,
            format!(
                "{{{}}}{note} | {{{}}} for {:.1}s",
                names(c, side),
                names(c, &rest),
                dur.as_secs_f64()
            ),
        );
        c.partition(side, &rest);
        sleep_unless(dur, None);
        let bigger = if rest.len() >= side.len() {
            &rest
        } else {
            side
        };
        f.notes.push(leader_note(c, bigger));
        c.heal();
        self.finish(f)
    }

    /// Cuts the given links (pairs, both ways) for `dur`: used for the majority split.
    pub fn cut_links(
        &mut self,
        c: &mut Cluster,
        kind: FaultKind,
        links: &[(usize, usize)],
        note: &str,
        dur: Duration,
    ) -> &Fault {
        let shown: Vec<String> = links
            .iter()
            .map(|(a, b)| format!("{}-x-{}", c.members[*a].name, c.members[*b].name))
            .collect();
        let mut f = self.begin(
            kind,
            format!("{note}: {} for {:.1}s", shown.join(" "), dur.as_secs_f64()),
        );
        for (a, b) in links {
            c.partition(&[*a], &[*b]);
        }
        sleep_unless(dur, None);
        f.notes.push(leader_note(c, &c.live()));
        c.heal();
        self.finish(f)
    }

    /// Refuses `from` → `to` (every pair), one direction only, for `dur`.
    pub fn asymmetric(
        &mut self,
        c: &mut Cluster,
        from: &[usize],
        to: &[usize],
        note: &str,
        dur: Duration,
    ) -> &Fault {
        let mut f = self.begin(
            FaultKind::PartitionAsymmetric,
            format!(
                "{{{}}} -x-> {{{}}}{note} for {:.1}s",
                names(c, from),
                names(c, to),
                dur.as_secs_f64()
            ),
        );
        for a in from {
            for b in to {
                c.cut_one_way(*a, *b);
            }
        }
        sleep_unless(dur, None);
        f.notes.push(leader_note(c, &c.live()));
        c.heal();
        self.finish(f)
    }

    /// Blackholes every link between member `i` and the others, both ways, for `dur`.
    pub fn blackhole(&mut self, c: &mut Cluster, i: usize, leader: bool, dur: Duration) -> &Fault {
        let rest: Vec<usize> = (0..c.members.len()).filter(|x| *x != i).collect();
        let mut f = self.begin(
            FaultKind::Blackhole,
            format!(
                "{} <-> {{{}}} for {:.1}s",
                Self::label(c, i, leader),
                names(c, &rest),
                dur.as_secs_f64()
            ),
        );
        c.blackhole(&[i], &rest);
        sleep_unless(dur, None);
        f.notes.push(leader_note(c, &rest));
        c.heal();
        self.finish(f)
    }

    /// Removes member `i`, then adds it back as a new member with a fresh data dir (learner,
    /// then promoted).
    pub fn membership(&mut self, c: &mut Cluster, i: usize, leader: bool) -> &Fault {
        let mut f = self.begin(
            FaultKind::Membership,
            format!(
                "remove {} and add it back as a new member",
                Self::label(c, i, leader)
            ),
        );
        match c.remove_member(i) {
            Ok(notes) => {
                f.notes.extend(notes);
                match c.readd_member(i, Duration::from_secs(60)) {
                    Ok(notes) => f.notes.extend(notes),
                    Err(e) => f.error = Some(format!("adding it back: {e:#}")),
                }
            }
            Err(e) => f.error = Some(format!("removing it: {e:#}")),
        }
        self.finish(f)
    }

    /// Arms failpoint `name` with `actions` on member `i` and waits (up to 30 s) for the
    /// process to die of it; restarts it `down` after that. An injected I/O error must stop
    /// the member with that error in its log (fail-stop: what reached the disk is unknown).
    #[allow(clippy::too_many_arguments)]
    pub fn failpoint(
        &mut self,
        c: &mut Cluster,
        kind: FaultKind,
        i: usize,
        leader: bool,
        name: &str,
        actions: &str,
        down: Duration,
    ) -> &Fault {
        let mut f = self.begin(
            kind,
            format!("{} via {name}={actions}", Self::label(c, i, leader)),
        );
        let log_before = c.members[i].log().len();
        let armed = Instant::now();
        let arming = c.failpoint(i, name, actions);
        // A failpoint on a busy path can fire, and kill the process, before its control has
        // answered: an arming that failed counts if the member then stops.
        let stopped = c.wait_exit(i, Duration::from_secs(if arming.is_ok() { 30 } else { 2 }));
        if let (Err(e), false) = (&arming, stopped) {
            f.error = Some(format!("arming: {e:#}"));
        } else if stopped {
            if arming.is_err() {
                f.notes
                    .push("it died before its control answered the arming".into());
            }
            f.notes.push(format!(
                "stopped {:.1}s after arming",
                armed.elapsed().as_secs_f64()
            ));
            let log = c.members[i].log();
            let tail = log.get(log_before..).unwrap_or("");
            let expected = match kind {
                FaultKind::FsyncEio => Some("Input/output error"),
                FaultKind::WriteEnospc => Some("No space left on device"),
                _ => None,
            };
            if let Some(text) = expected {
                if tail.contains(text) {
                    f.notes.push(format!("it logged {text:?} and stopped"));
                } else {
                    f.error = Some(format!("it stopped without logging {text:?}"));
                }
            }
            sleep_unless(down, None);
        } else {
            f.notes.push("did not fire within 30 s; disarmed".into());
            let _ = c.failpoint(i, name, "");
        }
        restart_noted(c, i, &mut f);
        self.finish(f)
    }

    /// A power loss of member `i`: its log writes not yet covered by an fdatasync are dropped
    /// and it dies; restarted after `down`. `at_write`: at its next log write, between the
    /// write and its fdatasync (failpoint `wal::power_loss`), so there is always something to
    /// drop; otherwise at once, wherever it is.
    pub fn power_loss(
        &mut self,
        c: &mut Cluster,
        i: usize,
        leader: bool,
        at_write: bool,
        down: Duration,
    ) -> &Fault {
        let mut f = self.begin(
            FaultKind::PowerLoss,
            format!(
                "{} {}, down for {:.1}s",
                Self::label(c, i, leader),
                if at_write {
                    "at its next log write"
                } else {
                    "at once"
                },
                down.as_secs_f64()
            ),
        );
        let log_before = c.members[i].log().len();
        let result = if at_write {
            c.failpoint(i, "wal::power_loss", "1*return")
                .and_then(|()| match c.wait_exit(i, Duration::from_secs(30)) {
                    true => Ok(()),
                    false => Err(anyhow::anyhow!("did not fire within 30 s")),
                })
        } else {
            c.power_loss(i)
        };
        match result {
            Ok(()) => {
                let log = c.members[i].log();
                if let Some(line) = log
                    .get(log_before..)
                    .unwrap_or("")
                    .lines()
                    .find(|l| l.contains("power loss:"))
                {
                    f.notes.push(line.trim().to_string());
                }
            }
            Err(e) => {
                f.error = Some(format!("{e:#}"));
                c.kill9(i);
            }
        }
        sleep_unless(down, None);
        restart_noted(c, i, &mut f);
        self.finish(f)
    }

    /// Removes member `i` and adds it back as a new member whose first start crashes in the
    /// middle of installing the leader's snapshot (`failpoint`), then starts it again.
    pub fn crash_mid_snapshot(
        &mut self,
        c: &mut Cluster,
        i: usize,
        leader: bool,
        failpoint: &str,
    ) -> &Fault {
        let mut f = self.begin(
            FaultKind::CrashMidSnapshot,
            format!(
                "remove {}, add it back, crash its first snapshot install at {failpoint}",
                Self::label(c, i, leader)
            ),
        );
        match c.remove_member(i) {
            Ok(notes) => {
                f.notes.extend(notes);
                c.members[i].arm_at_start = Some(format!("{failpoint}=1*return"));
                let log_before = c.members[i].log().len();
                match c.readd_member(i, Duration::from_secs(60)) {
                    Ok(notes) => f.notes.extend(notes),
                    Err(e) => f.error = Some(format!("adding it back: {e:#}")),
                }
                c.members[i].arm_at_start = None;
                // The member acknowledges a snapshot once it is staged and in its log, so it
                // may be promoted before its apply thread reaches `snapshot::mid_swap`.
                if !f.notes.iter().any(|n| n.contains("crashed as armed")) {
                    if c.wait_exit(i, Duration::from_secs(5)) {
                        f.notes
                            .push("it crashed as armed after its promotion; restarted".into());
                        if let Err(e) = c.try_restart(i) {
                            f.error = Some(format!("restart failed: {e:#}"));
                        }
                    } else {
                        // Never reached: disarm it, or a later install would trip it.
                        let _ = c.failpoint(i, failpoint, "");
                    }
                }
                let crashed = f.notes.iter().any(|n| n.contains("crashed as armed"));
                // The restarted member finishes the install before it serves.
                let deadline = Instant::now() + Duration::from_secs(15);
                let finished = loop {
                    let log = c.members[i].log();
                    let tail = log.get(log_before..).unwrap_or("");
                    if tail.contains("finishing a snapshot install a crash interrupted") {
                        break true;
                    }
                    if !crashed || Instant::now() > deadline {
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                };
                match (crashed, finished) {
                    (true, true) => f
                        .notes
                        .push("its restart finished the interrupted install".into()),
                    (true, false) => {
                        f.error =
                            Some("it crashed mid-install; its restart did not finish it".into())
                    }
                    _ => f
                        .notes
                        .push("no snapshot install reached the failpoint".into()),
                }
            }
            Err(e) => f.error = Some(format!("removing it: {e:#}")),
        }
        self.finish(f)
    }

    /// Injects one fault of `kind`, with target and duration chosen by the seed, holds it and
    /// heals it.
    pub fn inject(&mut self, c: &mut Cluster, kind: FaultKind) -> &Fault {
        let n = c.members.len();
        let part = self
            .rng
            .duration(Duration::from_secs(3), self.max_partition);
        match kind {
            FaultKind::Kill => {
                let (i, leader) = self.pick_target(c);
                let down = self
                    .rng
                    .duration(Duration::from_secs(1), Duration::from_secs(5));
                self.kill(c, i, leader, down)
            }
            FaultKind::Pause => {
                let (i, leader) = self.pick_target(c);
                let dur = self.rng.duration(Duration::from_secs(1), self.max_pause);
                self.pause(c, i, leader, dur)
            }
            FaultKind::PartitionLeader => {
                let (l, note) = match self.find_leader(c) {
                    Some(l) => (l, " (leader)"),
                    None => (self.rng.index(n), " (no leader known)"),
                };
                self.partition(c, kind, &[l], note, part)
            }
            FaultKind::PartitionMinority => {
                let size = 1 + self.rng.index(((n - 1) / 2).max(1));
                let leader = self.find_leader(c);
                let mut order: Vec<usize> = (0..n).collect();
                self.rng.shuffle(&mut order);
                if let Some(l) = leader {
                    // The leader in the minority half of the time, else in the majority.
                    order.retain(|x| *x != l);
                    if self.rng.chance(0.5) {
                        order.insert(0, l);
                    } else {
                        order.push(l);
                    }
                }
                let mut side: Vec<usize> = order[..size].to_vec();
                side.sort();
                let note = if leader.is_some_and(|l| side.contains(&l)) {
                    " (with the leader)"
                } else {
                    ""
                };
                self.partition(c, kind, &side, note, part)
            }
            FaultKind::PartitionMajoritySplit => {
                let leader = self.find_leader(c);
                let mut order: Vec<usize> = (0..n).collect();
                self.rng.shuffle(&mut order);
                if n <= 3 {
                    // A bridge: the leader and one follower cannot reach each other; the third
                    // member reaches both, so each side of the cut sees a majority.
                    let a = leader.unwrap_or(order[0]);
                    let b = *order.iter().find(|x| **x != a).expect("two members");
                    self.cut_links(c, kind, &[(a, b)], "bridge", part)
                } else {
                    // A ring: each member reaches only its two neighbours, itself and two
                    // others being a majority of five.
                    let mut links = Vec::new();
                    for x in 0..n {
                        for y in x + 1..n {
                            let d = (y - x).min(n - (y - x));
                            if d > 1 {
                                links.push((order[x], order[y]));
                            }
                        }
                    }
                    self.cut_links(c, kind, &links, "majorities ring", part)
                }
            }
            FaultKind::PartitionAsymmetric => {
                let leader = self.find_leader(c).unwrap_or_else(|| self.rng.index(n));
                let rest: Vec<usize> = (0..n).filter(|x| *x != leader).collect();
                if self.rng.chance(0.5) {
                    self.asymmetric(c, &[leader], &rest, " (leader cannot send)", part)
                } else {
                    self.asymmetric(c, &rest, &[leader], " (leader cannot receive)", part)
                }
            }
            FaultKind::Blackhole => {
                let (i, leader) = self.pick_target(c);
                self.blackhole(c, i, leader, part)
            }
            FaultKind::Membership => {
                let leader = self.find_leader(c);
                let i = match leader {
                    Some(l) if self.rng.chance(0.3) => l,
                    _ => {
                        let others: Vec<usize> = (0..n).filter(|x| Some(*x) != leader).collect();
                        *self.rng.pick(&others)
                    }
                };
                self.membership(c, i, Some(i) == leader)
            }
            FaultKind::CrashBeforeFsync
            | FaultKind::CrashAfterFsync
            | FaultKind::CrashMidApply
            | FaultKind::FsyncEio
            | FaultKind::WriteEnospc
            | FaultKind::PowerLoss => {
                let (i, leader) = self.pick_target(c);
                let down = self
                    .rng
                    .duration(Duration::from_secs(1), Duration::from_secs(3));
                let (name, actions) = match kind {
                    FaultKind::CrashBeforeFsync => ("wal::before_sync", "1*return"),
                    FaultKind::CrashAfterFsync => ("wal::after_sync", "1*return"),
                    FaultKind::CrashMidApply => (
                        *self.rng.pick(&[
                            "apply::before_write",
                            "apply::after_write",
                            "apply::before_flush",
                        ]),
                        "1*return",
                    ),
                    FaultKind::FsyncEio => ("wal::sync", "1*return(eio)"),
                    FaultKind::WriteEnospc => ("wal::write", "1*return(enospc)"),
                    _ => {
                        let at_write = self.rng.chance(0.5);
                        return self.power_loss(c, i, leader, at_write, down);
                    }
                };
                self.failpoint(c, kind, i, leader, name, actions, down)
            }
            FaultKind::CrashMidSnapshot => {
                let leader = self.find_leader(c);
                let others: Vec<usize> = (0..n).filter(|x| Some(*x) != leader).collect();
                let i = *self.rng.pick(&others);
                let fp = *self
                    .rng
                    .pick(&["snapshot::after_wal", "snapshot::mid_swap"]);
                self.crash_mid_snapshot(c, i, false, fp)
            }
        }
    }

    /// Undoes whatever may still be in place: continues paused members, starts stopped ones,
    /// lifts every link rule. Returns what it had to do.
    pub fn heal_all(&mut self, c: &mut Cluster) -> Vec<String> {
        let mut done = Vec::new();
        c.heal();
        for i in 0..c.members.len() {
            if c.members[i].paused {
                c.resume(i);
                done.push(format!("continued {}", c.members[i].name));
            }
            if c.exited(i) {
                match c.try_restart(i) {
                    Ok(()) => done.push(format!("restarted {}", c.members[i].name)),
                    Err(e) => done.push(format!("could not restart {}: {e:#}", c.members[i].name)),
                }
            }
        }
        done
    }

    /// Waits until every member runs and all agree on a leader; `Err` says what is wrong.
    pub fn wait_healthy(&self, c: &Cluster, timeout: Duration) -> Result<usize, String> {
        let all: Vec<usize> = (0..c.members.len()).collect();
        let deadline = Instant::now() + timeout;
        loop {
            if c.live().len() == all.len() {
                if let Some(l) = c.leader_among(&all) {
                    return Ok(l);
                }
            }
            if Instant::now() > deadline {
                let down: Vec<&str> = all
                    .iter()
                    .filter(|i| !c.members[**i].is_live())
                    .map(|i| c.members[*i].name.as_str())
                    .collect();
                return Err(format!(
                    "no leader agreed on by every member within {timeout:?} (not running: {down:?})"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Injects faults of `kinds` one after another, each followed by a healthy gap of 2–5 s,
    /// until `until` — and, with `every_kind`, at least until each kind took effect once or
    /// was tried three times (in a seeded order that covers every kind before repeating one;
    /// past `until`, only the missing kinds). Stops early when `stop`
    /// is set, or after a fault the cluster did not recover from within 30 s (every member
    /// running and agreeing on a leader). Heals everything before returning, and returns the
    /// problems (members that had exited by themselves, a cluster that did not recover).
    pub fn run(
        &mut self,
        c: &mut Cluster,
        kinds: &[FaultKind],
        until: Instant,
        every_kind: bool,
        stop: &AtomicBool,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let mut queue: Vec<FaultKind> = Vec::new();
        // Kinds that have not taken effect yet (a failpoint the run never reached, e.g. a
        // snapshot install before the leader's log was first compacted), with their tries.
        let mut pending: BTreeMap<FaultKind, u32> = kinds.iter().map(|k| (*k, 0)).collect();
        // Start with a healthy gap, so the workload gets going first.
        sleep_unless(Duration::from_secs(2), Some(stop));
        while !kinds.is_empty() && !stop.load(Ordering::Relaxed) {
            let must = every_kind && !pending.is_empty();
            // Roughly the longest a fault takes: do not start one that would overrun.
            let overtime = Instant::now() + Duration::from_secs(10) > until;
            if !must && overtime {
                break;
            }
            if queue.is_empty() {
                queue = kinds.to_vec();
                self.rng.shuffle(&mut queue);
            }
            let kind = match pending.keys().next() {
                // Past the time, only what is still missing.
                Some(k) if overtime => *k,
                _ => queue.pop().expect("refilled"),
            };
            let effective = self.inject(c, kind).took_effect();
            if let Some(tries) = pending.get_mut(&kind) {
                *tries += 1;
                // Three tries, then the run goes without it (and says so in its faults).
                if effective || *tries >= 3 {
                    pending.remove(&kind);
                }
            }
            for h in self.heal_all(c) {
                problems.push(format!("after {kind}: {h}"));
            }
            if let Err(e) = self.wait_healthy(c, Duration::from_secs(30)) {
                problems.push(format!("after {kind}: {e}; no more faults"));
                if self.verbose {
                    eprintln!(
                        "[{:>9}] nemesis: {e}; no more faults",
                        Clock::fmt(self.clock.now_ns())
                    );
                }
                // The run has failed; faults on a cluster that did not recover tell little
                // more, and the load goes on to its end.
                break;
            }
            let gap = self
                .rng
                .duration(Duration::from_secs(2), Duration::from_secs(5));
            sleep_unless(gap, Some(stop));
        }
        for h in self.heal_all(c) {
            problems.push(format!("at the end: {h}"));
        }
        problems
    }
}

/// Faults per kind.
pub fn count(faults: &[Fault]) -> BTreeMap<FaultKind, usize> {
    let mut m = BTreeMap::new();
    for f in faults {
        *m.entry(f.kind).or_insert(0) += 1;
    }
    m
}
