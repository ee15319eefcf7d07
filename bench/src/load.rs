//! The request workloads: put, range, txn-put, mixed and lease keep-alive, run by many client
//! tasks over a few connections, for a number of requests or a duration, optionally at a target
//! rate. Latencies go into HDR histograms (microseconds).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use concord_proto::etcdserverpb as pb;
use hdrhistogram::Histogram;
use pb::kv_client::KvClient;
use pb::lease_client::LeaseClient;
use tonic::transport::{Channel, Endpoint};

/// Flags every request workload shares.
#[derive(clap::Args, Clone)]
pub struct Common {
    /// Comma-separated endpoints; connections are spread over them.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub endpoints: String,
    /// Concurrent clients (each sends one request at a time).
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// gRPC connections the clients share.
    #[arg(long, default_value_t = 10)]
    pub connections: usize,
    /// Requests in all (ignored with --duration).
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Run for this many seconds instead of a number of requests.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Requests per second across all clients (0: as fast as they go).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Distinct keys written or read.
    #[arg(long, default_value_t = 100_000)]
    pub key_space: u64,
    /// Keys in order instead of pseudo-random.
    #[arg(long)]
    pub sequential: bool,
    /// Values that compression cannot shrink (each a different slice of a pseudo-random pool),
    /// so the store's size on disk is the data's size; by default every value is the byte `v`
    /// repeated, which Concord's LZ4 compresses to almost nothing.
    #[arg(long)]
    pub incompressible: bool,
    /// Added to every key index (to load a large key space in parts).
    #[arg(long, default_value_t = 0)]
    pub key_offset: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Put,
    /// Linearizable (true) or serializable.
    Range {
        linearizable: bool,
        keys: u64,
    },
    TxnPut,
    /// Reads with probability `read_ratio`, else puts.
    Mixed {
        read_ratio: f64,
    },
    KeepAlive,
}

/// The fixed-width key for index `i` (`k` and zero-padded digits, so keys sort by index).
pub fn key(size: usize, i: u64) -> Vec<u8> {
    let mut k = format!("k{i:0w$}", w = size.saturating_sub(1)).into_bytes();
    k.truncate(size.max(1));
    k
}

struct Plan {
    common: Common,
    op: Op,
    issued: AtomicU64,
    errors: AtomicU64,
    start: Instant,
    deadline: Option<Instant>,
}

impl Plan {
    /// The next request's sequence number, or None when the run is over. With a rate, waits
    /// for its slot.
    async fn next(&self) -> Option<u64> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        match self.deadline {
            Some(d) if Instant::now() >= d => return None,
            None if n >= self.common.total => return None,
            _ => {}
        }
        if self.common.rate > 0 {
            let slot = self.start + Duration::from_secs_f64(n as f64 / self.common.rate as f64);
            tokio::time::sleep_until(slot.into()).await;
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
        }
        Some(n)
    }

    fn key_index(&self, n: u64, salt: u64) -> u64 {
        let i = if self.common.sequential {
            n % self.common.key_space
        } else {
            let mut x = n.wrapping_add(salt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            x ^= x >> 31;
            x.wrapping_mul(0xbf58_476d_1ce4_e5b9) % self.common.key_space
        };
        i + self.common.key_offset
    }
}

pub async fn connect(endpoints: &str, n: usize) -> Result<Vec<Channel>> {
    let eps: Vec<&str> = endpoints.split(',').collect();
    let mut out = Vec::new();
    for i in 0..n.max(1) {
        let url = eps[i % eps.len()].to_string();
        let ch = Endpoint::from_shared(url.clone())?
            .connect_with_connector(tower::service_fn(dial))
            .await
            .with_context(|| format!("connecting to {url}"))?;
        out.push(ch);
    }
    Ok(out)
}

/// Opens one TCP connection for a channel. Writes are coalesced (`concord_netio::Coalesce`), so
/// the requests of the clients sharing a connection leave in one send rather than one each:
/// the load generator then takes less of the CPU it shares with the server it measures.
async fn dial(
    uri: tonic::transport::Uri,
) -> std::io::Result<hyper_util::rt::TokioIo<concord_netio::Coalesce<tokio::net::TcpStream>>> {
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(2379);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(hyper_util::rt::TokioIo::new(concord_netio::Coalesce::new(
        stream,
    )))
}

