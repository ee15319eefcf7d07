//! endpoint health, status and hashkv; move-leader; defrag; alarm list and disarm.

use std::time::Instant;

use concord_client::GetOptions;

use crate::ctx::Ctx;
use crate::exit;
use crate::gofmt::{self, GoDuration};
use crate::printer::EpHealth;
use crate::rpc::{Cfg, Target};

/// etcdctl's `endpointsFromCluster`: the `--endpoints` as given, or with `--cluster` every
/// member's client URLs.
async fn endpoints_from_cluster(ctx: &Ctx, cfg: &Cfg) -> Vec<String> {
    if !ctx.inv.flags.bool("cluster") {
        return ctx.inv.flags.slice("endpoints");
    }
    let client = ctx.client(cfg);
    let members = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.member_list()
        })
        .await
        .unwrap_or_else(|e| {
            exit::with_error(
                exit::ERROR,
                &format!("failed to fetch endpoints from etcd cluster member list: {e}"),
            )
        });
    members
        .members
        .into_iter()
        .flat_map(|m| m.client_urls)
        .collect()
}

pub async fn health(mut ctx: Ctx) {
    ctx.apply_env();
    let printer = ctx.display();
    let (cfg, _) = ctx.client_config();
    let eps = endpoints_from_cluster(&ctx, &cfg).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for ep in eps {
        // One client per endpoint, as etcdctl makes them.
        let ep_cfg = Cfg::new(
            vec![ep.clone()],
            cfg.dial_timeout,
            cfg.command_timeout,
            cfg.debug,
        );
        let tx = tx.clone();
        tokio::spawn(async move {
            let client = match ep_cfg.client() {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(EpHealth {
                        ep,
                        health: false,
                        took: String::new(),
                        error: e,
                    });
                    return;
                }
            };
            let start = Instant::now();
            let r = ep_cfg
                .call(&Target::Balanced, Some(ep_cfg.deadline()), || {
                    client.get_with("health", GetOptions::new())
                })
                .await;
            let took = gofmt::format_duration(GoDuration::from_std(start.elapsed()));
            let (health, error) = match r {
                Ok(_) => (true, String::new()),
                Err(e) if e == "etcdserver: permission denied" => (true, String::new()),
                Err(e) => (false, e),
            };
            let _ = tx.send(EpHealth {
                ep,
                health,
                took,
                error,
            });
        });
    }
    drop(tx);
    let mut list = Vec::new();
    while let Some(h) = rx.recv().await {
        list.push(h);
    }
    let unhealthy = list.iter().any(|h| !h.error.is_empty());
    printer.endpoint_health(&list);
    if unhealthy {
        exit::with_error(exit::ERROR, "unhealthy cluster");
    }
}

pub async fn status(mut ctx: Ctx) {
    let (cfg, printer) = ctx.client_config();
    let mut list = Vec::new();
    let mut failed = false;
    for ep in endpoints_from_cluster(&ctx, &cfg).await {
        let client = cfg
            .pinned(&ep)
            .unwrap_or_else(|e| exit::with_error(exit::BAD_CONNECTION, &e));
        match cfg
            .call(&Target::Pinned(ep.clone()), Some(cfg.deadline()), || {
                client.status()
            })
            .await
        {
            Ok(s) => list.push((ep, s)),
            Err(e) => {
                failed = true;
                eprintln!("Failed to get the status of endpoint {ep} ({e})");
            }
        }
    }
    printer.endpoint_status(&list);
    if failed {
        exit::now(exit::ERROR);
    }
}

pub async fn hashkv(mut ctx: Ctx) {
    let (cfg, printer) = ctx.client_config();
    let rev = ctx.inv.flags.int("rev");
    let mut list = Vec::new();
    let mut last_err = None;
    for ep in endpoints_from_cluster(&ctx, &cfg).await {
        let client = cfg
            .pinned(&ep)
            .unwrap_or_else(|e| exit::with_error(exit::BAD_CONNECTION, &e));
        match cfg
            .call(&Target::Pinned(ep.clone()), Some(cfg.deadline()), || {
                client.hash_kv(rev)
            })
            .await
        {
            Ok(h) => list.push((ep, h)),
            Err(e) => {
                eprintln!("Failed to get the hash of endpoint {ep} ({e})");
                last_err = Some(e);
            }
        }
    }
    printer.endpoint_hashkv(&list);
    if let Some(e) = last_err {
        exit::with_error(exit::ERROR, &e);
    }
}

pub async fn move_leader(mut ctx: Ctx) {
    if ctx.args().len() != 1 {
        exit::with_error(exit::BAD_ARGS, "move-leader command needs 1 argument");
    }
    let target = gofmt::parse_uint(&ctx.args()[0], 16)
        .unwrap_or_else(|e| exit::with_error(exit::BAD_ARGS, &e));
    let (cfg, printer) = ctx.client_config();
    let eps = cfg.endpoints.clone();
    let deadline = cfg.deadline();
    // Find the leader among the endpoints, and send the request to it.
    for ep in &eps {
        let client = cfg
            .pinned(ep)
            .unwrap_or_else(|e| exit::with_error(exit::BAD_CONNECTION, &e));
        let s = cfg
            .call(&Target::Pinned(ep.clone()), Some(deadline), || {
                client.status()
            })
            .await
            .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
        if s.header.member_id == s.leader {
            let h = cfg
                .call(&Target::Balanced, Some(deadline), || {
                    client.move_leader(target)
                })
                .await
                .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
            printer.move_leader(s.leader, target, &h);
            return;
        }
    }
    exit::with_error(
        exit::BAD_ARGS,
        &format!("no leader endpoint given at {}", gofmt::string_slice(&eps)),
    );
}

pub async fn defrag(mut ctx: Ctx) {
    let data_dir = ctx.inv.flags.string("data-dir");
    if !data_dir.is_empty() {
        eprintln!(
            "Failed to defragment etcd data[{data_dir}] (defragmenting a data directory is not supported by concordctl: defragment the running member instead)"
        );
        exit::now(exit::ERROR);
    }
    let (cfg, _) = ctx.client_config();
    let mut failures = 0;
    for ep in endpoints_from_cluster(&ctx, &cfg).await {
        let client = cfg
            .pinned(&ep)
            .unwrap_or_else(|e| exit::with_error(exit::BAD_CONNECTION, &e));
        match cfg
            .call(&Target::Pinned(ep.clone()), Some(cfg.deadline()), || {
                client.defragment()
            })
            .await
        {
            Ok(_) => println!("Finished defragmenting etcd member[{ep}]"),
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
                failures += 1;
            }
        }
    }
    if failures != 0 {
        exit::now(exit::ERROR);
    }
}

pub async fn alarm(mut ctx: Ctx, disarm: bool) {
    if !ctx.args().is_empty() {
        let which = if disarm { "disarm" } else { "list" };
        exit::with_error(
            exit::BAD_ARGS,
            &format!("alarm {which} command accepts no arguments"),
        );
    }
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let deadline = Some(cfg.deadline());
    let list = cfg
        .call(&Target::Balanced, deadline, || client.alarm_list())
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    if !disarm {
        printer.alarm(&list);
        return;
    }
    // As clientv3 disarms "every alarm": one disarm per alarm listed, and an answer of its own
    // making (no header) with the alarms disarmed.
    let mut all = concord_client::AlarmResponse::default();
    for a in list.alarms {
        let r = cfg
            .call(&Target::Balanced, deadline, || {
                client.alarm_disarm(a.member_id, a.alarm)
            })
            .await
            .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
        all.alarms.extend(r.alarms);
    }
    printer.alarm(&all);
}
