//! Linearizable reads by ReadIndex, batched: every read that arrives while no ReadIndex request is
//! in flight joins the next one, so a burst of reads costs one Raft round.

use raft::{ReadState, Storage};

use super::ReadDone;
use crate::error::ServerError;

/// Ticks to wait for a ReadIndex answer before asking again (raft-rs drops a request it cannot
/// serve yet, e.g. before the new leader has committed an entry of its term).
const RETRY_TICKS: u32 = 3;

struct InFlight {
    ctx: [u8; 16],
    waiters: Vec<ReadDone>,
    ticks: u32,
}

/// A request's context is this member's id and a counter: the leader keeps one pending request
/// per context and drops a duplicate, so contexts must differ across members and across runs of
/// one member (an answer to an earlier run's request would carry an index from before the new
/// read began).
pub struct ReadBatcher {
    member: u64,
    waiting: Vec<ReadDone>,
    in_flight: Option<InFlight>,
    next_ctx: u64,
}

impl ReadBatcher {
    pub fn new(member: u64) -> ReadBatcher {
        ReadBatcher {
            member,
            waiting: Vec::new(),
            in_flight: None,
            next_ctx: crate::cluster::ids::incarnation_counter_start(),
        }
    }

    /// The context of the next request.
    fn next_context(&mut self) -> [u8; 16] {
        self.next_ctx += 1;
        let mut ctx = [0; 16];
        ctx[..8].copy_from_slice(&self.member.to_le_bytes());
        ctx[8..].copy_from_slice(&self.next_ctx.to_le_bytes());
        ctx
    }

    pub fn push(&mut self, done: ReadDone) {
        self.waiting.push(done);
    }

    /// Sends a ReadIndex request for the waiting reads if none is in flight.
    pub fn issue<S: Storage>(&mut self, node: &mut raft::RawNode<S>) {
        if self.in_flight.is_some() || self.waiting.is_empty() {
            return;
        }
        let ctx = self.next_context();
        node.read_index(ctx.to_vec());
        self.in_flight = Some(InFlight {
            ctx,
            waiters: std::mem::take(&mut self.waiting),
            ticks: 0,
        });
    }

    /// Answers the reads a ReadIndex result belongs to.
    pub fn on_read_state(&mut self, rs: &ReadState) {
        let matches = self
            .in_flight
            .as_ref()
            .is_some_and(|f| rs.request_ctx.as_slice() == f.ctx.as_slice());
        if !matches {
            return;
        }
        if let Some(f) = self.in_flight.take() {
            for w in f.waiters {
                let _ = w.send(Ok(rs.index));
            }
        }
    }

    /// Re-sends a request that got no answer for a while.
    pub fn on_tick<S: Storage>(&mut self, node: &mut raft::RawNode<S>) {
        if let Some(f) = self.in_flight.as_mut() {
            f.ticks += 1;
            if f.ticks >= RETRY_TICKS {
                f.ticks = 0;
                node.read_index(f.ctx.to_vec());
            }
        }
    }

    /// Fails every waiting read.
    pub fn fail_all(&mut self, err: impl Fn() -> ServerError) {
        let in_flight = self.in_flight.take().map(|f| f.waiters).unwrap_or_default();
        for w in in_flight.into_iter().chain(self.waiting.drain(..)) {
            let _ = w.send(Err(err()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ReadBatcher;

    /// Issue 11 §1.9: the leader keeps one pending ReadIndex request per context and drops a
    /// duplicate, so the contexts of different members, and of two runs of one member, must
    /// never coincide.
    #[test]
    fn read_contexts_differ_across_members_and_runs() {
        let mut seen = HashSet::new();
        let mut batchers = vec![ReadBatcher::new(1), ReadBatcher::new(2)];
        std::thread::sleep(std::time::Duration::from_millis(2));
        // Member 1 again, as after a restart.
        batchers.push(ReadBatcher::new(1));
        for b in &mut batchers {
            for _ in 0..10_000 {
                assert!(seen.insert(b.next_context()), "a context repeated");
            }
        }
    }
}
