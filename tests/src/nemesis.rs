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
//!
//! Partitions hold for 3–8 s. Faults run one at a time; [`Nemesis::run`] leaves healthy
//! gaps between them and heals everything before it returns.
//!
//! # What cannot be injected here
//!
//! * **Disk faults**: no `EIO`/`ENOSPC` on write or fsync, no torn or lost writes, no slow
//!   disks. The server has no failpoints, and this harness has no fault-injecting file system
//!   (FUSE, `dm-flakey`) or `LD_PRELOAD` shim. (The WAL's torn-tail and corruption handling is
//!   tested separately, on files damaged between runs: `wal_damage.rs`, `crash_safety.rs`.)
//! * **Power loss**: `kill -9` loses only what the process had not handed to the kernel;
//!   writes the kernel accepted but had not synced survive, so a lost `fdatasync` (unsynced
//!   data dropped) is never exercised.
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
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::PartitionLeader,
        FaultKind::PartitionMinority,
        FaultKind::PartitionMajoritySplit,
        FaultKind::PartitionAsymmetric,
        FaultKind::Blackhole,
        FaultKind::Membership,
    ];

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
        f.notes.push(leader_note(c, &c.live()));
        if let Err(e) = c.try_restart(i) {
            f.error = Some(format!("restart failed: {e:#}"));
        }
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
    /// until `until` — and, with `every_kind`, at least until each kind was injected once (in
    /// a seeded order that covers every kind before repeating one). Stops early when `stop`
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
        let mut first_round = kinds.len();
        // Start with a healthy gap, so the workload gets going first.
        sleep_unless(Duration::from_secs(2), Some(stop));
        while !kinds.is_empty() && !stop.load(Ordering::Relaxed) {
            let must = every_kind && first_round > 0;
            // Roughly the longest a fault takes: do not start one that would overrun.
            if !must && Instant::now() + Duration::from_secs(10) > until {
                break;
            }
            if queue.is_empty() {
                queue = kinds.to_vec();
                self.rng.shuffle(&mut queue);
            }
            let kind = queue.pop().expect("refilled");
            self.inject(c, kind);
            first_round = first_round.saturating_sub(1);
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
