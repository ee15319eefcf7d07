//! Running Debian's etcdctl and `concordctl` side by side, and a real etcd 3.4 as a reference
//! server: the harness of `tests/tests/concordctl.rs`.
//!
//! Both tools run with the same arguments, environment and input; their outputs are compared
//! byte for byte after [`normalize`] has replaced what differs between any two runs of etcdctl
//! itself (log timestamps, clientv3's random client IDs, measured durations).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, kill_child};

/// Path of the `concordctl` binary: `$CONCORDCTL_BIN`, or next to the `concord` under test.
pub fn concordctl_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CONCORDCTL_BIN") {
        return PathBuf::from(p);
    }
    crate::concord_bin().with_file_name("concordctl")
}

/// Which client runs a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Etcdctl,
    Concordctl,
}

/// What a run printed, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
}

impl Out {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// One invocation: arguments, input, extra environment, working directory, time limit.
#[derive(Clone, Debug, Default)]
pub struct Run<'a> {
    pub args: Vec<String>,
    pub stdin: Option<&'a [u8]>,
    pub env: Vec<(String, String)>,
    pub dir: Option<PathBuf>,
    /// After this long the process gets SIGINT (as a user's Ctrl-C); default 20 s.
    pub limit: Option<Duration>,
}

impl<'a> Run<'a> {
    pub fn new(args: &[&str]) -> Run<'a> {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn stdin(mut self, input: &'a [u8]) -> Self {
        self.stdin = Some(input);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn dir(mut self, d: &Path) -> Self {
        self.dir = Some(d.to_path_buf());
        self
    }

    pub fn limit(mut self, d: Duration) -> Self {
        self.limit = Some(d);
        self
    }
}

