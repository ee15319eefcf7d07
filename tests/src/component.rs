//! Harness for the control-plane components that campaign for leadership and serve
//! `/metrics` on `--port` (`concord-scheduler`, `concord-controller-manager`): the real
//! binary against a member, with its metrics port, its log, and the signals a test needs
//! (kill, pause, resume).
//!
//! A binary is `$CONCORD_SCHEDULER_BIN` / `$CONCORD_CONTROLLER_MANAGER_BIN`, or found next to
//! the `concord` binary ([`crate::concord_bin`]).

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::apiserver::http_get;
use crate::{concord_bin, kill_child, log_tail, read_log, signal, spawn_logged, wait_address_file};

/// Path of a component's binary under test: `$env`, or `name` next to `concord`.
pub fn component_bin(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    concord_bin()
        .parent()
        .expect("directory of the concord binary")
        .join(name)
}

/// Which component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `concord-scheduler` (election `kube-scheduler`).
    Scheduler,
    /// `concord-controller-manager` (election `kube-controller-manager`).
    ControllerManager,
}

impl Kind {
    /// The binary's file name.
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Scheduler => "concord-scheduler",
            Kind::ControllerManager => "concord-controller-manager",
        }
    }

    fn env(self) -> &'static str {
        match self {
            Kind::Scheduler => "CONCORD_SCHEDULER_BIN",
            Kind::ControllerManager => "CONCORD_CONTROLLER_MANAGER_BIN",
        }
    }

    /// The default election (and Lease) name.
    pub fn election(self) -> &'static str {
        match self {
            Kind::Scheduler => "kube-scheduler",
            Kind::ControllerManager => "kube-controller-manager",
        }
    }
}

/// A running `concord-scheduler`.
pub type Scheduler = Component;

/// A running component; killed when dropped.
pub struct Component {
    kind: Kind,
    child: Option<Child>,
    /// `127.0.0.1:port` of its `/metrics` and `/healthz`.
    pub metrics_addr: String,
    log_path: PathBuf,
    /// Its `--identity`.
    pub identity: String,
}

impl Component {
    /// Starts a scheduler on the member at `etcd` with `args` added, logging into `dir`, and
    /// waits (30 s) until its `/healthz` answers.
    pub fn start(etcd: &str, dir: &Path, identity: &str, args: &[&str]) -> Component {
        Component::start_kind(Kind::Scheduler, etcd, dir, identity, args)
    }

    /// Starts a controller-manager, as [`Component::start`] does a scheduler.
    pub fn controller_manager(etcd: &str, dir: &Path, identity: &str, args: &[&str]) -> Component {
        Component::start_kind(Kind::ControllerManager, etcd, dir, identity, args)
    }

    /// Starts a component of `kind`.
    pub fn start_kind(
        kind: Kind,
        etcd: &str,
        dir: &Path,
        identity: &str,
        args: &[&str],
    ) -> Component {
        let name = kind.binary();
        let bin = component_bin(name, kind.env());
        assert!(
            bin.is_file(),
            "{} not found: build it in the tests' profile \
             (`cargo build --profile ci --workspace --bins`) or set {}",
            bin.display(),
            kind.env()
        );
        let log_path = dir.join(format!("{name}-{identity}.log"));
        let addr_file = dir.join(format!("{name}-{identity}.addr"));
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = std::process::Command::new(&bin);
        cmd.arg(format!("--etcd-servers={etcd}"))
            .arg("--port=0")
            .arg(format!("--address-file={}", addr_file.display()))
            .arg(format!("--identity={identity}"))
            .args(args);
        let mut child =
            spawn_logged(&mut cmd, &log_path, name).unwrap_or_else(|e| panic!("start {name}: {e}"));
        let metrics_addr = wait_address_file(&addr_file, &mut child, &log_path, name);
        let mut s = Component {
            kind,
            child: Some(child),
            metrics_addr,
            log_path,
            identity: identity.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = s.try_wait() {
                panic!(
                    "{name} exited during start-up ({status}); log:\n{}",
                    s.log_tail()
                );
            }
            if matches!(
                http_get(&s.metrics_addr, "/healthz", Duration::from_secs(2)),
                Ok((200, _))
            ) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not healthy after 30 s; log:\n{}",
                s.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log(), 40)
    }

    /// Its `/metrics` text.
    pub fn metrics(&self) -> String {
        match http_get(&self.metrics_addr, "/metrics", Duration::from_secs(5)) {
            Ok((200, body)) => body,
            other => panic!("GET /metrics: {other:?}"),
        }
    }

    /// The value of one metric line (`name{labels}` exactly as printed), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics().lines().find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == series).then(|| v.parse().ok()).flatten()
        })
    }

    /// Whether its `leader_election_master_status` is 1.
    pub fn is_leader(&self) -> bool {
        self.metric(&format!(
            "leader_election_master_status{{name=\"{}\"}}",
            self.kind.election()
        )) == Some(1.0)
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// `SIGKILL`.
    pub fn kill(&mut self) {
        if let Some(c) = self.child.take() {
            kill_child(c);
        }
    }

    /// `SIGSTOP`.
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            assert!(signal(c, libc::SIGSTOP), "SIGSTOP {}", self.kind.binary());
        }
    }

    /// `SIGCONT`.
    pub fn resume(&self) {
        if let Some(c) = &self.child {
            assert!(signal(c, libc::SIGCONT), "SIGCONT {}", self.kind.binary());
        }
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            let _ = signal(&c, libc::SIGCONT);
            kill_child(c);
        }
    }
}
