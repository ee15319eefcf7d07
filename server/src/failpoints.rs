//! The failpoint control of the `concord-failpoints` test binary (feature `failpoints`; the
//! `concord` binary has none of this).
//!
//! `CONCORD_FAILPOINTS=name=actions;...` arms failpoints at start. With
//! `CONCORD_FAILPOINTS_ADDR=ip:port` set, a thread answers plain HTTP/1.1 there. Port 0 picks a
//! free port; the address bound is written to `CONCORD_FAILPOINTS_ADDR_FILE` when that is set
//! (before the member starts, so before its `--listen-addresses-file`).
//!
//! | request | does |
//! |---|---|
//! | `PUT /<failpoint>` with the actions as body (`fail` syntax, e.g. `1*return`) | arms it |
//! | `DELETE /<failpoint>` | disarms it |
//! | `GET /` | lists the armed failpoints, `name=actions` per line |
//! | `PUT /power-loss` | drops every write to the log not yet covered by an fdatasync, then SIGKILLs the process (`concord_wal::crash`) |
//!
//! The failpoints: those of `concord_wal::crash` (`wal::write`, `wal::before_sync`,
//! `wal::sync`, `wal::after_sync`), and, where `return` kills the process:
//!
//! | failpoint | where |
//! |---|---|
//! | `apply::before_write` | the apply thread, a batch of committed entries decoded, not yet written to the store |
//! | `apply::after_write` | the batch written (memtables only), its callers not yet answered |
//! | `apply::before_flush` | before the store flush that lets the Raft log be compacted |
//! | `snapshot::after_wal` | a received snapshot installed in the log, the store not yet swapped |
//! | `snapshot::mid_swap` | the old store moved aside, the received one not yet moved in |

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Arms the failpoints of `CONCORD_FAILPOINTS` (`name=actions;...`, armed before anything
/// else runs), and starts the control thread if `CONCORD_FAILPOINTS_ADDR` is set.
pub fn serve_from_env() -> std::io::Result<()> {
    if let Ok(list) = std::env::var("CONCORD_FAILPOINTS") {
        for item in list.split(';').filter(|s| !s.trim().is_empty()) {
            let (name, actions) = item.split_once('=').unwrap_or((item, ""));
            fail::cfg(name.trim(), actions.trim()).map_err(std::io::Error::other)?;
            eprintln!("concord-failpoints: armed {}", item.trim());
        }
    }
    let Ok(addr) = std::env::var("CONCORD_FAILPOINTS_ADDR") else {
        return Ok(());
    };
    let listener = TcpListener::bind(&addr)?;
    let bound = listener.local_addr()?;
    if let Ok(path) = std::env::var("CONCORD_FAILPOINTS_ADDR_FILE") {
        // Written whole, then renamed: a reader never sees half an address.
        let tmp = format!("{path}.{}.tmp", std::process::id());
        std::fs::write(&tmp, format!("{bound}\n"))?;
        std::fs::rename(&tmp, &path)?;
    }
    eprintln!("concord-failpoints: control on {bound}");
    std::thread::Builder::new()
        .name("failpoints".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = handle(conn);
            }
        })?;
    Ok(())
}

fn handle(conn: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length.min(4096)];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).trim().to_string();
    let name = path.trim_start_matches('/');
    let (status, text) = match (method, name) {
        ("PUT", "power-loss") => concord_wal::crash::power_loss(),
        ("GET", "") => {
            let list: String = fail::list()
                .into_iter()
                .map(|(n, a)| format!("{n}={a}\n"))
                .collect();
            ("200 OK", list)
        }
        ("PUT", n) if !n.is_empty() => match fail::cfg(n, &body) {
            Ok(()) => ("200 OK", String::new()),
            Err(e) => ("400 Bad Request", format!("{e}\n")),
        },
        ("DELETE", n) if !n.is_empty() => {
            fail::remove(n);
            ("200 OK", String::new())
        }
        _ => ("404 Not Found", String::new()),
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    conn.flush()
}
