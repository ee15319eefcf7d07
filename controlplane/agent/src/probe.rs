//! Liveness, readiness and startup probes, as the kubelet runs them (`pkg/kubelet/prober` and
//! `pkg/probe/{exec,http,tcp}`).
//!
//! [`probe_once`] runs one attempt of a probe's handler and answers an [`Outcome`] whose
//! messages are the kubelet's texts:
//!
//! - `exec`: the command (argv, no shell, `$(VAR)` references expanded from the container's
//!   environment like the kubelet's `ExpandContainerCommandOnlyStatic`) runs with exactly the
//!   container's environment and working directory, inside the container's cgroups, in a
//!   process group of its own. Exit status 0 is a success; any other status a failure whose
//!   message is the command's output (stdout then stderr, at most 10 KiB). At the timeout the
//!   whole process group is killed and the failure reads `command "sleep 10" timed out`.
//! - `httpGet`: an HTTP/1.1 `GET` with `User-Agent: kube-probe/1.36`, `Accept: */*` and
//!   `Connection: close` (overridable by `httpHeaders`, whose `Host` replaces the request's
//!   host). Statuses 200–299 succeed; 300–399 answer a [`Outcome::Warning`] (a success);
//!   others fail with `HTTP probe failed with statuscode: 503`. Redirects to the same host
//!   name are followed (at most 10 requests); redirects to another host are not, and count
//!   as a warning, like the kubelet's default (`followNonLocalRedirects` off). Transport
//!   errors read like Go's, e.g. `Get "http://127.1.0.2:8080/healthz": dial tcp
//!   127.1.0.2:8080: connect: connection refused`, and the timeout `Get "…": context deadline
//!   exceeded (Client.Timeout exceeded while awaiting headers)`. **HTTPS is not supported**:
//!   the kubelet talks TLS without verifying certificates, but this crate has no TLS client,
//!   so an `HTTPS` scheme (or a redirect to one) is a failure saying so. The response body is
//!   not read beyond what arrives with the headers (the kubelet only reads it to put it into
//!   events).
//! - `tcpSocket`: a connection that opens within the timeout succeeds; otherwise the failure
//!   reads `dial tcp 127.1.0.2:8080: connect: connection refused` or `dial tcp
//!   127.1.0.2:8080: i/o timeout`.
//! - `grpc`: not supported; always a failure saying so.
//!
//! As in the kubelet, an attempt that could not be made at all (an unknown named port, an
//! exec command that cannot be started, no handler) is an [`Outcome::Error`]: it is reported
//! but thrown away by the thresholds.
//!
//! [`spawn`] runs a probe periodically from a container's start and publishes the verdict
//! ([`State`]) with the kubelet's initial values and consecutive-result thresholds.
use std::ffi::CString;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use concord_cp_types::go_quote;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// The `User-Agent` the kubelet's HTTP probes send (`kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.36";

/// The most output (exec) the kubelet keeps from one attempt: 10 KiB.
const MAX_OUTPUT: usize = 10 * 1024;

/// The most response header bytes read from an HTTP probe's server.
const MAX_HEADER_BYTES: usize = 1 << 20;

/// The most HTTP requests one attempt makes (the first and its redirects), as Go's client.
const MAX_REQUESTS: usize = 10;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
    /// `startupProbe`.
    Startup,
}

/// What a probe runs against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The pod's IP (httpGet and tcpSocket's default host).
    pub pod_ip: String,
    /// The container's named ports.
    pub ports: Vec<(String, i32)>,
    /// The container's environment (exec probes).
    pub env: Vec<(String, String)>,
    /// The container's working directory (exec probes).
    pub cwd: PathBuf,
    /// The container's `cgroup.procs` files (exec probes join them).
    pub cgroup_procs: Vec<PathBuf>,
}

/// A prober's verdict, thresholds applied.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// No verdict yet.
    Unknown,
    /// Passed.
    Success,
    /// Failed; the last attempt's message.
    Failure(String),
}

/// The result of one probe attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Success,
    /// Passed with a warning: an HTTP probe ended on a redirect it did not follow. The message
    /// is the kubelet's `Probe terminated redirects, Response body: …`.
    Warning(String),
    /// Failed, with the kubelet's message.
    Failure(String),
    /// The attempt could not be made (the kubelet's "probe errored"); thresholds ignore it.
    Error(String),
}

impl Outcome {
    /// Whether the attempt counts as a success (`Some(true)`), a failure (`Some(false)`), or
    /// not at all (`None`, an error).
    pub fn verdict(&self) -> Option<bool> {
        match self {
            Outcome::Success | Outcome::Warning(_) => Some(true),
            Outcome::Failure(_) => Some(false),
            Outcome::Error(_) => None,
        }
    }

    /// The attempt's message (empty for a plain success).
    pub fn message(&self) -> &str {
        match self {
            Outcome::Success => "",
            Outcome::Warning(m) | Outcome::Failure(m) | Outcome::Error(m) => m,
        }
    }
}

/// One attempt a [`Prober`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt, then 2, 3, ….
    pub number: u64,
    /// What it found.
    pub outcome: Outcome,
}

/// A probe's timing fields, with Kubernetes' defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `initialDelaySeconds` (default 0): no attempt before this long after the start.
    pub initial_delay: Duration,
    /// `periodSeconds` (default 10): one attempt every this long.
    pub period: Duration,
    /// `timeoutSeconds` (default 1): each attempt's time limit.
    pub timeout: Duration,
    /// `successThreshold` (default 1): consecutive successes that make a success.
    pub success_threshold: u32,
    /// `failureThreshold` (default 3): consecutive failures that make a failure.
    pub failure_threshold: u32,
}

impl Timing {
    /// Reads the timing fields of `probe` (a Kubernetes Probe object). Missing, zero or
    /// negative values take the API server's defaults (a negative initial delay is 0).
    pub fn from_probe(probe: &Value) -> Timing {
        let positive = |field: &str, default: u64| -> u64 {
            match probe.get(field).and_then(Value::as_i64) {
                Some(v) if v > 0 => v as u64,
                _ => default,
            }
        };
        let threshold = |field: &str, default: u64| -> u32 {
            u32::try_from(positive(field, default)).unwrap_or(u32::MAX)
        };
        Timing {
            initial_delay: Duration::from_secs(positive("initialDelaySeconds", 0)),
            period: Duration::from_secs(positive("periodSeconds", 10)),
            timeout: Duration::from_secs(positive("timeoutSeconds", 1)),
            success_threshold: threshold("successThreshold", 1),
            failure_threshold: threshold("failureThreshold", 3),
        }
    }
}

