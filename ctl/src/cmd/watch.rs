//! watch: one watch from the command line (optionally running a command per event), or
//! several from stdin with `-i`.

use std::io::{BufRead, Write};

use concord_client::{Client, Error, EventKind, WatchBatch, WatchOptions, WatchStream};
use tokio::sync::broadcast;

use crate::cli::Flags;
use crate::ctx::Ctx;
use crate::exit;
use crate::gofmt;
use crate::printer::{Printer, WatchOut};
use crate::rpc;

const BAD_ARGS_NUM: &str = "bad number of arguments";
const CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
const SEPARATOR: &str = "bad number of arguments (found separator --, but no commands)";
const INTERACTIVE_WATCH: &str = "args[0] must be 'watch' for interactive calls";

/// A watch's settings from its flags.
#[derive(Clone, Copy, Default)]
struct WatchFlags {
    prefix: bool,
    rev: i64,
    prev_kv: bool,
}

impl WatchFlags {
    fn from(f: &Flags) -> WatchFlags {
        WatchFlags {
            prefix: f.bool("prefix"),
            rev: f.int("rev"),
            prev_kv: f.bool("prev-kv"),
        }
    }
}

/// etcdctl's `parseWatchArgs` for a command line: the watch's arguments and the command to run
/// per event (after `--`).
fn parse_args(
    os_args: &[String],
    command_args: &[String],
    env_key: &str,
    env_range: &str,
) -> Result<(Vec<String>, Vec<String>), &'static str> {
    let mut raw: &[String] = &os_args[1.min(os_args.len())..];
    if let Some(i) = raw.iter().position(|a| a == "watch") {
        raw = &raw[i + 1..];
    }
    let watch_args = command_args.to_vec();
    let exec_idx = raw.iter().position(|a| a == "--");
    if let Some(i) = exec_idx {
        if i == raw.len() - 1 {
            return Err(SEPARATOR);
        }
    }
    if exec_idx.is_none() && raw.is_empty() && env_key.is_empty() {
        return Err(BAD_ARGS_NUM);
    }
    if let (Some(exec_idx), false) = (exec_idx, env_key.is_empty()) {
        // Arguments before "--" besides the environment's key conflict with it.
        let mut ridx = raw.len() as isize - 1;
        for w in watch_args.iter().rev() {
            if ridx >= 0 && *w == raw[ridx as usize] {
                ridx -= 1;
                continue;
            }
            if ridx == exec_idx as isize {
                return Err(CONFLICT_ENV);
            }
        }
    }
    if exec_idx.is_none() && !watch_args.is_empty() && !env_key.is_empty() {
        return Err(CONFLICT_ENV);
    }
    let exec_args: Vec<String> = match exec_idx {
        Some(i) => raw[i + 1..].to_vec(),
        None => Vec::new(),
    };
    Ok((
        with_env_key(watch_args, &exec_args, env_key, env_range),
        exec_args,
    ))
}

/// The watch's arguments with the environment's key (and range end) first, and without the
/// words after "--", which cobra hands over as arguments too.
fn with_env_key(
    mut watch_args: Vec<String>,
    exec_args: &[String],
    env_key: &str,
    env_range: &str,
) -> Vec<String> {
    if !env_key.is_empty() {
        let mut ranges = vec![env_key.to_string()];
        if !env_range.is_empty() {
            ranges.push(env_range.to_string());
        }
        ranges.append(&mut watch_args);
        watch_args = ranges;
    }
    if let Some(first) = exec_args.first() {
        match watch_args.iter().rposition(|a| a == first) {
            Some(end) => watch_args.truncate(end),
            None => watch_args.clear(),
        }
    }
    watch_args
}

