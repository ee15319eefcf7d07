//! The container shim: `concord-agent shim <spec.json>` runs one container instance, as
//! containerd-shim does for a kubelet.
//!
//! The agent starts the shim in its own session, so the container outlives an agent restart.
//! The shim
//! 1. reads the [`ShimSpec`];
//! 2. starts the container process with exactly the spec's environment and working
//!    directory, in its own process group (pgid = its pid, so the agent stops it by
//!    signalling `-pid`), after joining the spec's cgroups, with stdin on `/dev/null` and
//!    stdout and stderr piped;
//! 3. writes `started.json` ([`Started`]);
//! 4. copies stdout and stderr into the log file in the CRI format
//!    (`2026-12-02T01:02:03.123456789Z stdout F hello`), one line at a time, splitting lines
//!    longer than [`MAX_LOG_LINE`] into `P` (partial) pieces ended by an `F` (full) one, and
//!    rotates the file;
//! 5. waits for the process, lets the copies drain (at most [`DRAIN_AFTER_EXIT`] after the
//!    exit: a grandchild may hold the pipes open), writes `exited.json` ([`Exited`]) and
//!    exits 0.
//!
//! If the process cannot start, `exited.json` says why (`exec: "foo": executable file not
//! found in $PATH`, runc's wording) with exit code 128, and the same text goes to the log.
//!
//! ## Log rotation
//! When the live file (`<restart>.log`) reaches `log_max_bytes` it is renamed to
//! `<restart>.log.<seq>`, `<seq>` a 10-digit, zero-padded counter that grows by one per
//! rotation (`0.log.0000000001`, `0.log.0000000002`, …), so names sort oldest first both
//! as text and as numbers; a fresh live file is started and the oldest rotated files are
//! removed so that at most `log_max_files` files remain, the live one included. The kubelet
//! names rotated files `<restart>.log.<timestamp>` instead and compresses them; see
//! [`rotated_log_files`].
//!
//! The shim is a plain synchronous program (std and libc only): it is its own process and
//! may block.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use concord_cp_types::go_error_text;
use serde::{Deserialize, Serialize};

/// What one container instance runs, written by the agent as `spec.json` in the instance's
/// state dir and read by `concord-agent shim <spec.json>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShimSpec {
    /// The program and its arguments; a program without `/` is looked up in the `PATH` of `env`.
    pub argv: Vec<String>,
    /// The container's whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub cwd: PathBuf,
    /// The log file (`<restartCount>.log`).
    pub log_path: PathBuf,
    /// Rotate the log file when it passes this size (the kubelet's `containerLogMaxSize`).
    pub log_max_bytes: u64,
    /// How many log files to keep, the live one included (`containerLogMaxFiles`).
    pub log_max_files: u32,
    /// `cgroup.procs` files the container process joins before it runs.
    pub cgroup_procs: Vec<PathBuf>,
    /// Where `started.json` and `exited.json` go.
    pub state_dir: PathBuf,
}

/// `started.json`: the container process runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Started {
    /// The container process's pid (and process group id).
    pub pid: i32,
    /// When it started, RFC 3339 (`2026-12-02T01:02:03Z`).
    pub started_at: String,
}

/// `exited.json`: the container process ended (or never started).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Exited {
    /// Its exit code; `128 + signal` when a signal ended it; 128 when it could not start.
    pub exit_code: i32,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// When it ended, RFC 3339.
    pub finished_at: String,
    /// Why it could not start (`exec: "x": executable file not found in $PATH`), if so.
    pub error: Option<String>,
}

/// The longest log line written whole (containerd's 16 KiB); longer ones are split into `P`
/// pieces of this size.
pub const MAX_LOG_LINE: usize = 16 * 1024;

/// How long the shim keeps copying output after the process exited (a grandchild that
/// inherited the pipes may keep them open forever).
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// The exit code recorded when the process could not start (Kubernetes' `StartError`).
pub const START_ERROR_EXIT_CODE: i32 = 128;

