//! The watch workload: W watchers, each on its own key, spread over S streams on C
//! connections; then P puts at a fixed rate to random watched keys. Reports how long creating
//! the watchers took, the server's resident memory per watcher (with `--server-pid`), and the
//! delay from each put's acknowledgement to the arrival of its event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use concord_proto::etcdserverpb as pb;
use pb::watch_request::RequestUnion;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::stats::{ms, rss_bytes, Samples};

#[derive(clap::Args)]
pub struct Args {
    /// Comma-separated endpoints; watch streams are spread over them, puts go to the first.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    endpoints: String,
    /// Watch streams.
    #[arg(long, default_value_t = 100)]
    streams: usize,
    /// Watchers, spread evenly over the streams, each on its own key.
    #[arg(long, default_value_t = 10_000)]
    watchers: usize,
    /// gRPC connections the streams share.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Puts to measure delivery with.
    #[arg(long, default_value_t = 1_000)]
    puts: usize,
    /// Puts per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// The server's pid, to report its resident memory per watcher (same machine only).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Key prefix of the watched keys.
    #[arg(long, default_value = "bench/watch/")]
    prefix: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

type Arrivals = Arc<Mutex<Vec<(i64, Instant)>>>;

fn key(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}{i:08}").into_bytes()
}

/// One watch stream: creates its watchers, then records when each event arrives.
async fn stream(
    channel: Channel,
    keys: Vec<Vec<u8>>,
    created: Arc<AtomicUsize>,
    arrivals: Arrivals,
) -> Result<()> {
    let (tx, rx) = mpsc::channel(256);
    let mut client = pb::watch_client::WatchClient::new(channel);
    // The requests must flow before the call returns: grpc-go servers (etcd) send the response
    // headers only with their first message.
    let sender = tokio::spawn(async move {
        for key in keys {
            let create = pb::WatchCreateRequest {
                key,
                ..Default::default()
            };
            let req = pb::WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(create)),
            };
            if tx.send(req).await.is_err() {
                return None;
            }
        }
        // Keep the request side open.
        Some(tx)
    });
    let mut responses = client.watch(ReceiverStream::new(rx)).await?.into_inner();
    while let Some(r) = responses.message().await? {
        if r.created {
            if r.canceled {
                bail!("watch refused: {}", r.cancel_reason);
            }
            created.fetch_add(1, Ordering::Relaxed);
        }
        if !r.events.is_empty() {
            let now = Instant::now();
            let mut a = arrivals.lock().unwrap_or_else(|e| e.into_inner());
            for e in &r.events {
                a.push((e.kv.as_ref().map_or(0, |kv| kv.mod_revision), now));
            }
        }
    }
    drop(sender);
    Ok(())
}