/// etcdctl's `parseWatchArgs` for a line of `watch -i`: the watch's arguments, the command, and
/// the flags given on that line.
fn parse_interactive(
    line_args: &[String],
    env_key: &str,
    env_range: &str,
) -> Result<(Vec<String>, Vec<String>, WatchFlags), String> {
    if line_args.first().map(String::as_str) != Some("watch") {
        return Err(INTERACTIVE_WATCH.into());
    }
    let args = &line_args[1..];
    let exec_idx = args.iter().position(|a| a == "--");
    if let Some(i) = exec_idx {
        if i == args.len() - 1 {
            return Err(SEPARATOR.into());
        }
    }
    let root = crate::spec::watch_cmd();
    let mut flags = Flags::default();
    for f in &root.local {
        flags.decls.insert(f.name, f.clone());
        flags.values.insert(
            f.name,
            match f.kind {
                crate::cli::Kind::Bool => crate::cli::Value::Bool(false),
                _ => crate::cli::Value::Int(0),
            },
        );
    }
    let (positional, flags) = crate::cli::parse_flag_set(flags, args)?;
    if exec_idx.is_none() && env_key.is_empty() && positional.is_empty() {
        return Err(BAD_ARGS_NUM.into());
    }
    if exec_idx.is_none() && !positional.is_empty() && !env_key.is_empty() {
        return Err(CONFLICT_ENV.into());
    }
    let exec_args: Vec<String> = match exec_idx {
        Some(i) => args[i + 1..].to_vec(),
        None => Vec::new(),
    };
    let watch_args = with_env_key(positional, &exec_args, env_key, env_range);
    Ok((watch_args, exec_args, WatchFlags::from(&flags)))
}

/// etcdctl's `getWatchChan`: opens the watch.
async fn open(
    client: &Client,
    args: &[String],
    wf: WatchFlags,
) -> Result<Result<WatchStream, Error>, String> {
    let Some(key) = args.first() else {
        return Err(BAD_ARGS_NUM.into());
    };
    let mut key = key.clone().into_bytes();
    let mut opts = WatchOptions::new().start_revision(wf.rev);
    if args.len() == 2 {
        if wf.prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".into());
        }
        opts = opts.range_end(args[1].clone());
    }
    if wf.prefix {
        if key.is_empty() {
            key = vec![0];
            opts = opts.from_key();
        } else {
            opts = opts.prefix();
        }
    }
    if wf.prev_kv {
        opts = opts.prev_kv();
    }
    loop {
        match client.watch(key.clone(), opts.clone()).await {
            // As etcdctl's client, wait for an endpoint to come up.
            Err(e) if e.is_unreachable() => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => return Ok(other),
        }
    }
}

/// Runs the command of `watch … -- cmd` for each event of a batch, as etcdctl does.
fn exec_for(batch: &WatchBatch, exec: &[String]) {
    if exec.is_empty() {
        return;
    }
    for e in &batch.events {
        let _ = std::io::stdout().flush();
        let kind = match e.kind {
            EventKind::Put => "PUT",
            EventKind::Delete => "DELETE",
        };
        let status = std::process::Command::new(&exec[0])
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", batch.header.revision.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", gofmt::quote_str(kind))
            .env("ETCD_WATCH_KEY", gofmt::quote(&e.kv.key))
            .env("ETCD_WATCH_VALUE", gofmt::quote(&e.kv.value))
            .status();
        let err = match status {
            Ok(s) if s.success() => continue,
            Ok(s) => match s.code() {
                Some(c) => format!("exit status {c}"),
                None => format!("signal: {}", s),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
                "exec: {}: executable file not found in $PATH",
                gofmt::quote_str(&exec[0])
            ),
            Err(e) => e.to_string(),
        };
        let quoted: Vec<String> = exec.iter().map(|a| gofmt::quote_str(a)).collect();
        eprintln!("command [{}] error ({err})", quoted.join(" "));
        exit::now(1);
    }
}