/// The `PATH` searched when the container's environment has none (runc's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The name of the start record in a state dir.
pub const STARTED_FILE: &str = "started.json";
/// The name of the exit record in a state dir.
pub const EXITED_FILE: &str = "exited.json";

/// The `concord-agent shim SPEC` subcommand: runs the container of `spec_path` and returns
/// the shim's own exit code.
pub fn shim_main(spec_path: &Path) -> i32 {
    // The agent starts the shim in a session of its own; still, a terminal's or a parent's
    // SIGINT/SIGHUP must not end it (the container process gets the default dispositions
    // back before it runs). SIGPIPE is already ignored by Rust's runtime, so a vanished
    // stderr only fails writes. Not in unit tests: the dispositions are the whole test
    // process's, and other tests' children would inherit them.
    if cfg!(not(test)) {
        // SAFETY: signal(2) with SIG_IGN installs no handler code.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
        }
    }
    let spec: ShimSpec = match fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("failed to read the shim spec {}: {e}", spec_path.display());
            let _ = writeln!(io::stderr(), "{msg}");
            // The spec lives in the state dir: say why there, so the agent does not wait for
            // a process that never comes.
            if let Some(dir) = spec_path.parent() {
                let _ = write_json_atomic(
                    &dir.join(EXITED_FILE),
                    &Exited {
                        exit_code: START_ERROR_EXIT_CODE,
                        signal: None,
                        finished_at: rfc3339_seconds(SystemTime::now()),
                        error: Some(msg),
                    },
                );
            }
            return 1;
        }
    };
    run(&spec)
}

/// Runs the container of `spec` to its end (the shim's whole job, after reading the spec).
fn run(spec: &ShimSpec) -> i32 {
    let writer = Arc::new(Mutex::new(LogWriter::open(
        &spec.log_path,
        spec.log_max_bytes,
        spec.log_max_files,
    )));
    let mut child = match spawn(spec) {
        Ok(c) => c,
        Err(msg) => {
            if let Ok(mut w) = writer.lock() {
                w.write_line("stderr", false, msg.as_bytes());
            }
            let exited = Exited {
                exit_code: START_ERROR_EXIT_CODE,
                signal: None,
                finished_at: rfc3339_seconds(SystemTime::now()),
                error: Some(msg),
            };
            return match write_json_atomic(&spec.state_dir.join(EXITED_FILE), &exited) {
                Ok(()) => 0,
                Err(_) => 1,
            };
        }
    };
    let started = Started {
        pid: i32::try_from(child.id()).unwrap_or(i32::MAX),
        started_at: rfc3339_seconds(SystemTime::now()),
    };
    let _ = write_json_atomic(&spec.state_dir.join(STARTED_FILE), &started);

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut pumps = 0;
    if let Some(out) = child.stdout.take() {
        pumps += 1;
        start_pump(out, "stdout", writer.clone(), done_tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        pumps += 1;
        start_pump(err, "stderr", writer.clone(), done_tx.clone());
    }
    drop(done_tx);

    let exited = match child.wait() {
        Ok(status) => {
            let (exit_code, signal) = match (status.code(), status.signal()) {
                (Some(code), _) => (code, None),
                (None, Some(sig)) => (128 + sig, Some(sig)),
                (None, None) => (START_ERROR_EXIT_CODE, None),
            };
            Exited {
                exit_code,
                signal,
                finished_at: String::new(),
                error: None,
            }
        }
        Err(e) => Exited {
            exit_code: START_ERROR_EXIT_CODE,
            signal: None,
            finished_at: String::new(),
            error: Some(format!("wait: {}", go_error_text(&e))),
        },
    };
    let finished = SystemTime::now();
    // Let the copies finish (everything the process wrote before it exited is in the pipes),
    // but not forever.
    let deadline = Instant::now() + DRAIN_AFTER_EXIT;
    for _ in 0..pumps {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    if let Ok(mut w) = writer.lock() {
        w.flush();
    }
    let exited = Exited {
        finished_at: rfc3339_seconds(finished),
        ..exited
    };
    match write_json_atomic(&spec.state_dir.join(EXITED_FILE), &exited) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Starts the container process, or says why it cannot start (runc's wording).
fn spawn(spec: &ShimSpec) -> Result<std::process::Child, String> {
    let Some(program) = spec.argv.first() else {
        return Err("exec: \"\": executable file not found in $PATH".to_string());
    };
    match fs::metadata(&spec.cwd) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "chdir to cwd ({:?}) set in config.json failed: not a directory",
                spec.cwd.display().to_string()
            ))
        }
        Err(e) => {
            return Err(format!(
                "chdir to cwd ({:?}) set in config.json failed: {}",
                spec.cwd.display().to_string(),
                go_error_text(&e)
            ))
        }
    }
    let resolved = resolve_program(program, &spec.env, &spec.cwd)?;
    let cgroups: Vec<CString> = spec
        .cgroup_procs
        .iter()
        .map(|p| CString::new(p.as_os_str().as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| "invalid cgroup path: contains a NUL byte".to_string())?;
    for (path, c) in spec.cgroup_procs.iter().zip(&cgroups) {
        // Checked here so a missing cgroup gets its own message (the child can only report
        // an errno).
        // SAFETY: `c` is a valid NUL-terminated string.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
            let e = io::Error::last_os_error();
            return Err(format!(
                "failed to join cgroup: open {}: {}",
                path.display(),
                go_error_text(&e)
            ));
        }
    }

    let mut cmd = Command::new(&resolved);
    cmd.arg0(program)
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (setpgid, open, write, close, signal) on data prepared
    // before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            for c in &cgroups {
                let fd = libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
            }
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| format!("exec: {program:?}: {}", go_error_text(&e)))
}