/// One client: requests until the plan says stop.
async fn client(
    plan: Arc<Plan>,
    channel: Channel,
    id: u64,
    lease: Option<i64>,
) -> Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut kv = KvClient::new(channel.clone()).max_decoding_message_size(usize::MAX);
    let c = &plan.common;
    let pool = c.incompressible.then(|| noise_pool(c.value_size));
    let constant = vec![b'v'; c.value_size];
    let value_for = |n: u64| -> Vec<u8> {
        match &pool {
            // Consecutive requests take slices a prime stride apart, so no two values in a
            // block overlap for LZ4 to find.
            Some(p) => {
                let span = (p.len() - c.value_size) as u64;
                let at = (n.wrapping_mul(7919) % span.max(1)) as usize;
                p[at..at + c.value_size].to_vec()
            }
            None => constant.clone(),
        }
    };
    // Keep-alive: one long-lived stream per client.
    let mut keepalive = match (plan.op, lease) {
        (Op::KeepAlive, Some(_)) => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            Some((tx, rx))
        }
        _ => None,
    };
    let mut ka_stream = None;
    while let Some(n) = plan.next().await {
        let k = key(c.key_size, plan.key_index(n, id));
        let started = Instant::now();
        let ok = match plan.op {
            Op::Put => kv
                .put(pb::PutRequest {
                    key: k,
                    value: value_for(n),
                    ..Default::default()
                })
                .await
                .is_ok(),
            Op::Range { linearizable, keys } => {
                let range_end = if keys > 1 {
                    key(c.key_size, plan.key_index(n, id).saturating_add(keys))
                } else {
                    Vec::new()
                };
                kv.range(pb::RangeRequest {
                    key: k,
                    range_end,
                    serializable: !linearizable,
                    limit: keys as i64,
                    ..Default::default()
                })
                .await
                .is_ok()
            }
            Op::TxnPut => kv
                .txn(pb::TxnRequest {
                    success: vec![pb::RequestOp {
                        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                            key: k,
                            value: value_for(n),
                            ..Default::default()
                        })),
                    }],
                    ..Default::default()
                })
                .await
                .is_ok(),
            Op::Mixed { read_ratio } => {
                let r = (plan.key_index(n, id ^ 0x5555) as f64) / (c.key_space as f64);
                if r < read_ratio {
                    kv.range(pb::RangeRequest {
                        key: k,
                        ..Default::default()
                    })
                    .await
                    .is_ok()
                } else {
                    kv.put(pb::PutRequest {
                        key: k,
                        value: value_for(n),
                        ..Default::default()
                    })
                    .await
                    .is_ok()
                }
            }
            Op::KeepAlive => {
                let lease = lease.unwrap_or(0);
                if ka_stream.is_none() {
                    let (tx, rx) = keepalive.take().expect("one stream per client");
                    // The first request goes in before the call (grpc-go answers headers
                    // only with its first message).
                    tx.send(pb::LeaseKeepAliveRequest { id: lease }).await?;
                    let s = LeaseClient::new(channel.clone())
                        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                        .await?
                        .into_inner();
                    ka_stream = Some((tx, s, true));
                }
                let (tx, s, first) = ka_stream.as_mut().expect("opened");
                if !std::mem::take(first) {
                    tx.send(pb::LeaseKeepAliveRequest { id: lease }).await?;
                }
                matches!(s.message().await, Ok(Some(r)) if r.ttl > 0)
            }
        };
        if ok {
            hist.saturating_record(started.elapsed().as_micros().max(1) as u64);
        } else {
            plan.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(hist)
}

/// What a run measured.
pub struct Report {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub hist: Histogram<u64>,
}

impl Report {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "workload": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.seconds,
            "throughput": self.throughput(),
            "latency_ms": {
                "min": self.hist.min() as f64 / 1000.0,
                "p50": self.ms(0.5),
                "p90": self.ms(0.9),
                "p99": self.ms(0.99),
                "p999": self.ms(0.999),
                "max": self.hist.max() as f64 / 1000.0,
            },
        })
    }

    pub fn print(&self) {
        println!(
            "{}: {} requests in {:.2} s, {:.0} req/s, {} errors",
            self.name,
            self.requests,
            self.seconds,
            self.throughput(),
            self.errors
        );
        println!("  latency (ms)   min      p50      p90      p99    p99.9      max");
        println!(
            "               {:>6.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            self.hist.min() as f64 / 1000.0,
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.hist.max() as f64 / 1000.0
        );
    }
}

/// Runs `op` as `common` says and reports.
pub async fn run(name: &str, common: Common, op: Op) -> Result<()> {
    if common.clients == 0 || common.key_space == 0 {
        bail!("need clients ≥ 1 and key-space ≥ 1");
    }
    let channels = connect(&common.endpoints, common.connections).await?;
    // Keep-alive: one lease per client, granted first.
    let mut leases = vec![None; common.clients];
    if let Op::KeepAlive = op {
        let mut lc = LeaseClient::new(channels[0].clone());
        for l in leases.iter_mut() {
            let g = lc
                .lease_grant(pb::LeaseGrantRequest { ttl: 600, id: 0 })
                .await?
                .into_inner();
            *l = Some(g.id);
        }
    }
    let json = common.json;
    let start = Instant::now();
    let plan = Arc::new(Plan {
        deadline: common.duration.map(|d| start + Duration::from_secs_f64(d)),
        common,
        op,
        issued: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        start,
    });
    let progress = (!json && std::io::stderr().is_terminal()).then(|| {
        let plan = plan.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let done = plan.issued.load(Ordering::Relaxed);
                match plan.deadline {
                    Some(d) => eprint!(
                        "\r{done} requests, {:.0} s left   ",
                        d.saturating_duration_since(Instant::now()).as_secs_f64()
                    ),
                    None => eprint!("\r{done} / {} requests   ", plan.common.total),
                }
            }
        })
    });
    let mut tasks = Vec::new();
    for (i, lease) in leases.into_iter().enumerate() {
        tasks.push(tokio::spawn(client(
            plan.clone(),
            channels[i % channels.len()].clone(),
            i as u64,
            lease,
        )));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        hist.add(t.await??)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let report = Report {
        name: name.to_string(),
        requests: hist.len(),
        errors: plan.errors.load(Ordering::Relaxed),
        seconds,
        hist,
    };
    if json {
        println!("{}", report.json());
    } else {
        report.print();
    }
    Ok(())
}

/// Pseudo-random bytes for `--incompressible` values: 4 MiB plus one value (xorshift; the same
/// on every run).
fn noise_pool(value_size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..(4 << 20) + value_size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_asked_size_and_differ() {
        assert_eq!(key(32, 7).len(), 32);
        assert_eq!(key(8, 123).len(), 8);
        assert_ne!(key(32, 1), key(32, 2));
        assert!(key(32, 1) < key(32, 2));
    }
}