/// A running prober; dropping it stops it.
pub struct Prober {
    /// The verdict.
    pub state: watch::Receiver<State>,
    attempts: watch::Receiver<Option<Attempt>>,
    task: tokio::task::JoinHandle<()>,
}

impl Prober {
    /// How many attempts have completed so far.
    pub fn attempts(&self) -> u64 {
        self.attempts.borrow().as_ref().map_or(0, |a| a.number)
    }

    /// The last completed attempt, if any.
    pub fn last_attempt(&self) -> Option<Attempt> {
        self.attempts.borrow().clone()
    }

    /// A channel that carries every attempt as it completes (for the kubelet's `Unhealthy`
    /// events, for example: "Liveness probe failed: …").
    pub fn attempt_watch(&self) -> watch::Receiver<Option<Attempt>> {
        self.attempts.clone()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts probing by `probe` (a Kubernetes Probe object) from now; call it when the container
/// starts.
///
/// The state starts as the kubelet's: [`State::Success`] for liveness (until it fails
/// `failureThreshold` times in a row), [`State::Unknown`] ("not ready yet") for readiness and
/// startup. The first attempt runs `initialDelaySeconds` after the call, then one every
/// `periodSeconds`. A verdict changes after `successThreshold` consecutive successes or
/// `failureThreshold` consecutive failures (errored attempts are ignored). Watchers are
/// notified when the verdict changes; while it stays a failure, the message follows the
/// latest attempt without a notification. A startup probe stops after its success; liveness
/// and startup probes stop after their failure (the kubelet holds them until the container
/// restarts, which starts a new prober).
pub fn spawn(kind: Kind, probe: Value, target: Target) -> Prober {
    let timing = Timing::from_probe(&probe);
    spawn_with_timing(kind, probe, target, timing)
}

/// [`spawn`] for a container that started `since_start` ago (a prober started after the
/// startup probe passed, or for a container adopted after an agent restart): the kubelet counts
/// `initialDelaySeconds` from the container's start, so the first attempt runs at
/// `initialDelaySeconds - since_start` from now, or at once.
pub fn spawn_since_start(
    kind: Kind,
    probe: Value,
    target: Target,
    since_start: Duration,
) -> Prober {
    let timing = Timing::from_probe(&probe);
    start(kind, probe, target, timing, since_start)
}

/// [`spawn`] with explicit timing instead of the probe's fields (tests use sub-second ones).
/// Liveness and startup probes use a success threshold of 1, as API validation requires.
pub fn spawn_with_timing(kind: Kind, probe: Value, target: Target, timing: Timing) -> Prober {
    start(kind, probe, target, timing, Duration::ZERO)
}

fn start(kind: Kind, probe: Value, target: Target, timing: Timing, since: Duration) -> Prober {
    let mut timing = timing;
    if kind != Kind::Readiness {
        timing.success_threshold = 1;
    }
    timing.success_threshold = timing.success_threshold.max(1);
    timing.failure_threshold = timing.failure_threshold.max(1);
    if timing.period.is_zero() {
        timing.period = Duration::from_secs(10);
    }
    let initial = match kind {
        Kind::Liveness => State::Success,
        Kind::Readiness | Kind::Startup => State::Unknown,
    };
    let (state_tx, state) = watch::channel(initial);
    let (attempts_tx, attempts) = watch::channel(None);
    let first = Instant::now() + timing.initial_delay.saturating_sub(since);
    let task = tokio::spawn(run(
        kind,
        probe,
        target,
        timing,
        first,
        state_tx,
        attempts_tx,
    ));
    Prober {
        state,
        attempts,
        task,
    }
}

/// Counts consecutive equal results, as the kubelet's worker (`lastResult`, `resultRun`).
#[derive(Debug, Default)]
struct Run {
    last: Option<bool>,
    length: u32,
}

impl Run {
    /// Records a result; whether it reached its threshold (the verdict must be set).
    fn record(&mut self, ok: bool, timing: &Timing) -> bool {
        if self.last == Some(ok) {
            self.length = self.length.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.length = 1;
        }
        let threshold = if ok {
            timing.success_threshold
        } else {
            timing.failure_threshold
        };
        self.length >= threshold
    }
}

/// Sets `new` as the verdict, notifying watchers only when it changes kind.
fn publish(tx: &watch::Sender<State>, new: State) {
    tx.send_if_modified(|current| match (&*current, &new) {
        (State::Failure(old), State::Failure(msg)) => {
            if old != msg {
                *current = new.clone();
            }
            false
        }
        (old, new_state) if old == new_state => false,
        _ => {
            *current = new.clone();
            true
        }
    });
}

async fn run(
    kind: Kind,
    probe: Value,
    target: Target,
    timing: Timing,
    first: Instant,
    state: watch::Sender<State>,
    attempts: watch::Sender<Option<Attempt>>,
) {
    let mut ticker = tokio::time::interval_at(first, timing.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut run = Run::default();
    let mut number = 0u64;
    loop {
        ticker.tick().await;
        let outcome = probe_once(&probe, &target, timing.timeout).await;
        number += 1;
        let verdict = outcome.verdict();
        let message = outcome.message().to_owned();
        tracing::debug!(?kind, attempt = number, ?verdict, "probe attempt");
        attempts.send_replace(Some(Attempt { number, outcome }));
        let Some(ok) = verdict else {
            continue;
        };
        if !run.record(ok, &timing) {
            continue;
        }
        publish(
            &state,
            if ok {
                State::Success
            } else {
                State::Failure(message)
            },
        );
        let done = match kind {
            Kind::Startup => true,
            Kind::Liveness => !ok,
            Kind::Readiness => false,
        };
        if done {
            tracing::debug!(
                ?kind,
                attempts = number,
                "probing stops after a final verdict"
            );
            break;
        }
    }
    // Keep the channels open: watchers keep the final verdict and never see a closed channel.
    state.closed().await;
}

/// Runs one attempt of `probe` (a Kubernetes Probe object) against `target`, limited to
/// `timeout`.
pub async fn probe_once(probe: &Value, target: &Target, timeout: Duration) -> Outcome {
    if let Some(exec) = probe.get("exec").filter(|v| !v.is_null()) {
        exec_probe(exec, target, timeout).await
    } else if let Some(get) = probe.get("httpGet").filter(|v| !v.is_null()) {
        http_probe(get, target, timeout).await
    } else if let Some(tcp) = probe.get("tcpSocket").filter(|v| !v.is_null()) {
        tcp_probe(tcp, target, timeout).await
    } else if probe.get("grpc").is_some_and(|v| !v.is_null()) {
        Outcome::Failure("gRPC probes are not supported by concord-agent".to_owned())
    } else {
        Outcome::Error("missing probe handler".to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// exec

/// Kills a process group when dropped, unless disarmed.
struct GroupKill(Option<i32>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill(2) has no memory-safety requirements.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads all of `pipe`, keeping the first [`MAX_OUTPUT`] bytes.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else {
        return kept;
    };
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

async fn exec_probe(exec: &Value, target: &Target, timeout: Duration) -> Outcome {
    let Some(raw) = exec.get("command").and_then(Value::as_array) else {
        return Outcome::Error("exec probe has no command".to_owned());
    };
    let vars: std::collections::HashMap<String, String> = target.env.iter().cloned().collect();
    let mut argv = Vec::with_capacity(raw.len());
    for arg in raw {
        let Some(arg) = arg.as_str() else {
            return Outcome::Error("exec probe command has a non-string argument".to_owned());
        };
        argv.push(crate::podspec::expand(arg, &vars));
    }
    let Some((program, args)) = argv.split_first() else {
        return Outcome::Error("exec probe has no command".to_owned());
    };
    let mut procs = Vec::with_capacity(target.cgroup_procs.len());
    for path in &target.cgroup_procs {
        match CString::new(path.as_os_str().as_bytes()) {
            Ok(p) => procs.push(p),
            Err(_) => return Outcome::Error("cgroup path contains a NUL byte".to_owned()),
        }
    }
    let has_cwd = !target.cwd.as_os_str().is_empty();
    if let Some(problem) = check_paths(target, has_cwd).await {
        return Outcome::Error(problem);
    }

    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if has_cwd {
        cmd.current_dir(&target.cwd);
    }
    // SAFETY: the closure only makes async-signal-safe calls (open, write, close) on memory
    // prepared before fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for path in &procs {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if written != 1 {
                    return Err(err);
                }
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::Error(start_error(program, &e)),
    };
    let mut group = GroupKill(child.id().and_then(|pid| i32::try_from(pid).ok()));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = tokio::time::timeout(timeout, async {
        tokio::join!(read_capped(stdout), read_capped(stderr), child.wait())
    })
    .await;
    match finished {
        Ok((mut out, err, status)) => {
            group.0 = None;
            out.extend_from_slice(&err);
            out.truncate(MAX_OUTPUT);
            let output = String::from_utf8_lossy(&out).into_owned();
            match status {
                Ok(status) if status.success() => Outcome::Success,
                Ok(_) => Outcome::Failure(output),
                Err(e) => Outcome::Error(format!("wait: {}", go_errno(&e))),
            }
        }
        Err(_) => {
            group.kill();
            // Reap it; SIGKILL makes this quick.
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            tracing::debug!("exec probe timed out; its process group was killed");
            Outcome::Failure(format!("command {} timed out", go_quote(&argv.join(" "))))
        }
    }
}

/// Checks (off the async workers) that the cgroup files and the working directory exist, so
/// that their absence is reported as such rather than as the command's.
async fn check_paths(target: &Target, has_cwd: bool) -> Option<String> {
    let procs = target.cgroup_procs.clone();
    let cwd = has_cwd.then(|| target.cwd.clone());
    let checked = tokio::task::spawn_blocking(move || {
        for path in &procs {
            if let Err(e) = std::fs::metadata(path) {
                return Some(format!("open {}: {}", path.display(), go_errno(&e)));
            }
        }
        match cwd {
            Some(cwd) if !std::fs::metadata(&cwd).is_ok_and(|m| m.is_dir()) => Some(format!(
                "chdir {}: no such file or directory",
                cwd.display()
            )),
            _ => None,
        }
    })
    .await;
    checked.unwrap_or_else(|_| Some("checking the exec probe's paths failed".to_owned()))
}

/// Go's `os/exec` error text for a command that could not start.
fn start_error(program: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound && !program.contains('/') {
        format!(
            "exec: {}: executable file not found in $PATH",
            go_quote(program)
        )
    } else {
        format!("fork/exec {program}: {}", go_errno(e))
    }
}

// ---------------------------------------------------------------------------------------------
// Go-like texts

/// An OS error as Go prints it ("connection refused"): the C library's text, first letter in
/// lower case, without Rust's "(os error N)".
fn go_errno(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return "unexpected EOF".to_owned();
    }
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---------------------------------------------------------------------------------------------
// ports and dialing

/// The kubelet's `ResolveContainerPort`: a number, or a named container port, or a number in a
/// string.
fn resolve_port(port: Option<&Value>, target: &Target) -> Result<u16, String> {
    let number: i64 = match port {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("invalid port number: {n}"))?,
        Some(Value::String(name)) => match target.ports.iter().find(|(n, _)| n == name) {
            Some((_, p)) => i64::from(*p),
            None => name
                .parse::<i64>()
                .map_err(|_| format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(name)))?,
        },
        _ => return Err("probe has no port".to_owned()),
    };
    match u16::try_from(number) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("invalid port number: {number}")),
    }
}

/// The host a probe handler names, or the pod's IP.
fn handler_host(handler: &Value, target: &Target) -> String {
    match handler.get("host").and_then(Value::as_str) {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => target.pod_ip.clone(),
    }
}

/// Connects to `host:port` like Go's dialer, with Go's error texts (`dial tcp
/// 127.0.0.1:80: connect: connection refused`). `current` holds the address being dialed, for
/// a timeout's message.
async fn dial(host: &str, port: u16, current: &Mutex<String>) -> Result<TcpStream, String> {
    let addrs: Vec<std::net::SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![std::net::SocketAddr::new(ip, port)],
        Err(_) => {
            slot_set(current, format!("dial tcp: lookup {host}"));
            match tokio::net::lookup_host((host, port)).await {
                Ok(found) => found.collect(),
                Err(_) => Vec::new(),
            }
        }
    };
    if addrs.is_empty() {
        return Err(format!("dial tcp: lookup {host}: no such host"));
    }
    let mut first_error = None;
    for addr in addrs {
        let shown = join_host_port(&addr.ip().to_string(), addr.port());
        slot_set(current, format!("dial tcp {shown}"));
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                first_error.get_or_insert(format!("dial tcp {shown}: connect: {}", go_errno(&e)));
            }
        }
    }
    Err(first_error.unwrap_or_else(|| format!("dial tcp: lookup {host}: no such host")))
}

