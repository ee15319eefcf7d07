//! Test harness for the real `concord` binary on loopback.
//!
//! * [`Concord`]: one member with a fresh data dir, on ports the system picks (port 0, read
//!   back from `--listen-addresses-file`, and kept across restarts); kill, restart, etcdctl.
//! * [`Cluster`] (module [`cluster`]): several member processes, each on its own loopback
//!   address with a TCP [`Proxy`] in front of its peer port, to cut or blackhole links.
//! * [`nemesis`]: faults on a running cluster (kill -9, SIGSTOP pauses, partitions of several
//!   shapes, blackholes, membership changes), each recorded with its time span.
//! * [`workload`]: concurrent clients that record every operation and watch stream as a
//!   [`concord_checker::History`].
//! * [`robustness`]: the runner behind the `concord-robustness` binary: a fresh cluster,
//!   workload and nemesis for a while, then the history checker.
//!
//! The binary is `$CONCORD_BIN`, or `concord` next to the test executable's `deps/` directory
//! (build it first, in the tests' profile: `cargo build --profile ci --workspace --bins`).

pub mod agent;
pub mod apiserver;
pub mod cluster;
pub mod component;
pub mod controlplane;
pub mod ctl;
pub mod nemesis;
pub mod proxy;
pub mod rng;
pub mod robustness;
/// The scheduler's harness, by its old name.
pub use component as scheduler;
pub mod workload;

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use concord_proto::etcdserverpb as pb;

pub use apiserver::ApiServer;
pub use cluster::{Cluster, MemberProc};
pub use proxy::{LinkRule, Proxy};

/// Calls `probe` every `every` until it answers `Ok`, and returns that. Past `timeout` it
/// panics with `what`, the last `Err` (the state last seen) and `logs()` (the log tail of the
/// component that should have got there).
pub fn wait_until<T>(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
    logs: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not reached after {timeout:?}; last seen: {last}\n{}",
            logs()
        );
        std::thread::sleep(every);
    }
}

/// Path of the `concord` binary under test.
pub fn concord_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CONCORD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/concord; a binary of this crate sits
    // in target/<profile>/ itself.
    let dir = exe.parent().expect("target dir");
    if dir.join("concord").is_file() {
        return dir.join("concord");
    }
    dir.parent().expect("target dir").join("concord")
}

/// Path of the `concord-failpoints` binary (`concord` with failpoints, built with
/// `--features concord-server/failpoints`): `$CONCORD_FAILPOINTS_BIN`, or beside
/// [`concord_bin`].
pub fn failpoints_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CONCORD_FAILPOINTS_BIN") {
        return PathBuf::from(p);
    }
    concord_bin().with_file_name("concord-failpoints")
}

/// A port on 127.0.0.1 nobody listens on right now.
pub fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// Ports handed out by [`free_port_on`]: below Linux's ephemeral range (32768–60999), so an
/// outgoing connection's source port (which the kernel picks from that range) can never take a
/// port between the moment a test picks it and the moment a member binds it. That race failed
/// CI once ("Address already in use" binding a proxy).
const PORT_RANGE: std::ops::Range<u16> = 20000..32000;

/// A port on `ip` nobody listens on right now, never the same one twice in this process
/// (until the range wraps). The start is random per process, so two test binaries running at
/// once rarely meet, and a port still held by anyone is skipped.
pub fn free_port_on(ip: Ipv4Addr) -> u16 {
    let listener = bind_free_on(ip);
    listener.local_addr().expect("local addr").port()
}

/// A listener on `ip`, on a port from the harness's range that this process has not handed out
/// before. For a socket the harness itself serves (a proxy), this leaves no window between
/// picking a port and binding it: CI once failed binding a proxy to a port that had been free
/// a moment before.
pub fn bind_free_on(ip: Ipv4Addr) -> TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id().wrapping_mul(2_654_435_761);
        let _ = NEXT.compare_exchange(u32::MAX, seed % span, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = PORT_RANGE.start + n as u16;
        if let Ok(listener) = TcpListener::bind((ip, port)) {
            return listener;
        }
    }
    panic!("no free port on {ip} in {PORT_RANGE:?}");
}

/// What a member writes to its `--listen-addresses-file` once every listener is bound: the
/// addresses of its client and peer listeners, in the order of its listen URLs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct ListenAddresses {
    pub client: Vec<SocketAddr>,
    pub peer: Vec<SocketAddr>,
}

impl ListenAddresses {
    /// The first client listener's port.
    pub fn client_port(&self) -> u16 {
        self.client.first().map_or(0, SocketAddr::port)
    }

    /// The first peer listener's port.
    pub fn peer_port(&self) -> u16 {
        self.peer.first().map_or(0, SocketAddr::port)
    }
}

