//! Container log files and the agent's log server (the kubelet's `/containerLogs` endpoint,
//! which the API server's `pods/NAME/log` reaches).
//!
//! ## Files
//! A container instance logs to `<root>/logs/<namespace>_<pod>_<uid>/<container>/<restart>.log`
//! ([`pod_log_dir`], [`container_log_path`]), written by its [`shim`](crate::shim) in the CRI
//! format, one line per record:
//! `2026-12-02T01:02:03.123456789Z stdout F hello` (`P` marks a piece of a line longer than
//! 16 KiB; the line goes on in the next record). When the file reaches its size limit the
//! shim renames it `<restart>.log.<seq>` (`<seq>` ten zero-padded digits, growing by one per
//! rotation, so names sort oldest first) and starts a new one, keeping at most
//! `containerLogMaxFiles` files; [`crate::shim::rotated_log_files`] lists the rotated ones.
//!
//! ## Reading
//! [`stream_log`] reads as the kubelet's `ReadLogs` does: the records of the **current file
//! only** (rotated files are not read, for `tailLines` and `sinceTime` too), stdout and
//! stderr merged in file order, only the text unless `timestamps` (then each record is
//! prefixed with its time in `RFC3339NanoFixed` and a space), records older than
//! `sinceSeconds`/`sinceTime` skipped, cut after `limitBytes`, and with `follow` it keeps
//! reading as the file grows — and, unlike the kubelet's reader, switches to the new file
//! when the shim rotates it — until the instance no longer runs and the file is read to
//! its end.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use concord_cp_types::go_error_text;
use concord_cp_types::query::parse_query;
use futures::Stream;
use tokio::sync::{mpsc, watch};

use crate::shim::{parse_rfc3339_nanos, rfc3339_nanos, unix_nanos};

/// The directory of a pod's logs: `<root>/logs/<namespace>_<name>_<uid>`.
pub fn pod_log_dir(root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    root.join("logs").join(format!("{namespace}_{name}_{uid}"))
}

/// The log file of one container instance: `<pod log dir>/<container>/<restart>.log`.
pub fn container_log_path(pod_log_dir: &Path, container: &str, restart: u32) -> PathBuf {
    pod_log_dir.join(container).join(format!("{restart}.log"))
}

/// Where a container's log is, as the agent knows it.
pub struct LogFile {
    /// The instance's log file.
    pub path: PathBuf,
    /// True while that instance runs; `follow` ends once it is false and the file is read.
    pub running: tokio::sync::watch::Receiver<bool>,
}

/// The agent's answer to "where is this container's log".
pub trait LogLookup: Send + Sync + 'static {
    /// The current (or, with `previous`, the previous) instance of a container; `Err` is the
    /// kubelet's message for a 400 (`previous terminated container "c" in pod "p" not found`).
    /// It is called on the async server's threads, so it must not block.
    fn locate(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogFile, String>;
}

/// How to read a log: kubectl's `PodLogOptions`, resolved as the kubelet does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep reading while the container runs.
    pub follow: bool,
    /// Only the last N records of the file (`tailLines`).
    pub tail_lines: Option<u64>,
    /// Prefix each record with its time.
    pub timestamps: bool,
    /// Skip records older than this (nanoseconds since the Unix epoch), from `sinceSeconds`
    /// or `sinceTime`, whichever is later.
    pub since_nanos: Option<i128>,
    /// Stop after this many bytes (`limitBytes`).
    pub limit_bytes: Option<u64>,
}

/// A `/containerLogs` query that cannot be served, with the kubelet's status and body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter does not parse (400).
    #[error("{{\"message\": \"Unable to decode query.\"}}")]
    Decode,
    /// A parameter is out of range (422).
    #[error("{{\"message\": \"Invalid request.\"}}")]
    Invalid,
}