async fn wait_until(what: &str, timeout: Duration, done: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("{what}: not done within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

pub async fn run(a: Args) -> Result<()> {
    if a.streams == 0 || a.watchers < a.streams || a.connections == 0 || a.rate == 0 {
        bail!("need streams ≥ 1, watchers ≥ streams, connections ≥ 1, rate ≥ 1");
    }
    let channels = crate::load::connect(&a.endpoints, a.connections).await?;
    let rss = || a.server_pid.map(rss_bytes).transpose();
    let rss_before = rss()?;

    let created = Arc::new(AtomicUsize::new(0));
    let arrivals: Arrivals = Arc::default();
    let per_stream = a.watchers.div_ceil(a.streams);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..a.streams {
        let keys: Vec<Vec<u8>> = (s * per_stream..((s + 1) * per_stream).min(a.watchers))
            .map(|i| key(&a.prefix, i))
            .collect();
        tasks.push(tokio::spawn(stream(
            channels[s % channels.len()].clone(),
            keys,
            created.clone(),
            arrivals.clone(),
        )));
    }
    wait_until("creating watchers", Duration::from_secs(600), || {
        created.load(Ordering::Relaxed) >= a.watchers || tasks.iter().any(|t| t.is_finished())
    })
    .await?;
    if let Some(t) = tasks.iter_mut().find(|t| t.is_finished()) {
        t.await??;
        bail!("a watch stream ended early");
    }
    let create_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss()?;

    // Puts at a fixed rate to pseudo-random watched keys (a fixed LCG: runs are comparable).
    let mut kv = pb::kv_client::KvClient::new(channels[0].clone());
    // (revision, when the put was sent, when it was acknowledged)
    let mut acks: Vec<(i64, Instant, Instant)> = Vec::with_capacity(a.puts);
    let interval = Duration::from_secs_f64(1.0 / a.rate as f64);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = Instant::now();
    let put_start = Instant::now();
    for j in 0..a.puts {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let w = (x >> 33) as usize % a.watchers;
        let sent = Instant::now();
        let r = kv
            .put(pb::PutRequest {
                key: key(&a.prefix, w),
                value: j.to_string().into_bytes(),
                ..Default::default()
            })
            .await?
            .into_inner();
        acks.push((r.header.map_or(0, |h| h.revision), sent, Instant::now()));
        next += interval;
        tokio::time::sleep_until(next.into()).await;
    }
    let put_time = put_start.elapsed();
    let got = || arrivals.lock().map(|v| v.len()).unwrap_or(0);
    wait_until("receiving events", Duration::from_secs(120), || {
        got() >= a.puts
    })
    .await?;
    let arrived: HashMap<i64, Instant> = arrivals
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .copied()
        .collect();
    // An event that beat its acknowledgement counts as zero.
    let delays = Samples::new(
        acks.iter()
            .filter_map(|(rev, _, ack)| arrived.get(rev).map(|t| t.saturating_duration_since(*ack)))
            .collect(),
    );
    // From sending the put to the event: the write's commit plus the fan-out.
    let end_to_end = Samples::new(
        acks.iter()
            .filter_map(|(rev, sent, _)| {
                arrived.get(rev).map(|t| t.saturating_duration_since(*sent))
            })
            .collect(),
    );
    if delays.len() != a.puts {
        bail!("{} of {} events matched their puts", delays.len(), a.puts);
    }
    let per_watcher = match (rss_before, rss_after) {
        (Some(b), Some(f)) => Some(f.saturating_sub(b) as f64 / a.watchers as f64),
        _ => None,
    };
    let q = |p| ms(delays.quantile(p));
    let e = |p| ms(end_to_end.quantile(p));
    if a.json {
        let out = serde_json::json!({
            "workload": "watch",
            "watchers": a.watchers,
            "streams": a.streams,
            "connections": a.connections,
            "create_seconds": create_time.as_secs_f64(),
            "rss_before_bytes": rss_before,
            "rss_after_bytes": rss_after,
            "bytes_per_watcher": per_watcher,
            "puts": a.puts,
            "put_rate": a.puts as f64 / put_time.as_secs_f64(),
            "delivery_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0)},
            "put_to_event_ms": {"p50": e(0.5), "p90": e(0.9), "p99": e(0.99), "max": e(1.0)},
        });
        println!("{out}");
    } else {
        println!(
            "{} watchers on {} streams ({} connections): created in {:.2} s",
            a.watchers,
            a.streams,
            a.connections,
            create_time.as_secs_f64()
        );
        if let (Some(b), Some(f), Some(p)) = (rss_before, rss_after, per_watcher) {
            println!(
                "server memory: {:.1} MiB before, {:.1} MiB after: {:.0} bytes per watcher",
                b as f64 / 1048576.0,
                f as f64 / 1048576.0,
                p
            );
        }
        println!(
            "event delivery after the put's acknowledgement ({} puts at {:.0}/s): \
             p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            a.puts,
            a.puts as f64 / put_time.as_secs_f64(),
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0)
        );
        println!(
            "from sending the put to the event: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            e(0.5),
            e(0.9),
            e(0.99),
            e(1.0)
        );
    }
    Ok(())
}
