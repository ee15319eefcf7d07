//! In-process clusters for tests: real members (Raft thread, WAL, apply thread, RocksDB in temp
//! dirs) connected by a simulated network that drops, delays, reorders, duplicates and
//! partitions messages. Runs are seeded: a failure prints its seed, and `CONCORD_SIM_SEED`
//! replays it.

mod net;
#[cfg(test)]
mod tests;

pub use net::{Faults, SimNet, SimTransport};

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use concord_mvcc::{Applied, Command, KeyValue, PutRequest, RangeRequest};

use crate::error::ServerError;
use crate::raft::Transport;
use crate::server::{start_engine, Engine};
use crate::Config;

/// A cluster of in-process members on one `SimNet`.
pub struct SimCluster {
    pub seed: u64,
    pub net: Arc<SimNet>,
    _dir: tempfile::TempDir,
    configs: Vec<Config>,
    engines: Vec<Option<Engine>>,
    pub ids: Vec<u64>,
}

/// The seed of this run: `CONCORD_SIM_SEED` when set, else the clock.
pub fn seed() -> u64 {
    std::env::var("CONCORD_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

impl SimCluster {
    /// Starts `n` members of a new cluster. Peer URLs are never listened on: the network is
    /// simulated.
    pub async fn start(n: usize, seed: u64, faults: Faults, snapshot_count: u64) -> SimCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        // Ports nobody listens on: the start-up cluster check finds no one and moves on.
        let url = |i: usize| format!("http://127.0.0.1:{}", 9 + i);
        let initial: Vec<String> = (0..n).map(|i| format!("m{i}={}", url(i))).collect();
        let configs: Vec<Config> = (0..n)
            .map(|i| {
                let data = dir.path().join(format!("m{i}"));
                Config::parse_from([
                    "concord".to_string(),
                    format!("--name=m{i}"),
                    format!("--data-dir={}", data.display()),
                    format!("--initial-cluster={}", initial.join(",")),
                    format!("--initial-advertise-peer-urls={}", url(i)),
                    format!("--listen-peer-urls={}", url(i)),
                    "--initial-cluster-token=sim".to_string(),
                    "--heartbeat-interval=20".to_string(),
                    "--election-timeout=200".to_string(),
                    format!("--snapshot-count={snapshot_count}"),
                ])
            })
            .collect();
        let net = SimNet::new(seed, faults);
        let mut c = SimCluster {
            seed,
            net,
            _dir: dir,
            configs,
            engines: (0..n).map(|_| None).collect(),
            ids: vec![0; n],
        };
        for i in 0..n {
            c.start_member(i).await;
        }
        c
    }

    /// Starts (or restarts) member `i` on its data dir.
    pub async fn start_member(&mut self, i: usize) {
        assert!(self.engines[i].is_none(), "member {i} is running");
        let net = self.net.clone();
        let data_dir = self.configs[i].data_dir();
        let engine = start_engine(&self.configs[i], move |local| {
            net.attach(local.id, local.raft_tx.clone(), data_dir);
            Arc::new(SimTransport { id: local.id, net }) as Arc<dyn Transport>
        })
        .await
        .unwrap_or_else(|e| panic!("seed {}: member {i} did not start: {e}", self.seed));
        self.ids[i] = engine.member_id;
        self.engines[i] = Some(engine);
    }

    /// Stops member `i` cleanly (its data stays).
    pub async fn stop_member(&mut self, i: usize) {
        if let Some(engine) = self.engines[i].take() {
            self.net.detach(engine.member_id);
            engine.stop().await;
        }
    }

    pub fn engine(&self, i: usize) -> &Engine {
        self.engines[i].as_ref().expect("member is running")
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.engines.len())
            .filter(|i| self.engines[*i].is_some())
            .collect()
    }

    /// Cuts member `i` off from every other member; returns the others.
    pub fn isolate(&self, i: usize) -> Vec<usize> {
        let rest: Vec<usize> = (0..self.ids.len()).filter(|j| *j != i).collect();
        let rest_ids: Vec<u64> = rest.iter().map(|j| self.ids[*j]).collect();
        self.net.partition(&[self.ids[i]], &rest_ids);
        rest
    }

    /// The member that the running members `among` agree leads, if they agree.
    pub fn leader_among(&self, among: &[usize]) -> Option<usize> {
        let leaders: Vec<u64> = among
            .iter()
            .map(|i| self.engine(*i).core.raft_status().leader_id)
            .collect();
        let first = *leaders.first()?;
        if first == 0 || leaders.iter().any(|l| *l != first) {
            return None;
        }
        self.ids.iter().position(|id| *id == first)
    }

    /// Waits until `among` agree on a leader that is one of them.
    pub async fn wait_leader_among(&self, among: &[usize], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader_among(among) {
                if among.contains(&l) {
                    return l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "seed {}: no leader among {among:?} within {timeout:?}",
                self.seed
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn put(&self, i: usize, key: &str, value: &str) -> Result<Applied, ServerError> {
        self.engine(i)
            .core
            .propose_kv(Command::Put(PutRequest {
                key: key.as_bytes().to_vec(),
                value: value.as_bytes().to_vec(),
                ..Default::default()
            }))
            .await
    }

    /// Every key of member `i`, read locally (no barrier).
    pub async fn local_kvs(&self, i: usize) -> Vec<KeyValue> {
        let req = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        self.engine(i)
            .core
            .read(move |v| v.range(&req))
            .await
            .expect("local read")
            .1
            .kvs
    }

    /// A linearizable read of every key through member `i`.
    pub async fn linearizable_kvs(&self, i: usize) -> Result<Vec<KeyValue>, ServerError> {
        self.engine(i).core.linearizable_barrier().await?;
        Ok(self.local_kvs(i).await)
    }

    /// Waits until every running member holds the same keys and revision.
    pub async fn wait_converged(&self, timeout: Duration) -> Vec<KeyValue> {
        let deadline = Instant::now() + timeout;
        loop {
            let running = self.running();
            let mut all = Vec::new();
            for i in &running {
                all.push((self.engine(*i).core.revision(), self.local_kvs(*i).await));
            }
            if all.windows(2).all(|w| w[0] == w[1]) {
                return all.pop().map(|(_, kvs)| kvs).unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "seed {}: members did not converge: revisions {:?}",
                self.seed,
                all.iter().map(|(r, k)| (*r, k.len())).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.engines.len() {
            self.stop_member(i).await;
        }
        self.net.stop();
    }
}
