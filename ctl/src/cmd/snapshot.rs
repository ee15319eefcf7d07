//! snapshot save (the stream written to `<file>.part`, checked, then renamed) and snapshot
//! status (of an etcd snapshot: a bbolt file, read here without bbolt).

use std::io::Write;
use std::time::Instant;

use crate::ctx::Ctx;
use crate::exit;
use crate::gofmt::{self, json_string};
use crate::printer::DbStatus;
use crate::rpc::{self, Target};

/// A zap production log line (etcd's snapshot package: the time as epoch seconds).
fn zap_info(caller: &str, msg: &str, fields: &[(&str, String)]) {
    let mut line = format!(
        "{{\"level\":\"info\",\"ts\":{},\"caller\":\"{caller}\",\"msg\":{}",
        rpc::epoch_now(),
        json_string(msg)
    );
    for (k, v) in fields {
        line.push_str(&format!(",{}:{v}", json_string(k)));
    }
    line.push('}');
    eprintln!("{line}");
}

/// A clientv3 log line (its logger writes ISO times).
fn client_log(level: &str, caller: &str, msg: &str, fields: &[(&str, String)]) {
    let mut line = format!(
        "{{\"level\":\"{level}\",\"ts\":\"{}\",\"caller\":\"{caller}\",\"msg\":{}",
        rpc::iso_now(),
        json_string(msg)
    );
    for (k, v) in fields {
        line.push_str(&format!(",{}:{v}", json_string(k)));
    }
    line.push('}');
    eprintln!("{line}");
}

/// etcd's snapshot format ends with a SHA-256 of what precedes it, and the whole is 32 bytes
/// past a multiple of 512 (a bbolt file is whole pages).
fn has_checksum(size: u64) -> bool {
    size % 512 == 32
}

/// A progress line on stderr when it is a terminal (never otherwise, so scripts see
/// etcdctl's output), redrawn at most once per MiB.
#[derive(Default)]
struct Progress {
    last_mib: Option<u64>,
    drawn: bool,
}

impl Progress {
    fn show(&mut self, what: &str, done: u64, total: Option<u64>) {
        let mib = done >> 20;
        if self.last_mib == Some(mib) || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            return;
        }
        self.last_mib = Some(mib);
        self.drawn = true;
        match total {
            Some(t) if t > 0 => eprint!(
                "\r{what}: {mib} / {} MiB ({}%)   ",
                t >> 20,
                done.saturating_mul(100) / t
            ),
            _ => eprint!("\r{what}: {mib} MiB   "),
        }
    }

    fn end(&self) {
        if self.drawn {
            eprintln!();
        }
    }
}

/// Removes the `.part` file on every way out, as etcdctl's deferred `RemoveAll` does.
struct PartFile(std::path::PathBuf);

