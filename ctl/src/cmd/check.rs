//! check perf: a write load at a fixed rate for a while, then etcdctl's verdict. The load comes
//! from concordctl's own generator: many clients, each on its own connection, fed by one rate
//! limiter, so that the client is not the bottleneck.

use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_client::{Client, DeleteOptions, GetOptions};

use crate::ctx::Ctx;
use crate::exit;
use crate::gofmt;
use crate::rpc::Target;

struct Load {
    limit: u64,
    clients: usize,
    duration: u64,
}

fn load(name: &str) -> Option<Load> {
    Some(match name {
        "s" | "small" => Load {
            limit: 150,
            clients: 50,
            duration: 60,
        },
        "m" | "medium" => Load {
            limit: 1000,
            clients: 200,
            duration: 60,
        },
        "l" | "large" => Load {
            limit: 8000,
            clients: 500,
            duration: 60,
        },
        "xl" | "xLarge" => Load {
            limit: 15000,
            clients: 1000,
            duration: 60,
        },
        _ => return None,
    })
}

/// A small, fast generator for the keys (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Go's `binary.PutVarint` into the start of a zeroed 256-byte key, as etcdctl makes its keys.
fn key(prefix: &str, n: i64) -> Vec<u8> {
    let mut k = vec![0u8; 256];
    let mut ux = (n as u64) << 1;
    if n < 0 {
        ux = !ux;
    }
    let mut i = 0;
    while ux >= 0x80 {
        k[i] = (ux as u8) | 0x80;
        ux >>= 7;
        i += 1;
    }
    k[i] = ux as u8;
    let mut out = prefix.as_bytes().to_vec();
    out.extend_from_slice(&k);
    out
}

fn stats(lats: &[f64]) -> (f64, f64) {
    let n = lats.len().max(1) as f64;
    let mean = lats.iter().sum::<f64>() / n;
    let var = lats.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / n;
    (lats.iter().copied().fold(0.0, f64::max), var.sqrt())
}