/// A query's `previous` flag and log options, parsed as the kubelet parses them (`tail` is
/// the old name of `tailLines`, `tail=all` meaning every line). `now_nanos` anchors
/// `sinceSeconds`.
pub fn parse_log_query(
    query: &HashMap<String, String>,
    now_nanos: i128,
) -> Result<(bool, LogOptions), QueryError> {
    let flag = |k: &str| query.get(k).is_some_and(|v| parse_bool(v));
    let int = |k: &str| -> Result<Option<i64>, QueryError> {
        match query.get(k) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| QueryError::Decode),
        }
    };
    let mut tail = int("tailLines")?;
    match query.get("tail").map(String::as_str) {
        None | Some("") => {}
        Some("all") => tail = None,
        Some(t) => tail = Some(t.parse().map_err(|_| QueryError::Decode)?),
    }
    let limit = int("limitBytes")?;
    let since_seconds = int("sinceSeconds")?;
    let since_time = match query.get("sinceTime") {
        None => None,
        Some(t) => Some(parse_rfc3339_nanos(t).ok_or(QueryError::Decode)?),
    };
    // ValidatePodLogOptions.
    if tail.is_some_and(|t| t < 0)
        || limit.is_some_and(|l| l < 1)
        || (since_seconds.is_some() && since_time.is_some())
        || since_seconds.is_some_and(|s| s < 1)
    {
        return Err(QueryError::Invalid);
    }
    let mut since = since_seconds.map(|s| now_nanos - i128::from(s) * 1_000_000_000);
    if let Some(t) = since_time {
        if since.is_none_or(|s| t > s) {
            since = Some(t);
        }
    }
    Ok((
        flag("previous"),
        LogOptions {
            follow: flag("follow"),
            tail_lines: tail.map(|t| t as u64),
            timestamps: flag("timestamps"),
            since_nanos: since,
            limit_bytes: limit.map(|l| l as u64),
        },
    ))
}

/// A boolean query parameter as Kubernetes decodes one: `0`, `f`, `false`, `n`, `no` (any
/// case) are false, anything else (the empty value too) true.
pub fn parse_bool(v: &str) -> bool {
    !(v == "0"
        || ["f", "false", "n", "no"]
            .iter()
            .any(|f| v.eq_ignore_ascii_case(f)))
}

/// How often a follower looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Bytes read from the file at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Output is sent in pieces of about this size (and whenever the reader waits).
const SEND_CHUNK: usize = 32 * 1024;

