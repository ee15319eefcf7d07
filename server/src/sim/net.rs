//! A simulated network for in-process clusters: every message between members goes through one
//! router thread that drops, delays (and so reorders), duplicates and partitions them, driven by
//! a seeded generator so that a failing run can be replayed with the same seed.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use raft::eraftpb::{Message, MessageType};

use crate::raft::RaftMsg;
use crate::raft::Transport;
use crate::state::snapshot;

/// splitmix64: small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// The faults applied to every message.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    /// Each message is delayed by a uniform time in `[0, max_delay]`, which also reorders.
    pub max_delay: Duration,
}

struct Queued {
    at: Instant,
    seq: u64,
    msg: Message,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Earliest first out of the max-heap.
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct State {
    rng: Rng,
    faults: Faults,
    members: HashMap<u64, (Sender<RaftMsg>, PathBuf)>,
    /// Directed links that carry nothing.
    cut: HashSet<(u64, u64)>,
    /// Directed links whose messages wait, in order, until `release`.
    held: HashSet<(u64, u64)>,
    stash: Vec<Message>,
    queue: BinaryHeap<Queued>,
    seq: u64,
    stopped: bool,
    delivered: u64,
    dropped: u64,
}

impl State {
    /// A lost snapshot message is reported to its sender as a failed send, as the gRPC
    /// transport reports one (raft-rs keeps the follower in its snapshot state until told).
    fn snapshot_lost(&self, m: &Message) {
        if m.get_msg_type() != MessageType::MsgSnapshot {
            return;
        }
        if let Some((from, _)) = self.members.get(&m.from) {
            let _ = from.send(RaftMsg::SnapshotSent {
                to: m.to,
                ok: false,
            });
        }
    }
}

/// The network. Members register with `attach`; `transport(id)` is what a member sends through.
pub struct SimNet {
    state: Mutex<State>,
    wake: Condvar,
}

impl SimNet {
    pub fn new(seed: u64, faults: Faults) -> Arc<SimNet> {
        let net = Arc::new(SimNet {
            state: Mutex::new(State {
                rng: Rng(seed),
                faults,
                members: HashMap::new(),
                cut: HashSet::new(),
                held: HashSet::new(),
                stash: Vec::new(),
                queue: BinaryHeap::new(),
                seq: 0,
                stopped: false,
                delivered: 0,
                dropped: 0,
            }),
            wake: Condvar::new(),
        });
        let router = net.clone();
        std::thread::Builder::new()
            .name("simnet".into())
            .spawn(move || router.route())
            .expect("start the router");
        net
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers (or re-registers after a restart) a member's inbox and data dir.
    pub fn attach(&self, id: u64, tx: Sender<RaftMsg>, data_dir: PathBuf) {
        self.lock().members.insert(id, (tx, data_dir));
    }

    pub fn detach(&self, id: u64) {
        self.lock().members.remove(&id);
    }

    /// Cuts every link between the two sides, both ways.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        let mut s = self.lock();
        for x in a {
            for y in b {
                s.cut.insert((*x, *y));
                s.cut.insert((*y, *x));
            }
        }
    }

    /// Holds back every message from `from` to `to` (sent from now on) until `release`.
    pub fn hold(&self, from: u64, to: u64) {
        self.lock().held.insert((from, to));
    }

    /// Sends what was held on the link, in the order it was sent, and lets it carry again.
    pub fn release(&self, from: u64, to: u64) {
        let mut s = self.lock();
        s.held.remove(&(from, to));
        let (go, keep): (Vec<Message>, Vec<Message>) = std::mem::take(&mut s.stash)
            .into_iter()
            .partition(|m| (m.from, m.to) == (from, to));
        s.stash = keep;
        let now = Instant::now();
        for msg in go {
            s.seq += 1;
            let seq = s.seq;
            s.queue.push(Queued { at: now, seq, msg });
        }
        drop(s);
        self.wake.notify_all();
    }

    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    pub fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_all();
    }

    fn enqueue(&self, from: u64, msgs: Vec<Message>) {
        let mut s = self.lock();
        let faults = s.faults;
        for m in msgs {
            if s.held.contains(&(from, m.to)) {
                s.stash.push(m);
                continue;
            }
            if s.cut.contains(&(from, m.to)) || s.rng.chance(faults.drop) {
                s.dropped += 1;
                s.snapshot_lost(&m);
                continue;
            }
            let copies = if s.rng.chance(faults.duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                let max = faults.max_delay.as_micros() as u64;
                let delay = Duration::from_micros(s.rng.below(max + 1));
                s.seq += 1;
                let seq = s.seq;
                s.queue.push(Queued {
                    at: Instant::now() + delay,
                    seq,
                    msg: m.clone(),
                });
            }
        }
        self.wake.notify_all();
    }

