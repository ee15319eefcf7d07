//! Harness for the control plane: one `concord` member, a `concord-apiserver` in front of it,
//! and the pinned `kubectl` (installed by `scripts/install-deps.sh --test`) to drive it.
//!
//! * [`ApiServer`]: the two processes on free ports, kubectl with an isolated configuration
//!   (no `~/.kube/config`, its own cache dir), and etcdctl on the member for store-level checks.
//! * [`KubectlLines`]: a long-running kubectl (`get -w`) whose output lines are read as they come.
//!
//! The apiserver binary is `$CONCORD_APISERVER_BIN`, or `concord-apiserver` next to the
//! `concord` binary ([`crate::concord_bin`]). kubectl is `$CONCORD_KUBECTL`, or the one that
//! `scripts/install-deps.sh --test` pins in `${CONCORD_TOOLS_DIR:-/var/cache/concord/tools}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{
    concord_bin, kill_child, log_tail, read_log, spawn_logged, wait_address_file, Concord,
};

/// The kubectl version `scripts/install-deps.sh --test` installs.
pub const KUBECTL_VERSION: &str = "1.36.4";

/// How long one kubectl invocation may run before it is killed.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of the pinned kubectl; panics (never skips) if it is not installed.
pub fn kubectl_bin() -> PathBuf {
    let path = match std::env::var_os("CONCORD_KUBECTL") {
        Some(p) => PathBuf::from(p),
        None => {
            let tools = std::env::var_os("CONCORD_TOOLS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/cache/concord/tools"));
            tools.join(format!("kubectl-{KUBECTL_VERSION}/bin/kubectl"))
        }
    };
    assert!(
        path.is_file(),
        "kubectl v{KUBECTL_VERSION} not found at {}: run scripts/install-deps.sh --test \
         (or point CONCORD_KUBECTL at a kubectl binary)",
        path.display()
    );
    path
}

/// Path of the `concord-apiserver` binary under test.
pub fn apiserver_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CONCORD_APISERVER_BIN") {
        return PathBuf::from(p);
    }
    concord_bin()
        .parent()
        .expect("directory of the concord binary")
        .join("concord-apiserver")
}

/// Runs `cmd` with `stdin` fed to it, collecting stdout and stderr, killing it after `timeout`
/// (then `None`). Pipes are drained by threads, so large outputs or inputs cannot wedge it.
pub fn run_bounded(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {:?}: {e}", cmd.get_program()));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            // The command may exit without reading everything (e.g. on an error): ignore EPIPE.
            let _ = pipe.write_all(&data);
        })
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                kill_child(child);
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if let Some(w) = writer {
        let _ = w.join();
    }
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

/// `GET http://{addr}{path}` over a plain TCP connection: the status code and body.
pub fn http_get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, None, timeout)
}

/// One HTTP/1.1 request over a plain TCP connection, with a body of the given Content-Type
/// (`(content_type, body)`): the status code and the response body.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let sock: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n");
    if let Some((content_type, b)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    if let Some((_, b)) = body {
        s.write_all(b)?;
    }
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP response: {text:?}"),
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// What etcdctl shows of the `/registry` prefix: the store revision and every key with its
/// mod revision. Two equal snapshots mean nothing under `/registry` was written in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSnapshot {
    pub revision: i64,
    /// (base64 key as etcdctl prints it, mod_revision), in key order.
    pub keys: Vec<(String, i64)>,
}

/// A `concord` member with a `concord-apiserver` on it, and kubectl pointed at the apiserver.
pub struct ApiServer {
    /// The member the apiserver stores its objects in (use its etcdctl for store checks).
    pub etcd: Concord,
    child: Option<Child>,
    /// `127.0.0.1:port` the apiserver listens on.
    pub addr: String,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    kubeconfig: PathBuf,
}