/// Opens a container's log and streams it as `opts` ask (see the module docs). The error is
/// the kubelet's text for a 400 (`failed to open log file "…": …`).
pub async fn stream_log(
    file: LogFile,
    opts: LogOptions,
) -> Result<impl Stream<Item = io::Result<Vec<u8>>> + Send + 'static, String> {
    let path = file.path.clone();
    let tail = opts.tail_lines;
    let opened = tokio::task::spawn_blocking(move || -> Result<File, String> {
        let mut f = File::open(&path).map_err(|e| {
            format!(
                "failed to open log file {:?}: open {}: {}",
                path.display().to_string(),
                path.display(),
                go_error_text(&e)
            )
        })?;
        let start = match tail {
            Some(n) => tail_start(&mut f, n).map_err(|e| {
                format!(
                    "failed to tail {n} lines of log file {:?}: {}",
                    path.display().to_string(),
                    go_error_text(&e)
                )
            })?,
            None => 0,
        };
        f.seek(SeekFrom::Start(start))
            .map_err(|e| format!("failed to seek {start} in log file: {}", go_error_text(&e)))?;
        Ok(f)
    })
    .await
    .map_err(|e| format!("failed to open log file: {e}"))??;
    let (tx, rx) = mpsc::channel::<io::Result<Vec<u8>>>(8);
    tokio::spawn(async move {
        let mut reader = Reader::new(opts, file.running);
        if let Err(e) = reader.run(opened, &file.path, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// The state of one read.
struct Reader {
    opts: LogOptions,
    running: watch::Receiver<bool>,
    /// The start of a record whose end is not read yet.
    pending: Vec<u8>,
    out: Vec<u8>,
    /// Bytes still allowed by `limitBytes`.
    remain: u64,
    /// Records still allowed by `tailLines` when not following (the kubelet's "limited
    /// mode").
    records_left: Option<u64>,
}

/// Whether to go on after a record.
#[derive(PartialEq)]
enum Next {
    More,
    Done,
}

impl Reader {
    fn new(opts: LogOptions, running: watch::Receiver<bool>) -> Reader {
        Reader {
            remain: opts.limit_bytes.unwrap_or(u64::MAX),
            records_left: opts.tail_lines.filter(|_| !opts.follow),
            opts,
            running,
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    async fn run(
        &mut self,
        mut f: File,
        path: &Path,
        tx: &mpsc::Sender<io::Result<Vec<u8>>>,
    ) -> io::Result<()> {
        if self.records_left == Some(0) {
            return Ok(());
        }
        // Set once the instance stopped: read to the end once more, then finish.
        let mut last_pass = false;
        loop {
            let (back, chunk) = read_chunk(f).await?;
            f = back;
            if !chunk.is_empty() {
                self.pending.extend_from_slice(&chunk);
                if self.take_records() == Next::Done {
                    self.send(tx).await;
                    return Ok(());
                }
                if self.out.len() >= SEND_CHUNK && !self.send(tx).await {
                    return Ok(());
                }
                continue;
            }
            // The end of the file, for now.
            if !self.opts.follow {
                if !self.pending.is_empty() {
                    // An incomplete last line is still shown.
                    let line = std::mem::take(&mut self.pending);
                    self.record(&line, false);
                }
                self.send(tx).await;
                return Ok(());
            }
            if !self.send(tx).await {
                return Ok(());
            }
            if let Some(newer) = reopen_if_rotated(&f, path).await {
                // Everything of the old file is read; its incomplete end (if any) is lost.
                f = newer;
                self.pending.clear();
                continue;
            }
            if last_pass {
                return Ok(());
            }
            if !*self.running.borrow() {
                last_pass = true;
                continue;
            }
            tokio::select! {
                changed = self.running.changed() => {
                    if changed.is_err() {
                        // Whoever knew whether it runs is gone: treat it as stopped.
                        last_pass = true;
                    }
                }
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = tx.closed() => return Ok(()),
            }
        }
    }

    /// Handles the complete records in `pending`.
    fn take_records(&mut self) -> Next {
        let pending = std::mem::take(&mut self.pending);
        let mut start = 0;
        let mut next = Next::More;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + i];
            start += i + 1;
            if self.record(line, true) == Next::Done {
                next = Next::Done;
                break;
            }
        }
        self.pending = pending[start..].to_vec();
        next
    }

    /// One CRI record (without its newline) to the output. A full record gets its newline
    /// back unless the file ended without one (the kubelet copies the line as read).
    fn record(&mut self, line: &[u8], ended: bool) -> Next {
        let Some(rec) = parse_cri(line) else {
            // The kubelet skips what it cannot parse.
            return Next::More;
        };
        if self.opts.since_nanos.is_none_or(|since| rec.time >= since) {
            let before = self.out.len();
            if self.opts.timestamps {
                self.out
                    .extend_from_slice(rfc3339_nanos(rec.time).as_bytes());
                self.out.push(b' ');
            }
            self.out.extend_from_slice(rec.content);
            if !rec.partial && ended {
                self.out.push(b'\n');
            }
            let written = (self.out.len() - before) as u64;
            if written >= self.remain {
                self.out.truncate(before + self.remain as usize);
                self.remain = 0;
                return Next::Done;
            }
            self.remain -= written;
        }
        if let Some(left) = self.records_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                return Next::Done;
            }
        }
        Next::More
    }

    /// Sends what is gathered; false when the client is gone.
    async fn send(&mut self, tx: &mpsc::Sender<io::Result<Vec<u8>>>) -> bool {
        if self.out.is_empty() {
            return !tx.is_closed();
        }
        tx.send(Ok(std::mem::take(&mut self.out))).await.is_ok()
    }
}

/// One parsed CRI log record.
struct Record<'a> {
    time: i128,
    partial: bool,
    content: &'a [u8],
}

/// Parses `<time> <stdout|stderr> <tags> <content>`; a `P` first tag marks a partial line.
fn parse_cri(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = parse_rfc3339_nanos(std::str::from_utf8(parts.next()?).ok()?)?;
    let stream = parts.next()?;
    if stream != b"stdout" && stream != b"stderr" {
        return None;
    }
    let tags = parts.next()?;
    let content = parts.next()?;
    let partial = tags.split(|&b| b == b':').next() == Some(b"P");
    Some(Record {
        time,
        partial,
        content,
    })
}

/// Reads the next chunk of the file on a blocking thread; empty at its end.
async fn read_chunk(mut f: File) -> io::Result<(File, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match f.read(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok((f, buf));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .map_err(io::Error::other)?
}

/// The file now at `path` if it is not the open one any more (the shim rotated it).
async fn reopen_if_rotated(f: &File, path: &Path) -> Option<File> {
    let open = f.metadata().ok().map(|m| (m.dev(), m.ino()))?;
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let now = std::fs::metadata(&path).ok()?;
        if (now.dev(), now.ino()) == open {
            return None;
        }
        File::open(&path).ok()
    })
    .await
    .ok()
    .flatten()
}