/// etcdctl's `printWatchCh`: prints every response until the watch ends. `progress` receives
/// the requests of `watch -i`'s `progress` lines.
async fn print_watch(
    mut w: WatchStream,
    printer: &Printer,
    exec: &[String],
    mut progress: Option<broadcast::Receiver<()>>,
) {
    loop {
        let next = match progress.as_mut() {
            Some(rx) => tokio::select! {
                n = w.next() => n,
                r = rx.recv() => {
                    if r.is_ok() {
                        let _ = w.request_progress().await;
                    } else {
                        progress = None;
                    }
                    continue;
                }
            },
            None => w.next().await,
        };
        match next {
            Ok(Some(batch)) => {
                if batch.events.is_empty() && batch.header.revision != 0 {
                    println!("progress notify: {}", batch.header.revision);
                }
                printer.watch(&WatchOut {
                    batch: &batch,
                    compact_revision: 0,
                    canceled: false,
                });
                exec_for(&batch, exec);
            }
            Ok(None) => return,
            Err(e) => {
                let (why, compact) = match &e {
                    Error::WatchCompacted { compact_revision } => (
                        "etcdserver: mvcc: required revision has been compacted".to_string(),
                        *compact_revision,
                    ),
                    Error::WatchCanceled { reason } if reason.is_empty() => (
                        "etcdserver: mvcc: required revision is a future revision".to_string(),
                        0,
                    ),
                    Error::WatchCanceled { reason } => {
                        let as_status = Error::Server {
                            code: tonic::Code::FailedPrecondition,
                            message: reason.clone(),
                        };
                        (rpc::text(&as_status), 0)
                    }
                    other => (rpc::text(other), 0),
                };
                eprintln!("watch was canceled ({why})");
                let empty = WatchBatch {
                    header: Default::default(),
                    events: Vec::new(),
                };
                printer.watch(&WatchOut {
                    batch: &empty,
                    compact_revision: compact,
                    canceled: true,
                });
                return;
            }
        }
    }
}

pub async fn watch(mut ctx: Ctx) {
    let env_key = std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let env_range = std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    if env_key.is_empty() && !env_range.is_empty() {
        exit::with_error(
            exit::BAD_ARGS,
            &format!(
                "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
                gofmt::quote_str(&env_range)
            ),
        );
    }
    if ctx.inv.flags.bool("interactive") {
        return interactive(ctx, env_key, env_range).await;
    }
    let (watch_args, exec_args) = parse_args(&ctx.inv.os_args, ctx.args(), &env_key, &env_range)
        .unwrap_or_else(|e| exit::with_error(exit::BAD_ARGS, e));
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let wf = WatchFlags::from(&ctx.inv.flags);
    let stream = match open(&client, &watch_args, wf).await {
        Err(e) => exit::with_error(exit::BAD_ARGS, &e),
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            report_open_failure(&cfg, &e, &printer);
            None
        }
    };
    if let Some(stream) = stream {
        print_watch(stream, &printer, &exec_args, None).await;
    }
    exit::with_error(exit::INTERRUPTED, "watch is canceled by the server");
}

/// A watch that could not start: the server refused it (shown as etcdctl shows a canceled
/// watch), or no endpoint answered.
fn report_open_failure(cfg: &rpc::Cfg, e: &Error, printer: &Printer) {
    cfg.debug_note(&e.message());
    let why = match e {
        Error::WatchCompacted { .. } => {
            "etcdserver: mvcc: required revision has been compacted".to_string()
        }
        Error::WatchCanceled { reason } => rpc::text(&Error::Server {
            code: tonic::Code::FailedPrecondition,
            message: reason.clone(),
        }),
        other => rpc::text(other),
    };
    eprintln!("watch was canceled ({why})");
    let empty = WatchBatch {
        header: Default::default(),
        events: Vec::new(),
    };
    let compact = match e {
        Error::WatchCompacted { compact_revision } => *compact_revision,
        _ => 0,
    };
    printer.watch(&WatchOut {
        batch: &empty,
        compact_revision: compact,
        canceled: true,
    });
}