impl ApiServer {
    /// Starts a member and an apiserver on it and waits (30 s) until `/healthz` answers 200.
    pub fn start() -> ApiServer {
        // Fail fast (before starting anything) if kubectl is not installed.
        kubectl_bin();
        let bin = apiserver_bin();
        assert!(
            bin.is_file(),
            "{} not found: build it in the tests' profile \
             (`cargo build --profile ci --workspace --bins`) or set CONCORD_APISERVER_BIN",
            bin.display()
        );
        let etcd = Concord::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let log_path = dir.path().join("apiserver.log");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, "").expect("write empty kubeconfig");
        let addr_file = dir.path().join("apiserver.addr");
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--etcd-servers={}", etcd.endpoint()))
            .arg("--listen-address=127.0.0.1:0")
            .arg(format!("--listen-address-file={}", addr_file.display()));
        let mut child =
            spawn_logged(&mut cmd, &log_path, "concord-apiserver").expect("start apiserver");
        let addr = wait_address_file(&addr_file, &mut child, &log_path, "concord-apiserver");
        let mut s = ApiServer {
            etcd,
            child: Some(child),
            addr,
            dir,
            log_path,
            kubeconfig,
        };
        s.wait_healthy(Duration::from_secs(30));
        s
    }

    fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "concord-apiserver exited during start-up ({status}); log:\n{}",
                    self.log_tail()
                );
            }
            let last = match http_get(&self.addr, "/healthz", Duration::from_secs(2)) {
                Ok((200, _)) => return,
                Ok((code, body)) => format!("HTTP {code}: {body}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!(
                    "concord-apiserver at {} not healthy after {timeout:?} (last: {last}); log:\n{}",
                    self.addr,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The harness's scratch directory (for manifests, editor scripts and such).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the apiserver logged so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The last 40 lines of the apiserver's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log(), 40)
    }

    /// A kubectl command against this apiserver, isolated from the user's configuration.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_bin());
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("KUBE_EDITOR")
            .env_remove("EDITOR")
            .env_remove("KUBECTL_KUBERC")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .arg(format!("--server={}", self.url()))
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("kube-cache").display()
            ))
            .args(args);
        cmd
    }

    /// Runs kubectl (killed after [`KUBECTL_TIMEOUT`]), with `stdin` if given.
    pub fn kubectl_with(&self, mut cmd: Command, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run_bounded(&mut cmd, stdin.map(<[u8]>::to_vec), KUBECTL_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "kubectl {args:?} did not finish within {KUBECTL_TIMEOUT:?}; apiserver log:\n{}",
                self.log_tail()
            )
        })
    }

    /// Runs kubectl with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(self.kubectl_command(args), args, None)
    }

    /// Runs kubectl with `input` on its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        self.kubectl_with(self.kubectl_command(args), args, Some(input))
    }

    /// A description of a kubectl run, for failure messages.
    pub fn describe(&self, args: &[&str], out: &Output) -> String {
        format!(
            "kubectl {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- apiserver log (tail) ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        )
    }

    /// Asserts that a kubectl run succeeded and returns its stdout.
    pub fn expect_ok(&self, args: &[&str], out: Output) -> String {
        assert!(
            out.status.success(),
            "expected success:\n{}",
            self.describe(args, &out)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Asserts that a kubectl run failed and returns its stderr.
    pub fn expect_err(&self, args: &[&str], out: Output) -> String {
        assert!(
            !out.status.success(),
            "expected failure:\n{}",
            self.describe(args, &out)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    /// Runs kubectl, asserts success, returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.expect_ok(args, self.kubectl(args))
    }

    /// Runs kubectl, asserts failure, returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        self.expect_err(args, self.kubectl(args))
    }

    /// `kubectl apply -f -` with `yaml` on stdin (plus `extra` flags); asserts success.
    pub fn apply_stdin(&self, yaml: &str, extra: &[&str]) -> String {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.expect_ok(&args, self.kubectl_stdin(&args, yaml.as_bytes()))
    }

    /// `kubectl apply -f -` with `yaml` on stdin; asserts failure and returns stderr.
    pub fn apply_stdin_err(&self, yaml: &str) -> String {
        let args = ["apply", "-f", "-"];
        self.expect_err(&args, self.kubectl_stdin(&args, yaml.as_bytes()))
    }

    /// Runs etcdctl on the member; asserts success, returns stdout.
    pub fn etcdctl_ok(&self, args: &[&str]) -> String {
        self.etcd.etcdctl_ok(args)
    }

    /// Every key under `prefix` (etcdctl `--keys-only`), in key order.
    pub fn store_keys(&self, prefix: &str) -> Vec<String> {
        self.etcdctl_ok(&["get", "--prefix", prefix, "--keys-only"])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Whether `key` exists in the store.
    pub fn store_has(&self, key: &str) -> bool {
        !self
            .etcdctl_ok(&["get", key, "--keys-only"])
            .trim()
            .is_empty()
    }

    /// The mod revision of `key` (etcdctl `-w json`), `None` if it does not exist.
    pub fn mod_revision(&self, key: &str) -> Option<i64> {
        let out = self.etcdctl_ok(&["get", key, "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("etcdctl json");
        v["kvs"]
            .get(0)
            .map(|kv| kv["mod_revision"].as_i64().expect("mod_revision"))
    }

    /// The revision and every key (with its mod revision) under `/registry`.
    pub fn store_snapshot(&self) -> StoreSnapshot {
        let out = self.etcdctl_ok(&["get", "--prefix", "/registry", "--keys-only", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("etcdctl json");
        let revision = v["header"]["revision"].as_i64().expect("header.revision");
        let keys = v["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| {
                        (
                            kv["key"].as_str().unwrap_or_default().to_string(),
                            kv["mod_revision"].as_i64().unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        StoreSnapshot { revision, keys }
    }

    /// Starts another `concord-apiserver` on the same member (the API server keeps no state,
    /// so several serve one cluster) and waits until it is healthy.
    pub fn start_peer(&self) -> PeerApiServer {
        let n = PEERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log_path = self.dir.path().join(format!("apiserver-peer-{n}.log"));
        let addr_file = self.dir.path().join(format!("apiserver-peer-{n}.addr"));
        let mut cmd = Command::new(apiserver_bin());
        cmd.arg(format!("--etcd-servers={}", self.etcd.endpoint()))
            .arg("--listen-address=127.0.0.1:0")
            .arg(format!("--listen-address-file={}", addr_file.display()));
        let mut child = spawn_logged(&mut cmd, &log_path, "concord-apiserver (peer)")
            .expect("start a second apiserver");
        let addr = wait_address_file(&addr_file, &mut child, &log_path, "the second apiserver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(
            http_get(&addr, "/healthz", Duration::from_secs(2)),
            Ok((200, _))
        ) {
            assert!(
                Instant::now() < deadline,
                "the second apiserver is not healthy; log:\n{}",
                log_tail(&read_log(&log_path), 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        PeerApiServer {
            child: Some(child),
            addr,
        }
    }

    /// kubectl against another API server (`peer`), with this harness's isolation; asserts
    /// success and returns stdout.
    pub fn kubectl_at_ok(&self, peer: &PeerApiServer, args: &[&str]) -> String {
        let mut cmd = self.kubectl_command(&[]);
        cmd.arg(format!("--server=http://{}", peer.addr)).args(args);
        let out = self.kubectl_with(cmd, args, None);
        self.expect_ok(args, out)
    }

    /// Starts a long-running kubectl (e.g. `get -w`) whose stdout lines are collected.
    pub fn kubectl_lines(&self, args: &[&str]) -> KubectlLines {
        KubectlLines::spawn(self.kubectl_command(args))
    }
}

/// Numbers the second API servers' files.
static PEERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A second `concord-apiserver` on a harness's member; killed when dropped.
pub struct PeerApiServer {
    child: Option<Child>,
    /// `127.0.0.1:port` it listens on.
    pub addr: String,
}

impl Drop for PeerApiServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_child(child);
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill_child(child);
        }
        // `etcd` (a Concord) kills its member when dropped.
    }
}

/// A long-running kubectl whose stdout lines a thread collects as they come, and whose stderr
/// is kept for failure messages. Killed when dropped.
pub struct KubectlLines {
    child: Child,
    rx: std::sync::mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    seen: Vec<String>,
}

impl KubectlLines {
    fn spawn(mut cmd: Command) -> KubectlLines {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        KubectlLines {
            child,
            rx,
            stderr,
            seen: Vec::new(),
        }
    }

    /// The next line if one comes within `wait`.
    pub fn line_within(&mut self, wait: Duration) -> Option<String> {
        let line = self.rx.recv_timeout(wait).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Reads lines until one satisfies `pred` (returned), or panics after `wait` with every
    /// line seen so far and kubectl's stderr.
    pub fn until(&mut self, what: &str, wait: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.line_within(left) {
                Some(line) if pred(&line) => return line,
                Some(_) => {}
                None => panic!(
                    "no line with {what} within {wait:?}; lines so far:\n{}\nstderr:\n{}",
                    self.seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// What kubectl wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for KubectlLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