/// Runs `tool` with `run`'s arguments (and `ETCDCTL_API=3`, no other `ETCDCTL_*` from the test's
/// own environment).
pub fn run(tool: Tool, run: &Run<'_>) -> Out {
    let mut cmd = match tool {
        Tool::Etcdctl => Command::new("etcdctl"),
        Tool::Concordctl => Command::new(concordctl_bin()),
    };
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .args(&run.args)
        .stdin(if run.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &run.env {
        cmd.env(k, v);
    }
    if let Some(d) = &run.dir {
        cmd.current_dir(d);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {tool:?}: {e} (is it installed / built?)"));
    if let Some(input) = run.stdin {
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        // A thread, so that a tool that does not read all of it cannot block the test.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let limit = run.limit.unwrap_or(Duration::from_secs(20));
    wait_output(child, limit)
}

/// Waits for `child`, sending SIGINT after `limit` (and SIGKILL 10 s later).
fn wait_output(mut child: Child, limit: Duration) -> Out {
    use std::io::Read;
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let mut interrupted = false;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if !interrupted && start.elapsed() > limit {
            crate::signal(&child, libc::SIGINT);
            interrupted = true;
        }
        if start.elapsed() > limit + Duration::from_secs(10) {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Out {
        stdout: t_out.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned(),
        code: status.code(),
    }
}

/// Replaces, in `s`, every `key` followed by a value up to `end` with `key` + `with`.
fn replace_values(s: &str, key: &str, ends: &[char], with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = &rest[i + key.len()..];
        let end = rest.find(|c| ends.contains(&c)).unwrap_or(rest.len());
        out.push_str(with);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// What differs between two runs of etcdctl itself: log timestamps (`"ts"` and capnslog's
/// leading time), clientv3's random client IDs, and measured durations (`took`).
pub fn normalize(s: &str) -> String {
    let s = replace_values(s, "\"ts\":", &[','], "T");
    let s = replace_values(&s, "client-", &['/'], "ID");
    let s = replace_values(&s, "took = ", &['\n'], "D");
    let s = replace_values(&s, "\"took\":", &[',', '}'], "D");
    let s = replace_values(&s, "\"Took\" : ", &['\n'], "D");
    s.lines()
        .map(|l| {
            // capnslog: "2026-12-02 04:38:26.905317 W | pkg/flags: ..."
            let b = l.as_bytes();
            if b.len() > 30 && b[4] == b'-' && b[10] == b' ' && b[29] == b'|' {
                format!("TS{}", &l[26..])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Both outputs, normalized, for comparison; `subst` replaces server-specific values.
pub fn normalized(o: &Out, subst: &[(String, String)]) -> (String, String, Option<i32>) {
    let mut stdout = normalize(&String::from_utf8_lossy(&o.stdout));
    let mut stderr = normalize(&o.stderr);
    for (from, to) in subst {
        if !from.is_empty() {
            stdout = stdout.replace(from.as_str(), to);
            stderr = stderr.replace(from.as_str(), to);
        }
    }
    (stdout, stderr, o.code)
}

/// Asserts that etcdctl's and concordctl's outputs are the same (after [`normalize`]).
pub fn assert_same(what: &str, e: &Out, c: &Out) {
    assert_same_with(what, e, &[], c, &[]);
}

/// As [`assert_same`], each side with its own substitutions (e.g. its server's IDs).
pub fn assert_same_with(
    what: &str,
    e: &Out,
    e_subst: &[(String, String)],
    c: &Out,
    c_subst: &[(String, String)],
) {
    let (a, b) = (normalized(e, e_subst), normalized(c, c_subst));
    assert!(
        a == b,
        "{what}: etcdctl and concordctl differ\n--- etcdctl (exit {:?})\nstdout:\n{}\nstderr:\n{}\n--- concordctl (exit {:?})\nstdout:\n{}\nstderr:\n{}",
        a.2,
        a.0,
        a.1,
        b.2,
        b.0,
        b.1
    );
}

/// Runs the same command with both tools and asserts they agree; returns etcdctl's output.
pub fn compare(what: &str, r: &Run<'_>) -> Out {
    let e = run(Tool::Etcdctl, r);
    let c = run(Tool::Concordctl, r);
    assert_same(what, &e, &c);
    e
}

/// A real etcd (Debian's `/usr/bin/etcd`, 3.4) on loopback, with a fresh data dir.
///
/// Every instance advertises the same peer URL (it is alone in its cluster and never dials it),
/// so all of them get the same member and cluster IDs: two fresh instances answer the same
/// writes with byte-identical output.
pub struct Etcd {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    pub port: u16,
    log: PathBuf,
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let peer = free_port();
        let log = dir.path().join("etcd.log");
        let child = crate::spawn_logged(
            Command::new("etcd")
                .arg("--name=default")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{port}"))
                .arg(format!("--advertise-client-urls=http://127.0.0.1:{port}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                .arg("--initial-advertise-peer-urls=http://127.0.0.1:2380")
                .arg("--initial-cluster=default=http://127.0.0.1:2380")
                .arg("--listen-metrics-urls=")
                .env_remove("ETCDCTL_API"),
            &log,
            "etcd",
        )
        .expect("etcd is installed (apt-get install etcd-server)");
        let mut e = Etcd {
            child: Some(child),
            _dir: dir,
            port,
            log,
        };
        e.wait_ready();
        e
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = run(
                Tool::Etcdctl,
                &Run::new(&[
                    &format!("--endpoints={}", self.endpoint()),
                    "--command-timeout=1s",
                    "endpoint",
                    "health",
                ]),
            );
            if out.code == Some(0) {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(s)) = child.try_wait() {
                    panic!("etcd exited ({s}):\n{}", crate::read_log(&self.log));
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd not ready after 30s:\n{}",
                crate::read_log(&self.log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            kill_child(c);
        }
    }
}

/// The cluster and member IDs a server reports (from etcdctl's `endpoint status -w json`), each
/// in decimal and hex, mapped to placeholders: for comparing outputs of two different servers.
pub fn id_substitutions(endpoint: &str) -> Vec<(String, String)> {
    let out = run(
        Tool::Etcdctl,
        &Run::new(&[
            &format!("--endpoints={endpoint}"),
            "endpoint",
            "status",
            "-w",
            "json",
        ]),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status json: {e}: {out:?}"));
    let h = &v[0]["Status"]["header"];
    let cluster = h["cluster_id"].as_u64().unwrap_or(0);
    let member = h["member_id"].as_u64().unwrap_or(0);
    let mut subst = Vec::new();
    for (id, name) in [(cluster, "CLUSTER"), (member, "MEMBER")] {
        subst.push((id.to_string(), name.to_string()));
        subst.push((format!("{id:x}"), name.to_string()));
    }
    subst
}

/// The hex lease ID in `lease 694d7b0a3e3b7f0b granted with TTL(60s)`.
pub fn lease_id(grant_output: &str) -> String {
    grant_output
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no lease ID in {grant_output:?}"))
        .to_string()
}

/// Substitutions for a lease ID (hex, and decimal as JSON prints it).
pub fn lease_substitutions(hex: &str) -> Vec<(String, String)> {
    let dec = i64::from_str_radix(hex, 16).unwrap_or(0);
    vec![
        (hex.to_string(), "LEASE".into()),
        (dec.to_string(), "LEASE".into()),
        (format!("{dec:x}"), "LEASE".into()),
    ]
}