fn slot_set(slot: &Mutex<String>, value: String) {
    if let Ok(mut s) = slot.lock() {
        *s = value;
    }
}

fn slot_get(slot: &Mutex<String>) -> String {
    slot.lock().map(|s| s.clone()).unwrap_or_default()
}

async fn tcp_probe(tcp: &Value, target: &Target, timeout: Duration) -> Outcome {
    let port = match resolve_port(tcp.get("port"), target) {
        Ok(p) => p,
        Err(e) => return Outcome::Error(e),
    };
    let host = handler_host(tcp, target);
    let current = Mutex::new(format!("dial tcp {}", join_host_port(&host, port)));
    match tokio::time::timeout(timeout, dial(&host, port, &current)).await {
        Ok(Ok(stream)) => {
            drop(stream);
            Outcome::Success
        }
        Ok(Err(e)) => Outcome::Failure(e),
        Err(_) => Outcome::Failure(format!("{}: i/o timeout", slot_get(&current))),
    }
}

// ---------------------------------------------------------------------------------------------
// httpGet

/// An `http` or `https` URL, as far as probes need one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpUrl {
    /// `http` or `https` (lower case).
    scheme: String,
    /// The host name or IP, without brackets.
    host: String,
    port: u16,
    /// The path and query, escaped; may be empty.
    target: String,
}