/// The file to exec for `program`: itself when it has a `/` (relative to the working
/// directory), else the first executable `dir/program` of the environment's `PATH`
/// ([`DEFAULT_PATH`] when it has none). The errors are runc's.
fn resolve_program(program: &str, env: &[(String, String)], cwd: &Path) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = cwd.join(program);
        return match fs::metadata(&path) {
            Ok(m) if m.is_dir() => Err(format!("exec: {program:?}: is a directory")),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Err(format!("exec: {program:?}: permission denied"))
            }
            Ok(_) => Ok(path),
            Err(e) => Err(format!(
                "exec: {program:?}: stat {program}: {}",
                go_error_text(&e)
            )),
        };
    }
    if !program.is_empty() {
        let path_var = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(DEFAULT_PATH);
        for dir in path_var.split(':') {
            // An empty entry is the working directory, as in a shell.
            let dir = if dir.is_empty() { "." } else { dir };
            let candidate = cwd.join(dir).join(program);
            if let Ok(m) = fs::metadata(&candidate) {
                if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                    return Ok(candidate);
                }
            }
        }
    }
    Err(format!(
        "exec: {program:?}: executable file not found in $PATH"
    ))
}

/// Copies one of the process's streams into the log on a thread of its own; says `done`
/// when the stream ends.
fn start_pump(
    src: impl Read + Send + 'static,
    stream: &'static str,
    writer: Arc<Mutex<LogWriter>>,
    done: mpsc::Sender<()>,
) {
    std::thread::spawn(move || {
        pump(src, stream, &writer);
        let _ = done.send(());
    });
}

/// Splits a stream into CRI log lines.
fn pump(mut src: impl Read, stream: &'static str, writer: &Mutex<LogWriter>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let emit = |partial: bool, content: &[u8]| {
        if let Ok(mut w) = writer.lock() {
            w.write_line(stream, partial, content);
        }
    };
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            emit_line(&pending[start..start + i], &emit);
            start += i + 1;
        }
        pending.drain(..start);
        // A line still without its end: write what fills whole pieces now.
        while pending.len() > MAX_LOG_LINE {
            emit(true, &pending[..MAX_LOG_LINE]);
            pending.drain(..MAX_LOG_LINE);
        }
    }
    if !pending.is_empty() {
        // The last line had no newline: it is still a (full) line.
        emit_line(&pending, &emit);
    }
}

