//! Paged range reads against one full scan: kube-apiserver lists a resource 500 keys at a time
//! (`limit` plus a start key after the last one returned), so listing N keys must cost about
//! what one scan of them costs, not O(N²/limit) (issue 11 §1.13: each page used to count the
//! whole rest of the range).
//!
//! Loads `--keys` keys under `--prefix` (transactions of 100 puts), then, `--rounds` times
//! each and alternating: one Range over the whole prefix, and the same keys read page by page.
//! Reads are linearizable, as kube-apiserver's are. Prints the medians and their ratio.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use concord_client::prefix_end;
use concord_proto::etcdserverpb as pb;
use pb::kv_client::KvClient;
use tonic::transport::Channel;

use crate::stats::Samples;

#[derive(clap::Args)]
pub struct Args {
    /// The server's client URL.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    endpoints: String,
    /// Keys to write first (0: list what is already under the prefix).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Keys per page.
    #[arg(long, default_value_t = 500)]
    page: i64,
    /// Full scans and paged lists, each.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Key prefix.
    #[arg(long, default_value = "/registry/bench-list/")]
    prefix: String,
    /// Value size in bytes (about a small pod's).
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

async fn load(kv: &KvClient<Channel>, args: &Args) -> Result<()> {
    let value = vec![b'v'; args.value_size];
    let batches: Vec<u64> = (0..args.keys.div_ceil(100)).collect();
    let mut tasks = Vec::new();
    for part in batches.chunks(batches.len().div_ceil(8).max(1)) {
        let (mut kv, part, value) = (kv.clone(), part.to_vec(), value.clone());
        let (prefix, keys) = (args.prefix.clone(), args.keys);
        tasks.push(tokio::spawn(async move {
            for b in part {
                let success = (b * 100..((b + 1) * 100).min(keys))
                    .map(|i| pb::RequestOp {
                        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                            key: format!("{prefix}{i:08}").into_bytes(),
                            value: value.clone(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                kv.txn(pb::TxnRequest {
                    success,
                    ..Default::default()
                })
                .await?;
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// One Range over the whole prefix: (keys, time).
async fn full_scan(kv: &mut KvClient<Channel>, prefix: &[u8]) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let r = kv
        .range(pb::RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok((r.kvs.len(), started.elapsed()))
}

/// The prefix page by page: (keys, pages, time).
async fn paged(
    kv: &mut KvClient<Channel>,
    prefix: &[u8],
    page: i64,
) -> Result<(usize, usize, Duration)> {
    let end = prefix_end(prefix);
    let mut start = prefix.to_vec();
    let (mut keys, mut pages) = (0, 0);
    let started = Instant::now();
    loop {
        let r = kv
            .range(pb::RangeRequest {
                key: start,
                range_end: end.clone(),
                limit: page,
                ..Default::default()
            })
            .await?
            .into_inner();
        pages += 1;
        keys += r.kvs.len();
        match r.kvs.last() {
            Some(last) if r.more => {
                start = last.key.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    Ok((keys, pages, started.elapsed()))
}

pub async fn run(args: Args) -> Result<()> {
    let channel = crate::load::connect(&args.endpoints, 1).await?.remove(0);
    let mut kv = KvClient::new(channel).max_decoding_message_size(usize::MAX);
    let prefix = args.prefix.as_bytes().to_vec();
    if args.keys > 0 {
        let started = Instant::now();
        load(&kv, &args).await?;
        if !args.json {
            println!(
                "loaded {} keys of {} B in {:.1} s",
                args.keys,
                args.value_size,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let (mut full, mut paged_times) = (Vec::new(), Vec::new());
    let (mut n, mut pages) = (0, 0);
    for _ in 0..args.rounds.max(1) {
        let (k, t) = full_scan(&mut kv, &prefix).await?;
        full.push(t);
        let (k2, p, t2) = paged(&mut kv, &prefix, args.page).await?;
        paged_times.push(t2);
        if k != k2 {
            bail!("the full scan returned {k} keys, the pages {k2}");
        }
        (n, pages) = (k, p);
    }
    let (f, p) = (
        Samples::new(full).quantile(0.5),
        Samples::new(paged_times).quantile(0.5),
    );
    let ratio = p.as_secs_f64() / f.as_secs_f64().max(1e-9);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "keys": n, "page": args.page, "pages": pages, "rounds": args.rounds,
                "full_scan_ms": f.as_secs_f64() * 1e3,
                "paged_ms": p.as_secs_f64() * 1e3,
                "paged_over_full": ratio,
            })
        );
    } else {
        println!(
            "{n} keys: one range {:.0} ms; {pages} pages of {} {:.0} ms; paged/full {ratio:.2} \
             (medians of {})",
            f.as_secs_f64() * 1e3,
            args.page,
            p.as_secs_f64() * 1e3,
            args.rounds
        );
    }
    Ok(())
}