pub async fn perf(mut ctx: Ctx) {
    let load_name = ctx.inv.flags.string("load");
    let Some(mut cfg_load) = load(&load_name) else {
        exit::with_error(
            exit::BAD_FEATURE,
            &format!("unknown load option {load_name}"),
        )
    };
    // Hidden, for tests: a shorter run.
    if ctx.inv.flags.int("duration") > 0 {
        cfg_load.duration = ctx.inv.flags.int("duration") as u64;
    }
    let prefix = ctx.inv.flags.string("prefix");
    let (cfg, _) = ctx.client_config();
    let clients: Vec<Client> = (0..cfg_load.clients).map(|_| ctx.client(&cfg)).collect();
    let first = clients[0].clone();
    let deadline = Instant::now() + Duration::from_secs(cfg_load.duration);
    let resp = cfg
        .call(&Target::Balanced, Some(deadline), || {
            first.get_with(prefix.clone(), GetOptions::new().prefix().limit(1))
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    if !resp.kvs.is_empty() {
        exit::with_error(
            exit::INVALID_INPUT,
            &format!(
                "prefix {} has keys. Delete with etcdctl del --prefix {prefix} first",
                gofmt::quote_str(&prefix)
            ),
        );
    }
    let (tx, rx) = async_channel(cfg_load.clients);
    let value = vec![0u8; 1024];
    let results = Arc::new(std::sync::Mutex::new((
        Vec::<f64>::new(),
        std::collections::BTreeMap::<String, u64>::new(),
    )));
    let start = Instant::now();
    let mut workers = Vec::new();
    for c in clients.clone() {
        let rx = rx.clone();
        let value = value.clone();
        let results = results.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some(k) = next else { return };
                let st = Instant::now();
                let r = c.put(k, value.clone()).await;
                let took = st.elapsed().as_secs_f64();
                let mut res = results.lock().unwrap_or_else(|p| p.into_inner());
                match r {
                    Ok(_) => res.0.push(took),
                    Err(e) => *res.1.entry(crate::rpc::text(&e)).or_default() += 1,
                }
            }
        }));
    }
    // The rate limiter: one request every 1/limit seconds until the duration is over.
    let period = Duration::from_secs_f64(1.0 / cfg_load.limit as f64);
    let mut rng = Rng((std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1))
        | 1);
    let mut tick = tokio::time::interval(period);
    let end = start + Duration::from_secs(cfg_load.duration);
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_shown = 0;
    loop {
        tick.tick().await;
        if Instant::now() >= end {
            break;
        }
        let n = (rng.next() >> 1) as i64;
        if tx.send(key(&prefix, n)).await.is_err() {
            break;
        }
        if progress {
            let secs = start.elapsed().as_secs();
            if secs != last_shown {
                last_shown = secs;
                eprint!("\r{secs} / {} s", cfg_load.duration);
            }
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    if progress {
        eprintln!();
    }
    let total = start.elapsed().as_secs_f64();
    let (lats, errors) = {
        let r = results.lock().unwrap_or_else(|p| p.into_inner());
        (r.0.clone(), r.1.clone())
    };
    let dresp = cfg
        .call(
            &Target::Balanced,
            Some(Instant::now() + Duration::from_secs(30)),
            || first.delete_with(prefix.clone(), DeleteOptions::new().prefix()),
        )
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    if ctx.inv.flags.bool("auto-compact") {
        let rev = dresp.header.revision;
        println!("Compacting with revision {rev}");
        cfg.call(
            &Target::Balanced,
            Some(Instant::now() + Duration::from_secs(30)),
            || first.compact(rev, true),
        )
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
        println!("Compacted with revision {rev}");
    }
    if ctx.inv.flags.bool("auto-defrag") {
        for ep in &cfg.endpoints {
            println!("Defragmenting {}", gofmt::quote_str(ep));
            let c = cfg
                .pinned(ep)
                .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
            cfg.call(
                &Target::Pinned(ep.clone()),
                Some(Instant::now() + Duration::from_secs(30)),
                || c.defragment(),
            )
            .await
            .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
            println!("Defragmented {}", gofmt::quote_str(ep));
        }
    }
    let mut ok = true;
    if !errors.is_empty() {
        println!("FAIL: too many errors");
        for (k, v) in &errors {
            println!("FAIL: ERROR({k}) -> {v}");
        }
        ok = false;
    }
    let rps = lats.len() as f64 / total.max(f64::MIN_POSITIVE);
    if rps / cfg_load.limit as f64 <= 0.9 {
        println!("FAIL: Throughput too low: {} writes/s", rps as i64 + 1);
        ok = false;
    } else {
        println!("PASS: Throughput is {} writes/s", rps as i64 + 1);
    }
    let (slowest, stddev) = stats(&lats);
    if slowest > 0.5 {
        println!("Slowest request took too long: {slowest:.6}s");
        ok = false;
    } else {
        println!("PASS: Slowest request took {slowest:.6}s");
    }
    if stddev > 0.1 {
        println!("Stddev too high: {stddev:.6}s");
        ok = false;
    } else {
        println!("PASS: Stddev is {stddev:.6}s");
    }
    if ok {
        println!("PASS");
    } else {
        println!("FAIL");
        exit::now(exit::ERROR);
    }
}

type Shared<T> = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<T>>>;

/// A bounded queue that many workers take from.
fn async_channel<T>(cap: usize) -> (tokio::sync::mpsc::Sender<T>, Shared<T>) {
    let (tx, rx) = tokio::sync::mpsc::channel(cap.max(1));
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_varints_in_256_bytes() {
        let k = key("/p/", 1);
        assert_eq!(k.len(), 3 + 256);
        assert_eq!(&k[3..5], &[2, 0]);
        let k = key("", 300);
        assert_eq!(&k[..3], &[0xd8, 0x04, 0]);
    }

    #[test]
    fn loads_and_aliases() {
        assert_eq!(load("small").map(|l| l.limit), Some(150));
        assert_eq!(load("xLarge").map(|l| l.clients), Some(1000));
        assert!(load("huge").is_none());
    }
}