    fn route(&self) {
        let mut s = self.lock();
        loop {
            if s.stopped {
                return;
            }
            let now = Instant::now();
            match s.queue.peek() {
                Some(q) if q.at <= now => {
                    let q = s.queue.pop().expect("peeked");
                    let (from, to) = (q.msg.from, q.msg.to);
                    // A partition made while the message was in flight still stops it.
                    if s.cut.contains(&(from, to)) {
                        s.dropped += 1;
                        s.snapshot_lost(&q.msg);
                        continue;
                    }
                    let Some((tx, dir)) = s.members.get(&to).cloned() else {
                        s.dropped += 1;
                        s.snapshot_lost(&q.msg);
                        continue;
                    };
                    let sender = s.members.get(&from).map(|(t, _)| t.clone());
                    s.delivered += 1;
                    drop(s);
                    deliver(q.msg, &tx, &dir, sender);
                    s = self.lock();
                }
                Some(q) => {
                    let wait = q.at - now;
                    s = self
                        .wake
                        .wait_timeout(s, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None => {
                    s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

/// Delivers one message; a snapshot's checkpoint goes through the same chunking, checksums and
/// verification as over gRPC.
fn deliver(
    msg: Message,
    to: &Sender<RaftMsg>,
    dir: &std::path::Path,
    from: Option<Sender<RaftMsg>>,
) {
    if msg.get_msg_type() != MessageType::MsgSnapshot {
        let _ = to.send(RaftMsg::Step {
            msgs: vec![msg],
            _permit: None,
        });
        return;
    }
    let (peer, src) = (msg.to, crate::raft::checkpoint_dir(msg.get_snapshot()));
    let result = copy_snapshot(&src, dir).and_then(|received| {
        crate::state::snapshot::adopt(&received, peer)?;
        Ok(received)
    });
    if let Some(from) = from {
        let _ = from.send(RaftMsg::SnapshotSent {
            to: peer,
            ok: result.is_ok(),
        });
    }
    match result {
        Ok(received) => {
            let mut m = msg;
            m.mut_snapshot().data = Default::default();
            let _ = to.send(RaftMsg::SnapshotReceived {
                msg: m,
                dir: received,
            });
        }
        Err(e) => tracing::warn!(error = %e, "simulated snapshot transfer failed"),
    }
}

fn copy_snapshot(src: &std::path::Path, data_dir: &std::path::Path) -> Result<PathBuf, String> {
    let mut r =
        snapshot::Receiver::new(snapshot::incoming_tmp_dir(data_dir)).map_err(|e| e.to_string())?;
    for chunk in snapshot::ChunkReader::open(src).map_err(|e| e.to_string())? {
        r.write(&chunk.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let done = snapshot::incoming_done_dir(data_dir);
    r.finish(&done).map_err(|e| e.to_string())?;
    Ok(done)
}

/// What one member sends through.
pub struct SimTransport {
    pub id: u64,
    pub net: Arc<SimNet>,
}

impl Transport for SimTransport {
    fn send(&self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            self.net.enqueue(self.id, msgs);
        }
    }

    fn set_peers(&self, _peers: Vec<(u64, Vec<String>)>) {
        // Every attached member is reachable (unless cut).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot message that never arrives (a cut link, a member not attached) is reported
    /// to its sender as a failed send; other lost messages are not reported.
    #[test]
    fn a_lost_snapshot_is_reported_to_its_sender() {
        let net = SimNet::new(
            1,
            Faults {
                drop: 0.0,
                duplicate: 0.0,
                max_delay: Duration::ZERO,
            },
        );
        let (tx1, rx1) = std::sync::mpsc::channel();
        net.attach(1, tx1, std::env::temp_dir());
        let msg = |t: MessageType, to: u64| {
            let mut m = Message::default();
            m.set_msg_type(t);
            m.from = 1;
            m.to = to;
            m
        };
        // Member 2 is not attached: dropped when routed.
        net.enqueue(1, vec![msg(MessageType::MsgHeartbeat, 2)]);
        net.enqueue(1, vec![msg(MessageType::MsgSnapshot, 2)]);
        // A cut link: dropped when queued.
        net.partition(&[1], &[3]);
        net.enqueue(1, vec![msg(MessageType::MsgSnapshot, 3)]);
        let mut failed = Vec::new();
        while let Ok(m) = rx1.recv_timeout(std::time::Duration::from_secs(2)) {
            match m {
                RaftMsg::SnapshotSent { to, ok } => failed.push((to, ok)),
                _ => panic!("only snapshot reports are expected"),
            }
            if failed.len() == 2 {
                break;
            }
        }
        failed.sort_unstable();
        assert_eq!(failed, [(2, false), (3, false)]);
        net.stop();
    }

    #[test]
    fn the_generator_is_seeded() {
        let mut a = Rng(7);
        let mut b = Rng(7);
        let xs: Vec<u64> = (0..10).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..10).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng(8).next(), xs[0]);
        let hits = (0..10_000).filter(|_| a.chance(0.1)).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }
}