/// Writes one whole line: `P` pieces of [`MAX_LOG_LINE`] bytes while more than that is
/// left, then the rest as `F`.
fn emit_line(mut line: &[u8], emit: &impl Fn(bool, &[u8])) {
    while line.len() > MAX_LOG_LINE {
        emit(true, &line[..MAX_LOG_LINE]);
        line = &line[MAX_LOG_LINE..];
    }
    emit(false, line);
}

/// The one writer of a container's log file: whole lines, rotation.
struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    max_files: u32,
    next_seq: u64,
}

impl LogWriter {
    /// Opens (appends to) the live log file. Without one the output is read and dropped, so
    /// the process never blocks on a full pipe.
    fn open(path: &Path, max_bytes: u64, max_files: u32) -> LogWriter {
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let file = open_append(path).ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        let next_seq = rotated_log_files(path)
            .last()
            .and_then(|p| rotation_seq(path, p))
            .map_or(1, |s| s + 1);
        LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            max_files,
            next_seq,
        }
    }

    /// Appends `<time> <stream> <F|P> <content>\n` in one write.
    fn write_line(&mut self, stream: &str, partial: bool, content: &[u8]) {
        let mut line = Vec::with_capacity(content.len() + 48);
        line.extend_from_slice(rfc3339_nanos(unix_nanos(SystemTime::now())).as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.as_bytes());
        line.extend_from_slice(if partial { b" P " } else { b" F " });
        line.extend_from_slice(content);
        line.push(b'\n');
        if let Some(f) = self.file.as_mut() {
            if f.write_all(&line).is_ok() {
                self.size += line.len() as u64;
            }
        }
        if self.max_bytes > 0 && self.size >= self.max_bytes {
            self.rotate();
        }
    }

    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
    }

    /// Renames the live file to the next `<name>.<seq>`, starts a new one, and removes the
    /// oldest rotated files beyond `max_files - 1`.
    fn rotate(&mut self) {
        let Some(name) = self.path.file_name() else {
            return;
        };
        let mut rotated_name = name.to_os_string();
        rotated_name.push(format!(".{:010}", self.next_seq));
        let rotated = self.path.with_file_name(rotated_name);
        self.next_seq += 1;
        if fs::rename(&self.path, &rotated).is_err() {
            // Keep writing where we are rather than lose lines; try again next line.
            return;
        }
        self.file = open_append(&self.path).ok();
        self.size = 0;
        let keep = self.max_files.saturating_sub(1) as usize;
        let all = rotated_log_files(&self.path);
        let excess = all.len().saturating_sub(keep);
        for old in all.iter().take(excess) {
            let _ = fs::remove_file(old);
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The rotated files of a live log file (`<name>.<seq>`, see the module docs), oldest first.
pub fn rotated_log_files(log_path: &Path) -> Vec<PathBuf> {
    let Some(dir) = log_path.parent() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| rotation_seq(log_path, &p).map(|s| (s, p)))
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// The `<seq>` of `candidate` if it is a rotated file of `log_path`.
fn rotation_seq(log_path: &Path, candidate: &Path) -> Option<u64> {
    let base = log_path.file_name()?.to_str()?;
    let name = candidate.file_name()?.to_str()?;
    let seq = name.strip_prefix(base)?.strip_prefix('.')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
}

/// Writes `value` as JSON to `path` through a temporary file and a rename, so readers see
/// all of it or nothing.
fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Reads `started.json` from a state dir, if there.
pub fn read_started(state_dir: &Path) -> Option<Started> {
    read_json(&state_dir.join(STARTED_FILE))
}

/// Reads `exited.json` from a state dir, if there.
pub fn read_exited(state_dir: &Path) -> Option<Exited> {
    read_json(&state_dir.join(EXITED_FILE))
}

// ---- Time, without a date library ----

/// Nanoseconds since the Unix epoch (negative before it).
pub fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds), the format of [`Started`] and [`Exited`].
pub fn rfc3339_seconds(t: SystemTime) -> String {
    let (date, _) = split_nanos(unix_nanos(t));
    date
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (UTC, always nine digits): Go's `RFC3339NanoFixed`, the
/// time of a CRI log line and of `kubectl logs --timestamps`.
pub fn rfc3339_nanos(unix_nanos: i128) -> String {
    let (date, frac) = split_nanos(unix_nanos);
    format!("{}.{frac:09}Z", date.trim_end_matches('Z'))
}

/// The whole-second RFC 3339 text of an instant and its nanoseconds.
fn split_nanos(unix_nanos: i128) -> (String, u32) {
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let frac = unix_nanos.rem_euclid(1_000_000_000) as u32;
    let secs = i64::try_from(secs).unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        ),
        frac,
    )
}