impl Drop for PartFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub async fn save(mut ctx: Ctx) {
    if ctx.args().len() != 1 {
        exit::with_error(exit::BAD_ARGS, "snapshot save expects one argument");
    }
    let path = ctx.args()[0].clone();
    let (cfg, _) = ctx.client_config();
    let deadline = ctx
        .inv
        .flags
        .changed("command-timeout")
        .then(|| cfg.deadline());
    if cfg.endpoints.len() != 1 {
        exit::with_error(
            exit::INTERRUPTED,
            &format!(
                "snapshot must be requested to one selected node, not multiple {}",
                gofmt::string_slice(&cfg.endpoints)
            ),
        );
    }
    let fail = |e: String| -> ! { exit::with_error(exit::INTERRUPTED, &e) };
    let client = ctx.client(&cfg);
    let part = format!("{path}.part");
    let _cleanup = PartFile(part.clone().into());
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)
            .unwrap_or_else(|e| {
                fail(format!(
                    "could not open {part} ({})",
                    go_io_error(&e, "open", &part)
                ))
            })
    };
    zap_info(
        "snapshot/v3_snapshot.go:119",
        "created temporary db file",
        &[("path", json_string(&part))],
    );
    let start = Instant::now();
    let mut stream = cfg
        .call(&Target::Stream, deadline, || client.snapshot())
        .await
        .unwrap_or_else(|e| fail(e));
    client_log(
        "info",
        "clientv3/maintenance.go:200",
        "opened snapshot stream; downloading",
        &[],
    );
    zap_info(
        "snapshot/v3_snapshot.go:127",
        "fetching snapshot",
        &[("endpoint", json_string(&cfg.endpoints[0]))],
    );
    let mut size: u64 = 0;
    let mut shown = Progress::default();
    let mut hasher = concord_proto::sha256::Sha256::new();
    // The last 32 bytes seen: the checksum, once the stream has ended.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), stream.next()).await {
                Ok(n) => n,
                Err(_) => fail("context deadline exceeded".into()),
            },
            None => stream.next().await,
        };
        match next {
            Ok(Some(chunk)) => {
                f.write_all(&chunk)
                    .unwrap_or_else(|e| fail(go_io_error(&e, "write", &part)));
                size += chunk.len() as u64;
                // Beyond etcdctl: progress on a terminal (the server says what remains).
                shown.show("saving", size, stream.remaining_bytes().map(|r| r + size));
                // Hash everything but the trailing 32 bytes.
                tail.extend_from_slice(&chunk);
                if tail.len() > 32 {
                    let cut = tail.len() - 32;
                    hasher.update(&tail[..cut]);
                    tail.drain(..cut);
                }
            }
            Ok(None) => {
                shown.end();
                client_log(
                    "info",
                    "clientv3/maintenance.go:208",
                    "completed snapshot read; closing",
                    &[],
                );
                break;
            }
            Err(e) => {
                let t = rpc::text(&e);
                let grpc = format!(
                    "rpc error: code = {} desc = {}",
                    rpc::code_name(e.code()),
                    e.message()
                );
                client_log(
                    "warn",
                    "clientv3/maintenance.go:211",
                    "failed to receive from snapshot stream; closing",
                    &[("error", json_string(&grpc))],
                );
                let _ = t;
                fail(grpc);
            }
        }
    }
    if !has_checksum(size) {
        fail(format!("sha256 checksum not found [bytes: {size}]"));
    }
    // Beyond etcdctl, which only checks the size: the checksum itself.
    if hasher.finish().as_slice() != tail.as_slice() {
        fail(format!("sha256 checksum mismatch [bytes: {size}]"));
    }
    f.sync_all()
        .unwrap_or_else(|e| fail(go_io_error(&e, "sync", &part)));
    drop(f);
    zap_info(
        "snapshot/v3_snapshot.go:142",
        "fetched snapshot",
        &[
            ("endpoint", json_string(&cfg.endpoints[0])),
            ("size", json_string(&gofmt::humanize_bytes(size))),
            ("took", format!("{:.9}", start.elapsed().as_secs_f64())),
        ],
    );
    if let Err(e) = std::fs::rename(&part, &path) {
        fail(format!(
            "could not rename {part} to {path} ({})",
            go_io_error(&e, "rename", &part)
        ));
    }
    zap_info(
        "snapshot/v3_snapshot.go:152",
        "saved",
        &[("path", json_string(&path))],
    );
    println!("Snapshot saved at {path}");
}

/// An I/O error as Go's `os` package words it: `open x: permission denied`.
fn go_io_error(e: &std::io::Error, op: &str, path: &str) -> String {
    let why = match e.raw_os_error() {
        Some(code) => {
            // strerror, lower-cased as Go's syscall errors are.
            let s = std::io::Error::from_raw_os_error(code).to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut c = s.chars();
            match c.next() {
                Some(first) => first.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
        None => e.to_string(),
    };
    format!("{op} {path}: {why}")
}

/// Whether the file starts as a Concord backup does (else it is read as etcd's bbolt file).
fn is_concord_backup(path: &str) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"concord-snapshot"
}

pub async fn status(ctx: Ctx) {
    if ctx.args().len() != 1 {
        exit::with_error(
            exit::BAD_ARGS,
            "snapshot status requires exactly one argument",
        );
    }
    let printer = ctx.display();
    let path = &ctx.args()[0];
    if let Err(e) = std::fs::metadata(path) {
        exit::with_error(exit::ERROR, &go_io_error(&e, "stat", path));
    }
    if is_concord_backup(path) {
        // Concord's own backup file: its summary, after the whole file is checked.
        let st = concord_server::backup::status(std::path::Path::new(path))
            .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e.to_string()));
        printer.db_status(&DbStatus {
            hash: st.summary.hash,
            revision: st.summary.revision,
            total_key: st.summary.total_keys as i64,
            total_size: st.total_size as i64,
        });
        return;
    }
    let data = std::fs::read(path)
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &go_io_error(&e, "open", path)));
    let status = bolt::status(&data).unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    printer.db_status(&status);
}