/// Where the last `n` lines of the file start (the kubelet's `FindTailLineStartIndex`: an
/// incomplete last line does not count).
fn tail_start(f: &mut File, n: u64) -> io::Result<u64> {
    let size = f.seek(SeekFrom::End(0))?;
    let mut pos = size;
    let mut newlines = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while pos > 0 {
        let len = (buf.len() as u64).min(pos);
        pos -= len;
        f.seek(SeekFrom::Start(pos))?;
        let chunk = &mut buf[..len as usize];
        f.read_exact(chunk)?;
        for (i, &b) in chunk.iter().enumerate().rev() {
            if b == b'\n' {
                newlines += 1;
                if newlines == n + 1 {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
    }
    Ok(0)
}

/// The log server's routes (`GET /containerLogs/{namespace}/{pod}/{container}`).
pub fn router(lookup: Arc<dyn LogLookup>) -> axum::Router {
    axum::Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(lookup)
}

fn text_response(code: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn container_logs(
    State(lookup): State<Arc<dyn LogLookup>>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = parse_query(query.as_deref().unwrap_or(""));
    let (previous, opts) = match parse_log_query(&query, unix_nanos(SystemTime::now())) {
        Ok(p) => p,
        Err(e) => {
            let code = match e {
                QueryError::Decode => StatusCode::BAD_REQUEST,
                QueryError::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return text_response(code, e.to_string());
        }
    };
    let file = match lookup.locate(&namespace, &pod, &container, previous) {
        Ok(f) => f,
        Err(msg) => return text_response(StatusCode::BAD_REQUEST, msg),
    };
    match stream_log(file, opts).await {
        Ok(stream) => {
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        Err(msg) => {
            tracing::debug!("a container log could not be opened");
            text_response(StatusCode::BAD_REQUEST, msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Containers by name: their log file and whether they run.
    struct Files(Mutex<HashMap<String, (PathBuf, watch::Receiver<bool>)>>);

    impl LogLookup for Files {
        fn locate(
            &self,
            _namespace: &str,
            pod: &str,
            container: &str,
            previous: bool,
        ) -> Result<LogFile, String> {
            if previous {
                return Err(format!(
                    "previous terminated container {container:?} in pod {pod:?} not found"
                ));
            }
            let files = self.0.lock().map_err(|_| "poisoned".to_string())?;
            let (path, running) = files
                .get(container)
                .ok_or_else(|| format!("container {container:?} not found"))?;
            Ok(LogFile {
                path: path.clone(),
                running: running.clone(),
            })
        }
    }

    const T0: &str = "2026-12-02T01:02:03.000000001Z";
    const T1: &str = "2026-12-02T01:02:04.500000000Z";
    const T2: &str = "2026-12-02T01:02:05.000000000Z";

    fn cri(time: &str, stream: &str, tag: &str, text: &str) -> String {
        format!("{time} {stream} {tag} {text}\n")
    }

    struct Server {
        addr: std::net::SocketAddr,
        dir: tempfile::TempDir,
        files: Arc<Files>,
    }

    impl Server {
        async fn start() -> Server {
            let dir = tempfile::tempdir().expect("tempdir");
            let files = Arc::new(Files(Mutex::new(HashMap::new())));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let app = router(files.clone());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Server { addr, dir, files }
        }

        /// Adds container `name` with `content`; returns its path and running switch.
        fn add(&self, name: &str, content: &str) -> (PathBuf, watch::Sender<bool>) {
            let path = self.dir.path().join(format!("{name}.log"));
            std::fs::write(&path, content).expect("write log");
            let (tx, rx) = watch::channel(true);
            self.files
                .0
                .lock()
                .expect("lock")
                .insert(name.to_string(), (path.clone(), rx));
            (path, tx)
        }

        async fn open(&self, container: &str, query: &str) -> TcpStream {
            let mut s = TcpStream::connect(self.addr).await.expect("connect");
            let req = format!(
                "GET /containerLogs/ns/pod/{container}?{query} HTTP/1.0\r\nHost: x\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.expect("send");
            s
        }

        /// A whole (non-follow) answer: status, content type, body.
        async fn get(&self, container: &str, query: &str) -> (u16, String, String) {
            let mut s = self.open(container, query).await;
            let mut raw = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
                .await
                .expect("answer in time")
                .expect("read");
            split_response(&raw)
        }
    }

    fn split_response(raw: &[u8]) -> (u16, String, String) {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status");
        let ctype = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_string)
            })
            .unwrap_or_default();
        (status, ctype, body.to_string())
    }

    /// Reads from a follow stream until `want` has arrived (bounded).
    async fn read_until(s: &mut TcpStream, got: &mut Vec<u8>, want: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(got).contains(want) {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("{want:?} in time; got {:?}", String::from_utf8_lossy(got))
                })
                .expect("read");
            assert!(n > 0, "stream ended before {want:?}");
            got.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads a follow stream to its end, which must come in time.
    async fn read_to_end(s: &mut TcpStream, got: &mut Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(got))
            .await
            .expect("the stream ends")
            .expect("read");
    }

    /// Appends `text` to the log file at `path`, as the runtime would.
    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("append");
    }

    fn sample() -> String {
        [
            cri(T0, "stdout", "F", "one"),
            cri(T0, "stderr", "F", "two"),
            cri(T1, "stdout", "P", "thr"),
            cri(T1, "stdout", "F", "ee"),
            cri(T2, "stderr", "F", "four"),
        ]
        .concat()
    }

    #[tokio::test]
    async fn whole_log_tail_timestamps_since_and_limit() {
        let srv = Server::start().await;
        srv.add("c", &sample());
        let (code, ctype, body) = srv.get("c", "").await;
        assert_eq!(code, 200);
        assert!(ctype.starts_with("text/plain"), "{ctype}");
        assert_eq!(body, "one\ntwo\nthree\nfour\n");

        // The last 2 records of the file (a partial piece counts as one, as in the kubelet).
        assert_eq!(srv.get("c", "tailLines=2").await.2, "ee\nfour\n");
        assert_eq!(srv.get("c", "tailLines=0").await.2, "");
        assert_eq!(
            srv.get("c", "tailLines=100").await.2,
            "one\ntwo\nthree\nfour\n"
        );
        assert_eq!(srv.get("c", "tail=1").await.2, "four\n");

        assert_eq!(
            srv.get("c", "timestamps=true&tailLines=1").await.2,
            format!("{T2} four\n")
        );
        assert_eq!(
            srv.get("c", "timestamps=1&tailLines=3").await.2,
            format!("{T1} thr{T1} ee\n{T2} four\n")
        );

        assert_eq!(srv.get("c", "limitBytes=6").await.2, "one\ntw");
        assert_eq!(srv.get("c", "limitBytes=8").await.2, "one\ntwo\n");

        let since = "sinceTime=2026-12-02T01%3A02%3A04Z";
        assert_eq!(srv.get("c", since).await.2, "three\nfour\n");
        assert_eq!(
            srv.get("c", "sinceTime=2026-12-02T02:02:04.6%2B01:00")
                .await
                .2,
            "four\n"
        );
        // Everything in the sample is long past: a recent window shows nothing.
        assert_eq!(srv.get("c", "sinceSeconds=10").await.2, "");
    }

    #[tokio::test]
    async fn an_incomplete_last_line_and_junk() {
        let srv = Server::start().await;
        let content = format!(
            "{}junk line\n{T2} stdout F unfinished",
            cri(T0, "stdout", "F", "a")
        );
        srv.add("c", &content);
        assert_eq!(srv.get("c", "").await.2, "a\nunfinished");
    }

    #[tokio::test]
    async fn errors_are_400_or_422_with_text() {
        let srv = Server::start().await;
        srv.add("c", &sample());
        let (code, ctype, body) = srv.get("c", "previous=true").await;
        assert_eq!(code, 400);
        assert!(ctype.starts_with("text/plain"));
        assert_eq!(
            body,
            "previous terminated container \"c\" in pod \"pod\" not found"
        );
        assert_eq!(srv.get("nope", "").await.0, 400);
        assert_eq!(
            srv.get("c", "tailLines=x").await,
            (
                400,
                "text/plain; charset=utf-8".into(),
                "{\"message\": \"Unable to decode query.\"}".into()
            )
        );
        assert_eq!(srv.get("c", "tailLines=-1").await.0, 422);
        assert_eq!(srv.get("c", "limitBytes=0").await.0, 422);
        assert_eq!(srv.get("c", "sinceSeconds=0").await.0, 422);
        assert_eq!(
            srv.get("c", "sinceSeconds=5&sinceTime=2026-12-02T01:02:04Z")
                .await
                .0,
            422
        );

        // A file that is not there.
        let (path, _running) = srv.add("gone", "");
        std::fs::remove_file(&path).expect("remove");
        let (code, _, body) = srv.get("gone", "").await;
        assert_eq!(code, 400);
        assert!(body.starts_with("failed to open log file"), "{body}");
        assert!(body.ends_with("no such file or directory"), "{body}");
    }

    #[tokio::test]
    async fn follow_streams_new_lines_and_ends_when_the_container_stops() {
        let srv = Server::start().await;
        let (path, running) = srv.add("c", &cri(T0, "stdout", "F", "first"));
        let mut s = srv.open("c", "follow=true&timestamps=false").await;
        let mut got = Vec::new();
        read_until(&mut s, &mut got, "first\n").await;

        append(&path, &cri(T1, "stderr", "F", "second"));
        read_until(&mut s, &mut got, "second\n").await;

        // Lines written just before the stop still come, then the stream ends.
        append(&path, &cri(T2, "stdout", "F", "last"));
        running.send_replace(false);
        read_to_end(&mut s, &mut got).await;
        let (code, _, body) = split_response(&got);
        assert_eq!(code, 200);
        assert_eq!(body, "first\nsecond\nlast\n");
    }

    #[tokio::test]
    async fn follow_with_tail_starts_at_the_tail_and_goes_on() {
        let srv = Server::start().await;
        let (path, running) = srv.add("c", &sample());
        let mut s = srv.open("c", "follow=true&tailLines=1").await;
        let mut got = Vec::new();
        read_until(&mut s, &mut got, "four\n").await;
        append(&path, &cri(T2, "stdout", "F", "five"));
        read_until(&mut s, &mut got, "five\n").await;
        // The stream ends once nobody says the container runs.
        drop(running);
        read_to_end(&mut s, &mut got).await;
        assert_eq!(split_response(&got).2, "four\nfive\n");
    }

    #[tokio::test]
    async fn follow_goes_on_across_a_rotation() {
        let srv = Server::start().await;
        let (path, running) = srv.add("c", &cri(T0, "stdout", "F", "before"));
        let mut s = srv.open("c", "follow=true").await;
        let mut got = Vec::new();
        read_until(&mut s, &mut got, "before\n").await;

        // The shim's rotation: the last lines of the old file, rename, a new file.
        append(&path, &cri(T1, "stdout", "F", "old-end"));
        let rotated = path.with_file_name("c.log.0000000001");
        std::fs::rename(&path, &rotated).expect("rename");
        tokio::time::sleep(Duration::from_millis(250)).await;
        std::fs::write(&path, cri(T2, "stderr", "F", "new-start")).expect("new file");
        read_until(&mut s, &mut got, "new-start\n").await;

        append(&path, &cri(T2, "stdout", "F", "after"));
        running.send_replace(false);
        read_to_end(&mut s, &mut got).await;
        assert_eq!(
            split_response(&got).2,
            "before\nold-end\nnew-start\nafter\n"
        );
    }

    #[test]
    fn queries_parse_like_the_kubelet() {
        let q = |s: &str| parse_log_query(&parse_query(s), 1_000_000_000_000);
        let (prev, o) =
            q("follow&previous=false&timestamps=True&tailLines=3&limitBytes=9").expect("ok");
        assert!(!prev);
        assert_eq!(
            o,
            LogOptions {
                follow: true,
                tail_lines: Some(3),
                timestamps: true,
                since_nanos: None,
                limit_bytes: Some(9),
            }
        );
        let (_, o) = q("sinceSeconds=10").expect("ok");
        assert_eq!(o.since_nanos, Some(990_000_000_000));
        assert_eq!(q("tail=all&tailLines=4").expect("ok").1.tail_lines, None);
        assert_eq!(q("sinceTime=yesterday"), Err(QueryError::Decode));
        assert!(parse_bool(""));
        assert!(!parse_bool("NO"));
    }
}