impl HttpUrl {
    fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// Go's `url.String()`.
    fn show(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority(), self.target)
    }

    /// The request target of the request line.
    fn request_target(&self) -> String {
        if self.target.is_empty() || self.target.starts_with('?') {
            format!("/{}", self.target)
        } else {
            self.target.clone()
        }
    }

    /// Resolves a `Location` header against this URL.
    fn join(&self, location: &str) -> Result<HttpUrl, String> {
        let location = location.split('#').next().unwrap_or_default();
        if let Some((scheme, rest)) = split_scheme(location) {
            return parse_absolute(&scheme, rest);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return parse_absolute(&self.scheme, rest);
        }
        let (base_path, _) = split_query(&self.target);
        let target = if location.starts_with('/') {
            location.to_owned()
        } else if location.is_empty() {
            self.target.clone()
        } else if location.starts_with('?') {
            format!("{base_path}{location}")
        } else {
            let dir = match base_path.rfind('/') {
                Some(i) => &base_path[..=i],
                None => "/",
            };
            format!("{dir}{location}")
        };
        let (path, query) = split_query(&target);
        Ok(HttpUrl {
            scheme: self.scheme.clone(),
            host: self.host.clone(),
            port: self.port,
            target: format!("{}{}", escape(&remove_dots(path)), escape(query)),
        })
    }
}

/// `("http", "host/x")` from `"HTTP://host/x"`, if `s` starts with a scheme.
fn split_scheme(s: &str) -> Option<(String, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then(|| (scheme.to_ascii_lowercase(), rest))
}

fn split_query(target: &str) -> (&str, &str) {
    match target.find('?') {
        Some(i) => (&target[..i], &target[i..]),
        None => (target, ""),
    }
}

/// Parses `authority[/path][?query]` of a `scheme` URL.
fn parse_absolute(scheme: &str, rest: &str) -> Result<HttpUrl, String> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => 0,
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "missing ']' in host".to_owned())?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid port {} after host", go_quote(&format!(":{p}"))))?,
    };
    let (path, query) = split_query(&rest[end..]);
    Ok(HttpUrl {
        scheme: scheme.to_owned(),
        host: host.to_owned(),
        port,
        target: format!("{}{}", escape(&remove_dots(path)), escape(query)),
    })
}

/// Removes `.` and `..` segments (RFC 3986 5.2.4).
fn remove_dots(path: &str) -> String {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return path.to_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if path.starts_with('/') && !joined.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Percent-encodes the bytes that may not appear in a request line (controls, space,
/// non-ASCII); everything else is kept as written.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b <= b' ' || b >= 0x7f || b == b'"' {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Go's `textproto.CanonicalMIMEHeaderKey`.
fn canonical_header(name: &str) -> String {
    if !valid_header_name(name) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

fn valid_host_header(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=@[]_~".contains(&b))
}

/// A probe's HTTP request.
#[derive(Debug, Clone)]
struct HttpRequest {
    url: HttpUrl,
    /// Canonical header names with their values, sorted by name; without `Host` and
    /// `User-Agent`.
    headers: Vec<(String, Vec<String>)>,
    /// The `Host` header, if `httpHeaders` set one.
    host: Option<String>,
    /// The `User-Agent` (none when set to empty).
    user_agent: Option<String>,
    /// Why Go's client would refuse to send it.
    invalid: Option<String>,
}

/// The kubelet's `NewRequestForHTTPGetAction`.
fn build_request(get: &Value, target: &Target) -> Result<HttpRequest, String> {
    let scheme = match get.get("scheme").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s.to_ascii_lowercase(),
        _ => "http".to_owned(),
    };
    let host = handler_host(get, target);
    let port = resolve_port(get.get("port"), target)?;
    let path = get.get("path").and_then(Value::as_str).unwrap_or_default();
    let path = path.split('#').next().unwrap_or_default();
    let path = if !path.is_empty() && !path.starts_with('/') && !path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let (p, q) = split_query(&path);
    let url = HttpUrl {
        scheme,
        host,
        port,
        target: format!("{}{}", escape(p), escape(q)),
    };

    let mut headers: Vec<(String, Vec<String>)> = Vec::new();
    let mut invalid = None;
    for header in get
        .get("httpHeaders")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = header
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let value = header
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if invalid.is_none() {
            if !valid_header_name(name) {
                invalid = Some(format!(
                    "net/http: invalid header field name {}",
                    go_quote(name)
                ));
            } else if !valid_header_value(value) {
                invalid = Some(format!(
                    "net/http: invalid header field value for {}",
                    go_quote(name)
                ));
            }
        }
        let key = canonical_header(name);
        match headers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value.to_owned()),
            None => headers.push((key, vec![value.to_owned()])),
        }
    }
    let take = |headers: &mut Vec<(String, Vec<String>)>, key: &str| {
        let i = headers.iter().position(|(k, _)| k == key)?;
        Some(headers.remove(i).1)
    };
    let user_agent = match take(&mut headers, "User-Agent") {
        None => Some(USER_AGENT.to_owned()),
        Some(values) => values.into_iter().next().filter(|v| !v.is_empty()),
    };
    match headers.iter().position(|(k, _)| k == "Accept") {
        None => headers.push(("Accept".to_owned(), vec!["*/*".to_owned()])),
        Some(i) if headers[i].1.first().is_none_or(|v| v.is_empty()) => {
            headers.remove(i);
        }
        Some(_) => {}
    }
    let host_header = take(&mut headers, "Host")
        .and_then(|values| values.into_iter().next())
        .filter(|h| !h.is_empty());
    if invalid.is_none()
        && host_header
            .as_deref()
            .is_some_and(|h| !valid_host_header(h))
    {
        invalid = Some("http: invalid Host header".to_owned());
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(HttpRequest {
        url,
        headers,
        host: host_header,
        user_agent,
        invalid,
    })
}

