//! lease grant, revoke, timetolive, list and keep-alive.

use std::time::Duration;

use crate::ctx::Ctx;
use crate::exit;
use crate::gofmt;
use crate::printer::Format;
use crate::rpc::Target;

/// etcdctl's `leaseFromArgs`: a lease ID in hex.
fn lease_from_arg(arg: &str) -> i64 {
    gofmt::parse_int(arg, 16).unwrap_or_else(|e| {
        exit::with_error(
            exit::BAD_ARGS,
            &format!("bad lease ID arg ({e}), expecting ID in Hex"),
        )
    })
}

pub async fn grant(mut ctx: Ctx) {
    if ctx.args().len() != 1 {
        exit::with_error(exit::BAD_ARGS, "lease grant command needs TTL argument");
    }
    let ttl = gofmt::parse_int(&ctx.args()[0], 10)
        .unwrap_or_else(|e| exit::with_error(exit::BAD_ARGS, &format!("bad TTL ({e})")));
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let g = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.lease_grant(ttl, 0)
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &format!("failed to grant lease ({e})")));
    printer.grant(&g);
}

pub async fn revoke(mut ctx: Ctx) {
    if ctx.args().len() != 1 {
        exit::with_error(exit::BAD_ARGS, "lease revoke command needs 1 argument");
    }
    let id = lease_from_arg(&ctx.args()[0]);
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let h = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.lease_revoke(id)
        })
        .await
        .unwrap_or_else(|e| {
            exit::with_error(exit::ERROR, &format!("failed to revoke lease ({e})"))
        });
    printer.revoke(id, &h);
}

pub async fn timetolive(mut ctx: Ctx) {
    if ctx.args().len() != 1 {
        exit::with_error(
            exit::BAD_ARGS,
            "lease timetolive command needs lease ID as argument",
        );
    }
    let keys = ctx.inv.flags.bool("keys");
    // etcdctl builds its client before it reads the ID.
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let id = lease_from_arg(&ctx.args()[0]);
    let t = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.lease_time_to_live(id, keys)
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::BAD_CONNECTION, &e));
    printer.time_to_live(&t, keys);
}

pub async fn list(mut ctx: Ctx) {
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let l = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.lease_list()
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::BAD_CONNECTION, &e));
    printer.leases(&l);
}

pub async fn keep_alive(mut ctx: Ctx) {
    if ctx.args().len() != 1 {
        exit::with_error(
            exit::BAD_ARGS,
            "lease keep-alive command needs lease ID as argument",
        );
    }
    let id = lease_from_arg(&ctx.args()[0]);
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    if ctx.inv.flags.bool("once") {
        let k = cfg
            .call(&Target::Stream, Some(cfg.deadline()), || {
                client.lease_keep_alive_once(id)
            })
            .await
            .unwrap_or_else(|e| exit::with_error(exit::BAD_CONNECTION, &e));
        printer.keep_alive(&k);
        return;
    }
    // As clientv3's keep-alive: renew at once, then every third of the TTL; stop when the
    // server says the lease is gone; reopen the stream when it breaks.
    'streams: loop {
        let mut stream = match client.lease_keep_alive_stream(id).await {
            Ok(s) => s,
            Err(e) => {
                cfg.debug_note(&e.message());
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            match stream.next().await {
                Ok(Some(k)) if k.ttl > 0 => {
                    printer.keep_alive(&k);
                    tokio::time::sleep(Duration::from_secs(k.ttl as u64) / 3).await;
                }
                Ok(Some(_)) => break 'streams,
                Ok(None) | Err(_) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue 'streams;
                }
            }
        }
    }
    if printer.format == Format::Simple {
        println!("lease {id:016x} expired or revoked.");
    }
}