async fn interactive(mut ctx: Ctx, env_key: String, env_range: String) {
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let printer = std::sync::Arc::new(printer);
    let (progress_tx, _) = broadcast::channel::<()>(16);
    let (line_tx, mut line_rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(16);
    // Stdin is read on a thread of its own so that watches print while it waits.
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut buf = Vec::new();
            let r = match input.read_until(b'\n', &mut buf) {
                Ok(_) if buf.last() == Some(&b'\n') => {
                    Ok(String::from_utf8_lossy(&buf).into_owned())
                }
                Ok(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "EOF",
                )),
                Err(e) => Err(e),
            };
            let end = r.is_err();
            if line_tx.blocking_send(r).is_err() || end {
                return;
            }
        }
    });
    while let Some(read) = line_rx.recv().await {
        let l = match read {
            Ok(l) => l,
            Err(e) => exit::with_error(
                exit::INVALID_INPUT,
                &format!("Error reading watch request line: {e}"),
            ),
        };
        let l = l.strip_suffix('\n').unwrap_or(&l).to_string();
        let args = super::kv::argify_line(&l);
        let Some(first) = args.first() else {
            eprintln!("Invalid command: {l} (watch and progress supported)");
            continue;
        };
        match first.as_str() {
            "watch" => {
                if args.len() < 2 && env_key.is_empty() {
                    eprintln!("Invalid command {l} (command type or key is not provided)");
                    continue;
                }
                let (watch_args, exec_args, wf) = parse_interactive(&args, &env_key, &env_range)
                    .unwrap_or_else(|e| exit::with_error(exit::BAD_ARGS, &e));
                match open(&client, &watch_args, wf).await {
                    Err(e) => {
                        eprintln!("Invalid command {l} ({e})");
                        continue;
                    }
                    Ok(Err(e)) => report_open_failure(&cfg, &e, &printer),
                    Ok(Ok(stream)) => {
                        let printer = printer.clone();
                        let rx = progress_tx.subscribe();
                        tokio::spawn(async move {
                            print_watch(stream, &printer, &exec_args, Some(rx)).await;
                        });
                    }
                }
            }
            "progress" => {
                let _ = progress_tx.send(());
            }
            _ => {
                eprintln!("Invalid command {l} (only support watch)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn exec_form() {
        let os = s(&["etcdctl", "watch", "foo", "--", "echo", "hi"]);
        let (w, e) = parse_args(&os, &s(&["foo", "echo", "hi"]), "", "").expect("ok");
        assert_eq!((w, e), (s(&["foo"]), s(&["echo", "hi"])));
        let os = s(&["etcdctl", "watch", "foo", "--"]);
        assert_eq!(parse_args(&os, &s(&["foo"]), "", ""), Err(SEPARATOR));
        let os = s(&["etcdctl", "watch"]);
        assert_eq!(parse_args(&os, &[], "", ""), Err(BAD_ARGS_NUM));
        let os = s(&["etcdctl", "watch", "foo"]);
        assert_eq!(parse_args(&os, &s(&["foo"]), "k", ""), Err(CONFLICT_ENV));
        let os = s(&["etcdctl", "watch", "--", "echo"]);
        let (w, e) = parse_args(&os, &s(&["echo"]), "k", "z").expect("ok");
        assert_eq!((w, e), (s(&["k", "z"]), s(&["echo"])));
    }

    #[test]
    fn interactive_lines() {
        let (w, e, f) = parse_interactive(&s(&["watch", "foo", "--prefix"]), "", "").expect("ok");
        assert_eq!((w, e), (s(&["foo"]), vec![]));
        assert!(f.prefix);
        assert_eq!(
            parse_interactive(&s(&["wat", "foo"]), "", "").err(),
            Some(INTERACTIVE_WATCH.to_string())
        );
        assert_eq!(
            parse_interactive(&s(&["watch", "--rev"]), "", "").err(),
            Some("flag needs an argument: --rev".to_string())
        );
    }
}
