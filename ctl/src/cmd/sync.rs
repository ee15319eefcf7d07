//! lock and elect, on the client's mutex and election (clientv3/concurrency's protocol, so
//! they interoperate with etcdctl's).

use concord_client::{Election, GetOptions, GetResponse, Header, Mutex, Session};
use tokio::signal::unix::{signal, SignalKind};

use crate::ctx::Ctx;
use crate::exit;
use crate::rpc;

/// Completes on SIGINT or SIGTERM.
async fn interrupted() {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn fail(e: &concord_client::Error) -> ! {
    exit::with_error(exit::ERROR, &rpc::text(e))
}

pub async fn lock(mut ctx: Ctx) {
    if ctx.args().is_empty() {
        exit::with_error(
            exit::BAD_ARGS,
            "lock takes a lock name argument and an optional command to execute",
        );
    }
    let name = ctx.args()[0].clone();
    let cmd_args = ctx.args()[1..].to_vec();
    let ttl = ctx.inv.flags.int("ttl");
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    // Signals are caught from here on, as etcdctl does once its session exists.
    let stop = interrupted();
    tokio::pin!(stop);
    let session = Session::new(&client, ttl)
        .await
        .unwrap_or_else(|e| fail(&e));
    let expired = session.on_expiry();
    let mut m = Mutex::new(&session, name);
    tokio::select! {
        r = m.lock() => r.unwrap_or_else(|e| fail(&e)),
        _ = &mut stop => exit::with_error(exit::ERROR, "context canceled"),
    }
    let key = m.key().map(<[u8]>::to_vec).unwrap_or_default();
    if !cmd_args.is_empty() {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let status = std::process::Command::new(&cmd_args[0])
            .args(&cmd_args[1..])
            .env("ETCD_LOCK_KEY", String::from_utf8_lossy(&key).into_owned())
            .env("ETCD_LOCK_REV", m.revision().to_string())
            .status();
        let unlocked = m.unlock().await;
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => exit::with_error(
                exit::ERROR,
                &match s.code() {
                    Some(c) => format!("exit status {c}"),
                    None => format!("signal: {s}"),
                },
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => exit::with_error(
                exit::ERROR,
                &format!(
                    "exec: {}: executable file not found in $PATH",
                    crate::gofmt::quote_str(&cmd_args[0])
                ),
            ),
            Err(e) => exit::with_error(exit::ERROR, &e.to_string()),
        }
        if let Err(e) = unlocked {
            fail(&e);
        }
        return;
    }
    let resp = client
        .get_with(key.clone(), GetOptions::new())
        .await
        .unwrap_or_else(|e| fail(&e));
    if resp.kvs.is_empty() {
        exit::with_error(exit::ERROR, "lock lost on init");
    }
    printer.get(&resp);
    tokio::select! {
        _ = &mut stop => {
            m.unlock().await.unwrap_or_else(|e| fail(&e));
        }
        _ = expired => exit::with_error(exit::ERROR, "session expired"),
    }
}

pub async fn elect(mut ctx: Ctx) {
    let n = ctx.args().len();
    if n != 1 && n != 2 {
        exit::with_error(
            exit::BAD_ARGS,
            "elect takes one election name argument and an optional proposal argument",
        );
    }
    let listen = ctx.inv.flags.bool("listen");
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let name = ctx.args()[0].clone();
    if n == 1 && !listen {
        exit::with_error(exit::BAD_ARGS, "no proposal argument but -l not set");
    }
    if n == 2 && listen {
        exit::with_error(exit::BAD_ARGS, "proposal given but -l is set");
    }
    let stop = interrupted();
    tokio::pin!(stop);
    // etcdctl opens a session (a lease) even to observe.
    let session = Session::new(&client, 60).await.unwrap_or_else(|e| fail(&e));
    if n == 1 {
        let observe = Election::observe(&client, name, |kv| {
            printer.get(&GetResponse {
                header: Header::default(),
                kvs: vec![kv.clone()],
                more: false,
                count: 1,
            });
            true
        });
        tokio::select! {
            r = observe => {
                if let Err(e) = r {
                    fail(&e);
                }
                exit::with_error(exit::ERROR, "elect: observer lost");
            }
            _ = &mut stop => return,
        }
    }
    let proposal = ctx.args()[1].clone();
    let expired = session.on_expiry();
    let mut e = Election::new(&session, name);
    tokio::select! {
        r = e.campaign(proposal) => r.unwrap_or_else(|e| fail(&e)),
        _ = &mut stop => exit::with_error(exit::ERROR, "context canceled"),
    }
    let key = e.key().map(<[u8]>::to_vec).unwrap_or_default();
    let resp = client
        .get_with(key, GetOptions::new())
        .await
        .unwrap_or_else(|e| fail(&e));
    printer.get(&resp);
    tokio::select! {
        _ = &mut stop => {}
        _ = expired => exit::with_error(exit::ERROR, "elect: session expired"),
    }
    e.resign().await.unwrap_or_else(|e| fail(&e));
}