/// `snapshot restore`: a data dir for one member of a new cluster, from a Concord backup
/// (`concord_server::backup::restore`, which checks the whole file before writing anything).
/// The data dir defaults to `<name>.concord`, where `concord --name <name>` looks for it.
pub async fn restore(ctx: Ctx) {
    if ctx.args().len() != 1 {
        exit::with_error(
            exit::BAD_ARGS,
            "snapshot restore requires exactly one argument",
        );
    }
    let flags = &ctx.inv.flags;
    if !flags.string("wal-dir").is_empty() {
        exit::with_error(
            exit::ERROR,
            "--wal-dir is not supported: Concord keeps its WAL inside --data-dir",
        );
    }
    let path = ctx.args()[0].clone();
    let name = flags.string("name");
    let data_dir = match flags.string("data-dir") {
        d if d.is_empty() => format!("{name}.concord"),
        d => d,
    };
    let opts = concord_server::backup::RestoreOptions {
        snapshot: path.clone().into(),
        name,
        initial_cluster: flags.string("initial-cluster"),
        initial_cluster_token: flags.string("initial-cluster-token"),
        initial_advertise_peer_urls: flags
            .string("initial-advertise-peer-urls")
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect(),
        data_dir: data_dir.clone().into(),
        skip_hash_check: flags.bool("skip-hash-check"),
    };
    let fields = [
        ("path", json_string(&path)),
        ("data-dir", json_string(&data_dir)),
    ];
    zap_info("snapshot/v3_snapshot.go:296", "restoring snapshot", &fields);
    // Beyond etcdctl: a progress line on a terminal.
    let restored = tokio::task::spawn_blocking(move || {
        let mut shown = Progress::default();
        let r = concord_server::backup::restore_with_progress(&opts, &mut |phase, done, total| {
            let what = match phase {
                concord_server::backup::Phase::Checking => "checking",
                concord_server::backup::Phase::Extracting => "restoring",
            };
            shown.show(what, done, Some(total));
        });
        shown.end();
        r
    })
    .await
    .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e.to_string()))
    .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e.to_string()));
    let mut fields = fields.to_vec();
    fields.push((
        "member-id",
        json_string(&format!("{:x}", restored.member_id)),
    ));
    fields.push((
        "cluster-id",
        json_string(&format!("{:x}", restored.cluster_id)),
    ));
    zap_info("snapshot/v3_snapshot.go:309", "restored snapshot", &fields);
}

/// Just enough of bbolt's file format to compute what `etcdctl snapshot status` reports.
mod bolt {
    use super::DbStatus;

    const MAGIC: u32 = 0xED0C_DAED;
    const VERSION: u32 = 2;
    const BRANCH: u16 = 0x01;
    const LEAF: u16 = 0x02;
    const BUCKET_LEAF: u32 = 0x01;
    const PAGE_HEADER: usize = 16;

    /// A bucket's entries: key, value, and whether the entry is a nested bucket.
    type Entries<'a> = Vec<(&'a [u8], &'a [u8], bool)>;