/// Reads a `--listen-addresses-file`; `None` while it does not exist. The member writes it
/// through a rename, so a file that exists is complete.
pub fn read_listen_addresses(path: &Path) -> Result<Option<ListenAddresses>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Waits (up to `timeout`) for `child` to write its `--listen-addresses-file` at `path`; fails
/// if the process exits first. Remove the file before starting the process.
pub fn wait_listen_addresses(
    path: &Path,
    child: &mut Child,
    timeout: Duration,
) -> Result<ListenAddresses> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(a) = read_listen_addresses(path)? {
            return Ok(a);
        }
        if let Some(status) = child.try_wait()? {
            bail!("exited before it listened ({status})");
        }
        if Instant::now() > deadline {
            bail!("no {} after {timeout:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes a file if it exists.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// Starts `cmd` with its stderr appended to `log_path` (after a line `===== {banner} =====`)
/// and its stdout discarded.
pub fn spawn_logged(cmd: &mut Command, log_path: &Path, banner: &str) -> Result<Child> {
    let mut log = File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    writeln!(log, "===== {banner} =====")?;
    cmd.stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("spawning {:?}", cmd.get_program()))
}

/// Waits (30 s) for a child started with port 0 to write the address it bound to `path`
/// (the API server's `--listen-address-file`, the scheduler's `--address-file`), and returns
/// it. Panics with the log's tail if the child exits first or the file never appears: no port
/// is probed and released, so no other process can take it in between.
pub fn wait_address_file(path: &Path, child: &mut Child, log_path: &Path, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(addr) = std::fs::read_to_string(path) {
            if !addr.trim().is_empty() {
                return addr.trim().to_string();
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited during start-up ({status}); log:\n{}",
                log_tail(&read_log(log_path), 40)
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} wrote no address to {} in 30 s; log:\n{}",
            path.display(),
            log_tail(&read_log(log_path), 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILLs a child and reaps it.
pub fn kill_child(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends a signal to a child (kill(2)); false if it could not be sent.
pub fn signal(child: &Child, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) on our own child's pid has no memory-safety effect.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) == 0 }
}

/// SIGTERMs a child (after a SIGCONT, in case it is stopped) and waits up to `timeout` for it
/// to exit, then SIGKILLs it. Returns whether it exited by itself with success.
pub fn terminate(mut child: Child, timeout: Duration) -> bool {
    signal(&child, libc::SIGCONT);
    signal(&child, libc::SIGTERM);
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                kill_child(child);
                return false;
            }
        }
    }
}

/// Everything in a log file so far (empty if it cannot be read).
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The last `n` lines of `log`.
pub fn log_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// An etcdctl (API v3) command against `endpoints` (comma-separated, as etcdctl takes them).
pub fn etcdctl_command(endpoints: &str) -> Command {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"));
    cmd
}

/// A current-thread runtime, for blocking on one call at a time.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One running (or stopped) `concord` member.
///
/// Its first start asks for port 0 on both URLs and learns the ports the system picked from
/// `--listen-addresses-file` (no window in which another process can take a port picked for
/// it). Restarts reuse those ports, as an etcd member restarts on its known URLs.
pub struct Concord {
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    /// The client port; 0 until the first start has bound it.
    pub port: u16,
    /// The peer port; 0 until the first start has bound it.
    pub peer_port: u16,
    extra_args: Vec<String>,
    log_path: PathBuf,
    /// The member's `--listen-addresses-file`.
    pub addresses_path: PathBuf,
    starts: u32,
}

impl Concord {
    /// Starts a member with a fresh data dir and waits until it serves.
    pub fn start() -> Concord {
        Self::start_with(&[])
    }

    /// Starts a member with extra flags.
    pub fn start_with(extra: &[&str]) -> Concord {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("concord.log");
        let addresses_path = dir.path().join("listen-addresses.json");
        let mut c = Concord {
            child: None,
            data_dir,
            port: 0,
            peer_port: 0,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            log_path,
            addresses_path,
            starts: 0,
            _dir: Some(dir),
        };
        c.spawn().expect("start concord");
        c.wait_ready()
            .unwrap_or_else(|e| panic!("concord did not become ready: {e:#}\n{}", c.log()));
        c
    }

    /// The client URL (port 0 until the first start has bound it).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The peer URL (port 0 until the first start has bound it).
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(concord_bin());
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen-client-urls")
            .arg(self.endpoint())
            .arg("--advertise-client-urls")
            .arg(self.endpoint())
            .arg("--listen-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(self.peer_url())
            .arg("--listen-addresses-file")
            .arg(&self.addresses_path)
            .args(&self.extra_args);
        // A test that passes its own --log-level gets it (RUST_LOG would take precedence).
        if !self.extra_args.iter().any(|a| a.starts_with("--log-level")) {
            cmd.env("RUST_LOG", "info");
        } else {
            cmd.env_remove("RUST_LOG");
        }
        cmd
    }

    /// Starts the process without waiting for it to serve.
    pub fn spawn(&mut self) -> Result<()> {
        assert!(self.child.is_none(), "already running");
        self.starts += 1;
        let banner = format!("start #{}", self.starts);
        remove_if_exists(&self.addresses_path)?;
        let child = spawn_logged(&mut self.command(), &self.log_path, &banner)?;
        self.child = Some(child);
        Ok(())
    }

    /// After a start with port 0 (the first one), waits until the member has bound its
    /// listeners and takes its ports from `--listen-addresses-file`. Does nothing once the
    /// ports are known.
    pub fn learn_ports(&mut self) -> Result<()> {
        if self.port != 0 && self.peer_port != 0 {
            return Ok(());
        }
        let Some(child) = self.child.as_mut() else {
            bail!("not running");
        };
        let a = match wait_listen_addresses(&self.addresses_path, child, Duration::from_secs(60)) {
            Ok(a) => a,
            Err(e) => {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    self.child = None;
                }
                return Err(e);
            }
        };
        self.port = a.client_port();
        self.peer_port = a.peer_port();
        Ok(())
    }

    /// Runs the binary on the data dir in the foreground and returns its output: for start-ups
    /// that are expected to fail.
    pub fn run_to_exit(&self, timeout: Duration) -> Result<Output> {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + timeout;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(child.wait_with_output()?);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output()?;
                bail!(
                    "concord did not exit within {timeout:?}; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the member answers a linearizable read (learning its ports first, after
    /// its first start).
    pub fn wait_ready(&mut self) -> Result<()> {
        self.learn_ports()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let rt = rt();
        let endpoint = self.endpoint();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("concord exited during start-up: {status}");
                }
            }
            let ok = rt.block_on(async {
                let Ok(mut kv) = pb::kv_client::KvClient::connect(endpoint.clone()).await else {
                    return false;
                };
                let req = pb::RangeRequest {
                    key: b"health".to_vec(),
                    ..Default::default()
                };
                tokio::time::timeout(Duration::from_secs(2), kv.range(req))
                    .await
                    .is_ok_and(|r| r.is_ok())
            });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("not serving after 60s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILLs the process.
    pub fn kill9(&mut self) {
        if let Some(child) = self.child.take() {
            kill_child(child);
        }
    }

    /// SIGTERMs the process and waits for it to exit; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(child) => terminate(child, Duration::from_secs(30)),
            None => true,
        }
    }

    /// Starts the process again on the same data dir and waits until it serves.
    pub fn restart(&mut self) {
        self.spawn().expect("restart concord");
        self.wait_ready()
            .unwrap_or_else(|e| panic!("concord did not come back: {e:#}\n{}", self.log()));
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The WAL segment files, in order.
    pub fn wal_segments(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.data_dir.join("wal"))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "wal"));
        files.sort();
        files
    }

    /// Runs etcdctl (API v3) against this member.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.etcdctl_stdin(args, None)
    }

    /// Runs etcdctl with `input` on its standard input.
    pub fn etcdctl_stdin(&self, args: &[&str], input: Option<&str>) -> Output {
        self.etcdctl_via(&self.endpoint(), args, input)
    }

    /// Runs etcdctl against `endpoint` as written (e.g. without the `http://` scheme).
    pub fn etcdctl_via(&self, endpoint: &str, args: &[&str], input: Option<&str>) -> Output {
        let mut cmd = etcdctl_command(endpoint);
        cmd.arg("--dial-timeout=5s")
            .arg("--command-timeout=20s")
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("etcdctl is installed (apt-get install etcd-client)");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(input.as_bytes())
                .expect("write etcdctl stdin");
        }
        child.wait_with_output().expect("etcdctl output")
    }

    /// Runs etcdctl, asserts it succeeded, and returns its standard output.
    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args);
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// A raw gRPC KV client (for asserting exact status codes and messages).
    pub async fn kv(&self) -> pb::kv_client::KvClient<tonic::transport::Channel> {
        pb::kv_client::KvClient::connect(self.endpoint())
            .await
            .expect("connect")
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }
}

impl Drop for Concord {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A long-running etcdctl (`watch`, `lock`, `elect`) whose output lines are collected by a
/// thread as they come. Killed when dropped.
pub struct EtcdctlLines {
    pub child: Child,
    rx: std::sync::mpsc::Receiver<String>,
}

impl EtcdctlLines {
    pub fn spawn(endpoint: &str, args: &[&str], stdin: bool) -> EtcdctlLines {
        use std::io::BufRead;
        let mut child = etcdctl_command(endpoint)
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl is installed (apt-get install etcd-client)");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        EtcdctlLines { child, rx }
    }

    /// The next `n` lines; panics if they do not come within 15 s each.
    pub fn take(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.rx
                    .recv_timeout(Duration::from_secs(15))
                    .expect("an etcdctl line in time")
            })
            .collect()
    }

    /// The next line if one comes within `wait`.
    pub fn line_within(&self, wait: Duration) -> Option<String> {
        self.rx.recv_timeout(wait).ok()
    }

    /// Asks etcdctl to stop as a user would (SIGTERM), and waits for it.
    pub fn terminate(&mut self) {
        signal(&self.child, libc::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for EtcdctlLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A two-worker runtime: for tests whose spawned tasks must run while the test thread blocks.
pub fn rt_multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