/// Parses an RFC 3339 time (`2026-12-02T01:02:03Z`, `…03.5+01:00`, lower-case `t`/`z`
/// accepted as Go does) into nanoseconds since the Unix epoch.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = b.get(from..to)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-')
        && at(7, b'-')
        && (at(10, b'T') || at(10, b't'))
        && at(13, b':')
        && at(16, b':'))
    {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut frac: i128 = 0;
    if at(i, b'.') || at(i, b',') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let mut scale = 100_000_000i128;
        for &c in &b[start..i.min(start + 9)] {
            frac += i128::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && at(i + 3, b':') => {
            let oh = num(i + 1, i + 3)?;
            let om = num(i + 4, i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + frac)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str) -> ShimSpec {
        let state = dir.join("state");
        fs::create_dir_all(&state).expect("state dir");
        ShimSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: dir.to_path_buf(),
            log_path: dir.join("logs").join("c").join("0.log"),
            log_max_bytes: 10 * 1024 * 1024,
            log_max_files: 5,
            cgroup_procs: Vec::new(),
            state_dir: state,
        }
    }

    /// Runs the shim on a thread (bounded) and returns its exit code.
    fn run_shim(s: &ShimSpec) -> i32 {
        let path = s.state_dir.join("spec.json");
        fs::write(&path, serde_json::to_vec(s).expect("json")).expect("write spec");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(shim_main(&path));
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the shim ends in time")
    }

    fn log_lines(s: &ShimSpec) -> Vec<String> {
        let text = fs::read_to_string(&s.log_path).expect("log file");
        text.lines().map(str::to_string).collect()
    }

    /// `(stream, tag, content)` of a CRI line, checking its time.
    fn parse(line: &str) -> (String, String, String) {
        let mut parts = line.splitn(4, ' ');
        let ts = parts.next().expect("time");
        assert_eq!(ts.len(), 30, "fixed nanosecond time: {ts}");
        assert!(parse_rfc3339_nanos(ts).is_some(), "{ts}");
        let stream = parts.next().expect("stream").to_string();
        let tag = parts.next().expect("tag").to_string();
        let content = parts.next().unwrap_or("").to_string();
        (stream, tag, content)
    }

    #[test]
    fn exit_codes_and_started_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(dir.path(), "exit 3");
        assert_eq!(run_shim(&s), 0);
        let started = read_started(&s.state_dir).expect("started.json");
        assert!(started.pid > 0);
        assert!(parse_rfc3339_nanos(&started.started_at).is_some());
        let exited = read_exited(&s.state_dir).expect("exited.json");
        assert_eq!(exited.exit_code, 3);
        assert_eq!(exited.signal, None);
        assert_eq!(exited.error, None);
        assert!(parse_rfc3339_nanos(&exited.finished_at).is_some());
        assert!(!s.state_dir.join("exited.json.tmp").exists());

        let s0 = spec(&dir.path().join("ok"), "true");
        assert_eq!(run_shim(&s0), 0);
        assert_eq!(read_exited(&s0.state_dir).expect("exited").exit_code, 0);
    }

    #[test]
    fn a_signal_exit_is_128_plus_the_signal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(dir.path(), "kill -TERM $$; sleep 5");
        run_shim(&s);
        let exited = read_exited(&s.state_dir).expect("exited.json");
        assert_eq!(exited.signal, Some(libc::SIGTERM));
        assert_eq!(exited.exit_code, 128 + libc::SIGTERM);
    }

    #[test]
    fn the_process_gets_exactly_the_env_cwd_and_own_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("work");
        fs::create_dir_all(&work).expect("work dir");
        let mut s = spec(
            dir.path(),
            "echo \"A=$A\"; echo \"HOME=${HOME-unset}\"; pwd; \
             echo \"pg=$(ps -o pgid= -p $$ | tr -d ' ') pid=$$\"",
        );
        s.cwd = work.clone();
        s.env.push(("A".into(), "b c".into()));
        run_shim(&s);
        let contents: Vec<String> = log_lines(&s).iter().map(|l| parse(l).2).collect();
        assert_eq!(contents[0], "A=b c");
        assert_eq!(contents[1], "HOME=unset");
        let real = fs::canonicalize(&work).expect("canonical");
        assert_eq!(contents[2], real.display().to_string());
        if let Some(pg) = contents.get(3).filter(|l| !l.starts_with("pg= ")) {
            // ps may be missing; when it answers, the pgid is the pid.
            let (pg, pid) = pg.split_once(' ').expect("two fields");
            assert_eq!(pg.trim_start_matches("pg="), pid.trim_start_matches("pid="));
        }
    }

    #[test]
    fn spawn_failures_are_recorded_with_runc_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(dir.path(), "");
        s.argv = vec!["no-such-program-xyz".into()];
        assert_eq!(run_shim(&s), 0);
        let exited = read_exited(&s.state_dir).expect("exited.json");
        assert_eq!(exited.exit_code, 128);
        let msg = "exec: \"no-such-program-xyz\": executable file not found in $PATH";
        assert_eq!(exited.error.as_deref(), Some(msg));
        assert!(read_started(&s.state_dir).is_none());
        let (stream, tag, content) = parse(&log_lines(&s)[0]);
        assert_eq!(
            (stream.as_str(), tag.as_str(), content.as_str()),
            ("stderr", "F", msg)
        );

        let d2 = dir.path().join("two");
        let mut s2 = spec(&d2, "");
        s2.argv = vec!["/nonexistent/prog".into()];
        run_shim(&s2);
        assert_eq!(
            read_exited(&s2.state_dir).and_then(|e| e.error).as_deref(),
            Some("exec: \"/nonexistent/prog\": stat /nonexistent/prog: no such file or directory")
        );

        let d3 = dir.path().join("three");
        let mut s3 = spec(&d3, "");
        let not_exec = d3.join("script");
        fs::write(&not_exec, "echo hi\n").expect("write");
        s3.argv = vec![not_exec.display().to_string()];
        run_shim(&s3);
        assert_eq!(
            read_exited(&s3.state_dir).and_then(|e| e.error),
            Some(format!(
                "exec: {:?}: permission denied",
                not_exec.display().to_string()
            ))
        );

        let d4 = dir.path().join("four");
        let mut s4 = spec(&d4, "true");
        s4.cwd = d4.join("missing");
        run_shim(&s4);
        let err = read_exited(&s4.state_dir)
            .and_then(|e| e.error)
            .expect("error");
        assert!(
            err.starts_with("chdir to cwd (") && err.ends_with("no such file or directory"),
            "{err}"
        );
    }

    #[test]
    fn an_unreadable_spec_is_reported_in_its_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spec.json");
        fs::write(&path, b"{not json").expect("write");
        assert_eq!(shim_main(&path), 1);
        let exited = read_exited(dir.path()).expect("exited.json");
        assert_eq!(exited.exit_code, 128);
        assert!(exited
            .error
            .expect("error")
            .starts_with("failed to read the shim spec"));
    }

    #[test]
    fn output_is_logged_in_cri_format_with_stream_tags_and_partial_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(
            dir.path(),
            "echo out1; sleep 0.05; echo err1 >&2; sleep 0.05; echo out2; printf 'no newline'",
        );
        run_shim(&s);
        let parsed: Vec<_> = log_lines(&s).iter().map(|l| parse(l)).collect();
        let want = |stream: &str, content: &str| {
            (stream.to_string(), "F".to_string(), content.to_string())
        };
        assert_eq!(
            parsed,
            vec![
                want("stdout", "out1"),
                want("stderr", "err1"),
                want("stdout", "out2"),
                want("stdout", "no newline"),
            ]
        );
        // Times never go backwards between lines of one stream.
        let text = fs::read_to_string(&s.log_path).expect("log");
        assert!(text.ends_with("no newline\n"));
    }

    #[test]
    fn long_lines_are_split_into_partial_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = MAX_LOG_LINE * 2 + 100;
        let s = spec(
            dir.path(),
            &format!("head -c {n} /dev/zero | tr '\\0' x; echo; echo short"),
        );
        run_shim(&s);
        let parsed: Vec<_> = log_lines(&s).iter().map(|l| parse(l)).collect();
        let tags: Vec<&str> = parsed.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(tags, vec!["P", "P", "F", "F"]);
        assert_eq!(parsed[0].2.len(), MAX_LOG_LINE);
        assert_eq!(parsed[1].2.len(), MAX_LOG_LINE);
        assert_eq!(parsed[2].2.len(), 100);
        assert_eq!(parsed[3].2, "short");
    }

    #[test]
    fn rotation_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(
            dir.path(),
            "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
        );
        s.log_max_bytes = 1000;
        s.log_max_files = 3;
        run_shim(&s);
        let rotated = rotated_log_files(&s.log_path);
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        let files: Vec<_> = fs::read_dir(s.log_path.parent().expect("dir"))
            .expect("read dir")
            .filter_map(Result::ok)
            .collect();
        assert_eq!(files.len(), 3);
        for r in &rotated {
            let size = fs::metadata(r).expect("meta").len();
            assert!((1000..1100).contains(&size), "{size}");
        }
        // The newest lines are in the live file, the ones before in the newest rotated file.
        let live = log_lines(&s);
        assert_eq!(parse(live.last().expect("a line")).2, "line-199");
        let newest_rotated = fs::read_to_string(rotated.last().expect("rotated")).expect("read");
        let last_rotated = newest_rotated.lines().last().expect("line");
        let first_live = parse(&live[0]).2;
        let n_last: u32 = parse(last_rotated)
            .2
            .trim_start_matches("line-")
            .parse()
            .expect("n");
        let n_first: u32 = first_live.trim_start_matches("line-").parse().expect("n");
        assert_eq!(n_last + 1, n_first);
        let names: Vec<String> = rotated
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert!(names
            .iter()
            .all(|n| n.starts_with("0.log.") && n.len() == "0.log.".len() + 10));
    }

    #[test]
    fn a_grandchild_holding_the_pipe_does_not_hold_the_shim() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(dir.path(), "sleep 5 & echo started");
        let t0 = Instant::now();
        run_shim(&s);
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert_eq!(read_exited(&s.state_dir).expect("exited").exit_code, 0);
        assert_eq!(parse(&log_lines(&s)[0]).2, "started");
    }

    #[test]
    fn times_format_and_parse() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        let t = parse_rfc3339_nanos("2026-12-02T01:02:03.123456789Z").expect("parse");
        assert_eq!(rfc3339_nanos(t), "2026-12-02T01:02:03.123456789Z");
        assert_eq!(
            parse_rfc3339_nanos("2026-12-02T02:02:03.5+01:00"),
            parse_rfc3339_nanos("2026-12-02T01:02:03.500Z")
        );
        assert_eq!(
            rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(parse_rfc3339_nanos("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_nanos("2026-12-02 01:02:03Z"), None);
        assert_eq!(parse_rfc3339_nanos("2026-12-02T01:02:03"), None);
        assert_eq!(rfc3339_nanos(-1), "1969-12-31T23:59:59.999999999Z");
    }
}