    struct Db<'a> {
        data: &'a [u8],
        page_size: usize,
    }

    fn u16_at(b: &[u8], o: usize) -> Option<u16> {
        Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
    }
    fn u32_at(b: &[u8], o: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
    }
    fn u64_at(b: &[u8], o: usize) -> Option<u64> {
        Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
    }

    fn fnv64a(b: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for x in b {
            h ^= u64::from(*x);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// A meta page: (root bucket page, high-water page id, txid), if valid.
    fn meta(data: &[u8], offset: usize) -> Result<(u64, u64, u64, u32), &'static str> {
        let m = offset + PAGE_HEADER;
        let magic = u32_at(data, m).ok_or("invalid database")?;
        if magic != MAGIC {
            return Err("invalid database");
        }
        if u32_at(data, m + 4) != Some(VERSION) {
            return Err("version mismatch");
        }
        let body = data.get(m..m + 56).ok_or("invalid database")?;
        if u64_at(data, m + 56) != Some(fnv64a(body)) {
            return Err("checksum error");
        }
        let page_size = u32_at(data, m + 8).ok_or("invalid database")?;
        let root = u64_at(data, m + 16).ok_or("invalid database")?;
        let pgid = u64_at(data, m + 40).ok_or("invalid database")?;
        let txid = u64_at(data, m + 48).ok_or("invalid database")?;
        Ok((root, pgid, txid, page_size))
    }

    impl<'a> Db<'a> {
        fn page(&self, id: u64) -> Result<&'a [u8], String> {
            let start = (id as usize)
                .checked_mul(self.page_size)
                .ok_or("page out of range")?;
            let overflow = u32_at(self.data, start + 12).ok_or("page out of range")? as usize;
            let end = start + (overflow + 1) * self.page_size;
            self.data
                .get(start..end.min(self.data.len()))
                .ok_or_else(|| format!("page {id} out of range"))
        }

        /// Every key and value under the page, in order (nested buckets' values are empty).
        fn walk(&self, page: &'a [u8], out: &mut Entries<'a>, depth: usize) -> Result<(), String> {
            if depth > 64 {
                return Err("tree too deep".into());
            }
            let flags = u16_at(page, 8).ok_or("bad page")?;
            let count = u16_at(page, 10).ok_or("bad page")? as usize;
            for i in 0..count {
                let e = PAGE_HEADER + i * 16;
                if flags & BRANCH != 0 {
                    let pgid = u64_at(page, e + 8).ok_or("bad branch")?;
                    let child = self.page(pgid)?;
                    self.walk(child, out, depth + 1)?;
                } else if flags & LEAF != 0 {
                    let f = u32_at(page, e).ok_or("bad leaf")?;
                    let pos = u32_at(page, e + 4).ok_or("bad leaf")? as usize;
                    let ksize = u32_at(page, e + 8).ok_or("bad leaf")? as usize;
                    let vsize = u32_at(page, e + 12).ok_or("bad leaf")? as usize;
                    let k = page.get(e + pos..e + pos + ksize).ok_or("bad leaf")?;
                    let v = page
                        .get(e + pos + ksize..e + pos + ksize + vsize)
                        .ok_or("bad leaf")?;
                    out.push((k, v, f & BUCKET_LEAF != 0));
                } else {
                    return Err(format!("unexpected page type {flags:#x}"));
                }
            }
            Ok(())
        }

        /// The key/values of a bucket, from its header value.
        fn bucket(&self, header: &'a [u8]) -> Result<Entries<'a>, String> {
            let root = u64_at(header, 0).ok_or("bad bucket")?;
            let mut out = Vec::new();
            if root == 0 {
                // An inline bucket: its page follows the header.
                let page = header.get(16..).ok_or("bad inline bucket")?;
                self.walk(page, &mut out, 0)?;
            } else {
                self.walk(self.page(root)?, &mut out, 0)?;
            }
            Ok(out)
        }
    }

    /// Hash (CRC-32C of bucket names, keys and values), revision (the last key of `key`),
    /// number of keys and size, as etcd's snapshot status computes them.
    pub fn status(data: &[u8]) -> Result<DbStatus, String> {
        // bbolt takes the page size from the first valid meta page (the second one is looked
        // for at the OS page size), and refuses the file if neither is valid.
        let first = meta(data, 0);
        let page_size = match (&first, meta(data, 4096)) {
            (Ok((_, _, _, ps)), _) => *ps as usize,
            (Err(_), Ok((_, _, _, ps))) => ps as usize,
            (Err(_), Err(_)) => return Err("invalid database".into()),
        };
        if page_size == 0 || data.len() < page_size * 2 {
            return Err("file size too small".into());
        }
        let second = meta(data, page_size);
        let (root, pgid, _, _) = match (first, second) {
            (Ok(a), Ok(b)) => {
                if b.2 > a.2 {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(e), Err(_)) => return Err(e.into()),
        };
        let db = Db { data, page_size };
        let mut buckets = Vec::new();
        db.walk(db.page(root)?, &mut buckets, 0)?;
        let mut h = crate::crc32c::Crc32c::new();
        let mut revision = 0;
        let mut total_key = 0;
        for (name, header, is_bucket) in buckets {
            if !is_bucket {
                return Err(format!(
                    "cannot get hash of bucket {}",
                    String::from_utf8_lossy(name)
                ));
            }
            h.update(name);
            let is_key_bucket = name == b"key";
            for (k, v, nested) in db.bucket(header)? {
                h.update(k);
                if !nested {
                    h.update(v);
                }
                if is_key_bucket && k.len() >= 8 {
                    revision = i64::from_be_bytes(k[..8].try_into().unwrap_or_default());
                }
                total_key += 1;
            }
        }
        Ok(DbStatus {
            hash: h.finish(),
            revision,
            total_key,
            total_size: (pgid as usize * page_size) as i64,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn refuses_what_is_not_bolt() {
            assert_eq!(
                status(&[0u8; 100]).err().as_deref(),
                Some("invalid database")
            );
            assert_eq!(
                status(&[0u8; 8192]).err().as_deref(),
                Some("invalid database")
            );
        }
    }
}