/// What a server answered (after any `1xx` responses).
#[derive(Debug)]
struct Response {
    status: u16,
    location: Option<String>,
    /// The start of the body, as far as it arrived with the headers.
    body: Vec<u8>,
}

/// The request's bytes, as Go's client writes them.
fn request_bytes(
    url: &HttpUrl,
    host: &str,
    user_agent: Option<&str>,
    headers: &[(String, Vec<String>)],
) -> Vec<u8> {
    let mut out = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", url.request_target());
    if let Some(ua) = user_agent {
        out.push_str(&format!("User-Agent: {ua}\r\n"));
    }
    for (name, values) in headers {
        for value in values {
            out.push_str(&format!("{name}: {}\r\n", value.trim()));
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Reads one line (through `\n`), refusing to read past `budget` bytes in all.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    budget: &mut usize,
    io_error: &(dyn Fn(&std::io::Error) -> String + Sync),
) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await.map_err(|e| io_error(&e))?;
        if available.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err("unexpected EOF".to_owned())
            };
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        if chunk.len() > *budget {
            return Err(format!(
                "net/http: server response headers exceeded {MAX_HEADER_BYTES} bytes; aborted"
            ));
        }
        *budget -= chunk.len();
        line.extend_from_slice(chunk);
        let used = chunk.len();
        reader.consume(used);
        if done {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

/// Sends one request and reads the response's head. Errors are Go's texts, without the
/// `Get "url": ` prefix.
async fn exchange(
    req: &HttpRequest,
    url: &HttpUrl,
    host: &str,
    referer: Option<&str>,
    current: &Mutex<String>,
) -> Result<Response, String> {
    if url.scheme == "https" {
        return Err(
            "HTTPS probes are not supported by concord-agent (it has no TLS client)".to_owned(),
        );
    }
    if url.scheme != "http" {
        return Err(format!(
            "unsupported protocol scheme {}",
            go_quote(&url.scheme)
        ));
    }
    if let Some(why) = &req.invalid {
        return Err(why.clone());
    }
    let mut stream = dial(&url.host, url.port, current).await?;
    let peer = match (stream.local_addr(), stream.peer_addr()) {
        (Ok(l), Ok(p)) => format!("{l}->{p}"),
        _ => join_host_port(&url.host, url.port),
    };
    let mut headers = req.headers.clone();
    if let Some(referer) = referer {
        headers.push(("Referer".to_owned(), vec![referer.to_owned()]));
        headers.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let bytes = request_bytes(url, host, req.user_agent.as_deref(), &headers);
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("write tcp {peer}: write: {}", go_errno(&e)))?;

    let read_error = |e: &std::io::Error| format!("read tcp {peer}: read: {}", go_errno(e));
    let mut reader = BufReader::new(stream);
    let mut budget = MAX_HEADER_BYTES;
    let mut first = true;
    loop {
        let Some(status_line) = read_line(&mut reader, &mut budget, &read_error).await? else {
            return Err(if first {
                "EOF".to_owned()
            } else {
                "unexpected EOF".to_owned()
            });
        };
        first = false;
        let (proto, rest) = status_line.split_once(' ').unwrap_or((&status_line, ""));
        if !proto.starts_with("HTTP/") {
            return Err(format!(
                "net/http: HTTP/1.x transport connection broken: malformed HTTP response {}",
                go_quote(&status_line)
            ));
        }
        let code = rest.trim_start().split(' ').next().unwrap_or_default();
        let status = match code.parse::<u16>() {
            Ok(s) if code.len() == 3 => s,
            _ => {
                return Err(format!(
                    "net/http: HTTP/1.x transport connection broken: malformed HTTP status code {}",
                    go_quote(code)
                ))
            }
        };
        let mut location = None;
        let mut content_length = None;
        let mut chunked = false;
        loop {
            let Some(line) = read_line(&mut reader, &mut budget, &read_error).await? else {
                return Err("unexpected EOF".to_owned());
            };
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("location") && location.is_none() {
                location = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let mut body = if chunked || status == 204 || status == 304 {
            Vec::new()
        } else {
            reader.buffer().to_vec()
        };
        body.truncate(content_length.unwrap_or(usize::MAX).min(MAX_OUTPUT));
        return Ok(Response {
            status,
            location,
            body,
        });
    }
}

/// Sends `req`, following redirects to the same host name as Go's client with the kubelet's
/// redirect checker does.
async fn follow(req: &HttpRequest, current: &Mutex<String>, shown: &Mutex<String>) -> Outcome {
    let mut url = req.url.clone();
    let mut host = req.host.clone();
    let mut referer: Option<String> = None;
    let mut made = 0usize;
    loop {
        let url_text = url.show();
        slot_set(shown, url_text.clone());
        let authority = url.authority();
        let host_header = host.as_deref().unwrap_or(&authority);
        let response = match exchange(req, &url, host_header, referer.as_deref(), current).await {
            Ok(r) => r,
            Err(e) => return Outcome::Failure(format!("Get {}: {e}", go_quote(&url_text))),
        };
        made += 1;
        let location = response.location.as_deref().filter(|l| !l.is_empty());
        if let (301 | 302 | 303 | 307 | 308, Some(location)) = (response.status, location) {
            let next = match url.join(location) {
                Ok(next) => next,
                Err(e) => {
                    return Outcome::Failure(format!(
                        "Get {}: failed to parse Location header {}: {e}",
                        go_quote(&url_text),
                        go_quote(location)
                    ))
                }
            };
            if next.host == req.url.host {
                if made >= MAX_REQUESTS {
                    return Outcome::Failure(format!(
                        "Get {}: stopped after {MAX_REQUESTS} redirects",
                        go_quote(location)
                    ));
                }
                // Go keeps a custom Host header only through relative redirects.
                if split_scheme(location).is_some() || location.starts_with("//") {
                    host = None;
                }
                referer = Some(url_text);
                url = next;
                continue;
            }
        }
        return classify(&response);
    }
}

/// The kubelet's `DoHTTPProbe` verdict on a final response.
fn classify(response: &Response) -> Outcome {
    match response.status {
        200..=299 => Outcome::Success,
        300..=399 => Outcome::Warning(format!(
            "Probe terminated redirects, Response body: {}",
            String::from_utf8_lossy(&response.body)
        )),
        code => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
    }
}

async fn http_probe(get: &Value, target: &Target, timeout: Duration) -> Outcome {
    let req = match build_request(get, target) {
        Ok(req) => req,
        Err(e) => return Outcome::Error(e),
    };
    let current = Mutex::new(String::new());
    let shown = Mutex::new(req.url.show());
    match tokio::time::timeout(timeout, follow(&req, &current, &shown)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failure(format!(
            "Get {}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            go_quote(&slot_get(&shown))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::Arc;

    use serde_json::json;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    fn target(dir: &std::path::Path) -> Target {
        Target {
            pod_ip: "127.0.0.1".to_owned(),
            ports: vec![("http".to_owned(), 0)],
            env: vec![
                ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
                ("FOO".to_owned(), "bar".to_owned()),
            ],
            cwd: dir.to_path_buf(),
            cgroup_procs: Vec::new(),
        }
    }

    fn exec(cmd: &[&str]) -> Value {
        json!({ "exec": { "command": cmd } })
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn exec_success_failure_output_env_cwd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = target(dir.path());
        assert_eq!(
            probe_once(&exec(&["true"]), &t, SECOND).await,
            Outcome::Success
        );
        let cmd = exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(
            probe_once(&cmd, &t, SECOND).await,
            Outcome::Failure("out\nerr\n".to_owned())
        );
        // Exactly the container's environment and working directory; $(VAR) expansion.
        let cmd = exec(&[
            "sh",
            "-c",
            "echo \"$0|$1|$2|$FOO|${HOME-unset}|$(pwd)\"; exit 1",
            "$(FOO)",
            "$$(FOO)",
            "$(NOPE)",
        ]);
        let cwd = dir.path().canonicalize().expect("canonical");
        let want = format!("bar|$(FOO)|$(NOPE)|bar|unset|{}\n", cwd.display());
        assert_eq!(probe_once(&cmd, &t, SECOND).await, Outcome::Failure(want));
    }

    #[tokio::test]
    async fn exec_that_cannot_start_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = target(dir.path());
        assert_eq!(
            probe_once(&exec(&["no-such-command-xyz"]), &t, SECOND).await,
            Outcome::Error(
                "exec: \"no-such-command-xyz\": executable file not found in $PATH".to_owned()
            )
        );
        assert_eq!(
            probe_once(&exec(&["/no/such"]), &t, SECOND).await,
            Outcome::Error("fork/exec /no/such: no such file or directory".to_owned())
        );
        assert_eq!(
            probe_once(&exec(&[]), &t, SECOND).await,
            Outcome::Error("exec probe has no command".to_owned())
        );
        assert_eq!(
            probe_once(&json!({}), &t, SECOND).await,
            Outcome::Error("missing probe handler".to_owned())
        );
        assert_eq!(
            probe_once(&json!({"grpc": {"port": 1}}), &t, SECOND).await,
            Outcome::Failure("gRPC probes are not supported by concord-agent".to_owned())
        );
    }

    #[tokio::test]
    async fn exec_joins_the_cgroups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let procs = dir.path().join("cgroup.procs");
        std::fs::write(&procs, "").expect("write");
        let mut t = target(dir.path());
        t.cgroup_procs = vec![procs.clone()];
        assert_eq!(
            probe_once(&exec(&["true"]), &t, SECOND).await,
            Outcome::Success
        );
        assert_eq!(std::fs::read_to_string(&procs).expect("read"), "0");
        let missing = dir.path().join("missing").join("cgroup.procs");
        t.cgroup_procs = vec![missing.clone()];
        assert_eq!(
            probe_once(&exec(&["true"]), &t, SECOND).await,
            Outcome::Error(format!(
                "open {}: no such file or directory",
                missing.display()
            ))
        );
    }

    fn process_gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn exec_timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = target(dir.path());
        let pidfile = dir.path().join("bg.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let started = std::time::Instant::now();
        let outcome = probe_once(
            &exec(&["sh", "-c", &script]),
            &t,
            Duration::from_millis(500),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(
            outcome,
            Outcome::Failure(format!(
                "command {} timed out",
                go_quote(&format!("sh -c {script}"))
            ))
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pidfile")
            .trim()
            .parse()
            .expect("pid");
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !process_gone(pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(process_gone(pid), "background process {pid} survived");
    }

    /// A request a test server received: its head.
    type Seen = mpsc::UnboundedReceiver<String>;

    /// Serves HTTP on 127.0.0.1: `respond(path)` gives the status and extra header lines
    /// (`None`: never answer).
    async fn server<F>(respond: F) -> (u16, Seen)
    where
        F: Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::unbounded_channel();
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                    let _ = tx.send(head);
                    let Some((status, extra)) = respond(&path) else {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        return;
                    };
                    let body = "hello";
                    let response = format!(
                        "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\n{extra}\r\n{body}",
                        body.len()
                    );
                    let _ = reader.get_mut().write_all(response.as_bytes()).await;
                });
            }
        });
        (port, rx)
    }

    /// A port nothing listens on.
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn http_statuses_and_request() {
        let (port, mut seen) = server(|path| match path {
            "/ok" => Some((200, String::new())),
            "/created" => Some((204, String::new())),
            _ => Some((503, String::new())),
        })
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let t = target(dir.path());
        let probe = json!({"httpGet": {"path": "/ok", "port": port}});
        assert_eq!(probe_once(&probe, &t, SECOND).await, Outcome::Success);
        let head = seen.recv().await.expect("request");
        assert_eq!(
            head,
            format!(
                "GET /ok HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.36\r\n\
                 Accept: */*\r\nConnection: close\r\n\r\n"
            )
        );
        let probe = json!({"httpGet": {"path": "created", "port": port, "host": "127.0.0.1"}});
        assert_eq!(probe_once(&probe, &t, SECOND).await, Outcome::Success);
        assert!(seen
            .recv()
            .await
            .expect("request")
            .starts_with("GET /created "));
        let probe = json!({"httpGet": {"path": "/healthz", "port": port}});
        assert_eq!(
            probe_once(&probe, &t, SECOND).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503".to_owned())
        );
    }

    #[tokio::test]
    async fn http_headers_and_named_port() {
        let (port, mut seen) = server(|_| Some((200, String::new()))).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = target(dir.path());
        t.ports = vec![("web".to_owned(), i32::from(port))];
        let probe = json!({"httpGet": {"path": "/h?x=1", "port": "web", "scheme": "HTTP",
        "httpHeaders": [
            {"name": "x-custom", "value": "one"},
            {"name": "X-Custom", "value": "two"},
            {"name": "Host", "value": "example.test"},
            {"name": "user-agent", "value": "mine"},
            {"name": "Accept", "value": "application/json"},
        ]}});
        assert_eq!(probe_once(&probe, &t, SECOND).await, Outcome::Success);
        assert_eq!(
            seen.recv().await.expect("request"),
            "GET /h?x=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: mine\r\n\
             Accept: application/json\r\nX-Custom: one\r\nX-Custom: two\r\n\
             Connection: close\r\n\r\n"
        );
        // An empty Accept removes the header; an empty User-Agent too.
        let probe = json!({"httpGet": {"port": port, "httpHeaders": [
            {"name": "Accept", "value": ""}, {"name": "User-Agent", "value": ""}]}});
        assert_eq!(probe_once(&probe, &t, SECOND).await, Outcome::Success);
        assert_eq!(
            seen.recv().await.expect("request"),
            format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        );
        // Header injection is refused as Go's client refuses it.
        let probe = json!({"httpGet": {"port": port, "httpHeaders": [
            {"name": "X-A", "value": "a\r\nX-B: b"}]}});
        assert_eq!(
            probe_once(&probe, &t, SECOND).await,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}\": net/http: invalid header field value for \"X-A\""
            ))
        );
        // Unknown port names are errors, not failures.
        let probe = json!({"httpGet": {"port": "nope"}});
        assert_eq!(
            probe_once(&probe, &t, SECOND).await,
            Outcome::Error("strconv.Atoi: parsing \"nope\": invalid syntax".to_owned())
        );
        let probe = json!({"tcpSocket": {"port": 70000}});
        assert_eq!(
            probe_once(&probe, &t, SECOND).await,
            Outcome::Error("invalid port number: 70000".to_owned())
        );
    }

    #[tokio::test]
    async fn http_refused_timeout_and_https() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = target(dir.path());
        let port = closed_port().await;
        let probe = json!({"httpGet": {"path": "/healthz", "port": port}});
        assert_eq!(
            probe_once(&probe, &t, SECOND).await,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: \
                 connection refused"
            ))
        );
        let (port, _seen) = server(|_| None).await;
        let probe = json!({"httpGet": {"path": "/slow", "port": port}});
        let started = std::time::Instant::now();
        assert_eq!(
            probe_once(&probe, &t, Duration::from_millis(300)).await,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}/slow\": context deadline exceeded \
                 (Client.Timeout exceeded while awaiting headers)"
            ))
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let probe = json!({"httpGet": {"path": "/", "port": port, "scheme": "HTTPS"}});
        assert_eq!(
            probe_once(&probe, &t, SECOND).await,
            Outcome::Failure(format!(
                "Get \"https://127.0.0.1:{port}/\": HTTPS probes are not supported by \
                 concord-agent (it has no TLS client)"
            ))
        );
    }

    #[tokio::test]
    async fn http_redirects() {
        let closed = closed_port().await;
        let (port, mut seen) = server(move |path| match path {
            "/local" => Some((302, "Location: /final\r\n".to_owned())),
            "/abs" => Some((
                301,
                format!("Location: http://127.0.0.1:{closed}/elsewhere\r\n"),
            )),
            "/away" => Some((302, "Location: http://example.invalid/\r\n".to_owned())),
            "/loop" => Some((307, "Location: loop\r\n".to_owned())),
            "/final" => Some((200, String::new())),
            _ => Some((404, String::new())),
        })
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let t = target(dir.path());
        let get = |path: &str| json!({"httpGet": {"path": path, "port": port}});
        assert_eq!(
            probe_once(&get("/local"), &t, SECOND).await,
            Outcome::Success
        );
        assert!(seen.recv().await.expect("first").starts_with("GET /local "));
        let second = seen.recv().await.expect("second");
        assert!(second.starts_with("GET /final "), "{second}");
        assert!(second.contains(&format!("Referer: http://127.0.0.1:{port}/local\r\n")));
        // Another host: not followed; a warning, which counts as a success.
        assert_eq!(
            probe_once(&get("/away"), &t, SECOND).await,
            Outcome::Warning("Probe terminated redirects, Response body: hello".to_owned())
        );
        // Same host name, other port: followed (and refused there).
        assert_eq!(
            probe_once(&get("/abs"), &t, SECOND).await,
            Outcome::Failure(format!(
                "Get \"http://127.0.0.1:{closed}/elsewhere\": dial tcp 127.0.0.1:{closed}: \
                 connect: connection refused"
            ))
        );
        assert_eq!(
            probe_once(&get("/loop"), &t, SECOND).await,
            Outcome::Failure("Get \"loop\": stopped after 10 redirects".to_owned())
        );
    }

    #[tokio::test]
    async fn tcp_open_and_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = target(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let probe = json!({"tcpSocket": {"port": port}});
        assert_eq!(probe_once(&probe, &t, SECOND).await, Outcome::Success);
        drop(listener);
        assert_eq!(
            probe_once(&probe, &t, SECOND).await,
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
        let probe = json!({"tcpSocket": {"port": port, "host": "localhost"}});
        assert!(matches!(
            probe_once(&probe, &t, SECOND).await,
            Outcome::Failure(m) if m.starts_with("dial tcp ")
                && m.contains(&format!(":{port}: connect: "))
        ));
    }

    #[test]
    fn timing_defaults() {
        assert_eq!(
            Timing::from_probe(&json!({})),
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: SECOND,
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let t = Timing::from_probe(&json!({"initialDelaySeconds": 5, "periodSeconds": 2,
            "timeoutSeconds": 0, "successThreshold": 2, "failureThreshold": -1}));
        assert_eq!(t.initial_delay, Duration::from_secs(5));
        assert_eq!(t.period, Duration::from_secs(2));
        assert_eq!(t.timeout, SECOND);
        assert_eq!((t.success_threshold, t.failure_threshold), (2, 3));
    }

    #[test]
    fn quoting_and_urls() {
        assert_eq!(go_quote("a \"b\"\\\n"), "\"a \\\"b\\\"\\\\\\n\"");
        let base = HttpUrl {
            scheme: "http".to_owned(),
            host: "h".to_owned(),
            port: 8080,
            target: "/a/b?q".to_owned(),
        };
        assert_eq!(base.join("c").expect("join").show(), "http://h:8080/a/c");
        assert_eq!(
            base.join("../d?x").expect("join").show(),
            "http://h:8080/d?x"
        );
        assert_eq!(
            base.join("HTTP://[::1]:9/z").expect("join").show(),
            "http://[::1]:9/z"
        );
        assert_eq!(base.join("//k/").expect("join").show(), "http://k:80/");
    }

    fn flipping_server() -> (
        Arc<AtomicU16>,
        impl Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
    ) {
        let status = Arc::new(AtomicU16::new(200));
        let s = status.clone();
        (status, move |_: &str| {
            Some((s.load(Ordering::SeqCst), String::new()))
        })
    }

    fn fast(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    async fn wait_for(prober: &mut Prober, want: impl Fn(&State) -> bool) -> State {
        let state = tokio::time::timeout(Duration::from_secs(3), prober.state.wait_for(want))
            .await
            .expect("state in time")
            .expect("prober alive");
        state.clone()
    }

    #[tokio::test]
    async fn readiness_thresholds_follow_a_flipping_server() {
        let (status, respond) = flipping_server();
        let (port, _seen) = server(respond).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = json!({"httpGet": {"path": "/", "port": port}});
        let mut prober = spawn_with_timing(Kind::Readiness, probe, target(dir.path()), fast(2, 3));
        assert_eq!(*prober.state.borrow(), State::Unknown);
        wait_for(&mut prober, |s| *s == State::Success).await;
        // Two successes were needed.
        assert!(prober.attempts() >= 2);
        status.store(503, Ordering::SeqCst);
        let before = prober.attempts();
        let state = wait_for(&mut prober, |s| matches!(s, State::Failure(_))).await;
        assert_eq!(
            state,
            State::Failure("HTTP probe failed with statuscode: 503".to_owned())
        );
        assert!(prober.attempts() >= before + 3);
        status.store(200, Ordering::SeqCst);
        wait_for(&mut prober, |s| *s == State::Success).await;
    }

    #[tokio::test]
    async fn liveness_starts_successful_and_stops_after_failing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = exec(&["sh", "-c", "echo broken; exit 1"]);
        let mut prober = spawn_with_timing(Kind::Liveness, probe, target(dir.path()), fast(1, 2));
        assert_eq!(*prober.state.borrow(), State::Success);
        let state = wait_for(&mut prober, |s| *s != State::Success).await;
        assert_eq!(state, State::Failure("broken\n".to_owned()));
        assert_eq!(prober.attempts(), 2);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(prober.attempts(), 2, "liveness holds after its failure");
        assert_eq!(
            prober.last_attempt(),
            Some(Attempt {
                number: 2,
                outcome: Outcome::Failure("broken\n".to_owned())
            })
        );
    }

    #[tokio::test]
    async fn startup_stops_after_success_and_errors_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut prober = spawn_with_timing(
            Kind::Startup,
            exec(&["true"]),
            target(dir.path()),
            fast(1, 3),
        );
        wait_for(&mut prober, |s| *s == State::Success).await;
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(prober.attempts(), 1);

        let prober = spawn_with_timing(
            Kind::Readiness,
            exec(&["no-such-command-xyz"]),
            target(dir.path()),
            fast(1, 1),
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(prober.attempts() >= 2);
        assert_eq!(*prober.state.borrow(), State::Unknown);
    }

    #[tokio::test]
    async fn initial_delay_and_period_from_the_probe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 1,
            "periodSeconds": 1});
        let mut prober = spawn(Kind::Readiness, probe, target(dir.path()));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(prober.attempts(), 0);
        assert_eq!(*prober.state.borrow(), State::Unknown);
        wait_for(&mut prober, |s| *s == State::Success).await;
        assert_eq!(prober.attempts(), 1);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(prober.attempts(), 2);

        // Started 5 s ago with a 2 s initial delay: probing starts at once.
        let probe = json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 2});
        let mut prober = spawn_since_start(
            Kind::Readiness,
            probe,
            target(dir.path()),
            Duration::from_secs(5),
        );
        tokio::time::timeout(
            Duration::from_millis(500),
            prober.state.wait_for(|s| *s == State::Success),
        )
        .await
        .expect("at once")
        .expect("alive");
    }

    #[tokio::test]
    async fn failure_message_updates_without_a_notification() {
        let (tx, mut rx) = watch::channel(State::Unknown);
        publish(&tx, State::Failure("a".to_owned()));
        assert!(rx.has_changed().expect("open"));
        rx.borrow_and_update();
        publish(&tx, State::Failure("b".to_owned()));
        assert!(!rx.has_changed().expect("open"));
        assert_eq!(*rx.borrow(), State::Failure("b".to_owned()));
        publish(&tx, State::Success);
        assert!(rx.has_changed().expect("open"));
    }
}
