//! Harness for `concord-agent`: the real binary as a node agent (pods run as processes under
//! its shims), with its own root dir, pod range and log-server port, and the signals a test
//! needs. Dropping it kills the agent *and* every pod process it started (an agent that stops
//! leaves its pods running, as a kubelet does; a test must not). Drop it before the directory
//! its root dir is in.
//!
//! The binary is `$CONCORD_AGENT_BIN`, or `concord-agent` next to `concord`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use crate::component::component_bin;
use crate::{kill_child, log_tail, read_log, signal, spawn_logged, wait_address_file};

/// Path of the `concord-agent` binary under test.
pub fn agent_bin() -> PathBuf {
    component_bin("concord-agent", "CONCORD_AGENT_BIN")
}

/// A running `concord-agent`.
pub struct Agent {
    child: Option<Child>,
    /// The node's name.
    pub node_name: String,
    /// Its `--root-dir`.
    pub root_dir: PathBuf,
    /// Its `--image-dir`.
    pub image_dir: PathBuf,
    /// `127.0.0.1:port` of its log server.
    pub log_addr: String,
    etcd: String,
    args: Vec<String>,
    log_path: PathBuf,
    starts: u32,
}

impl Agent {
    /// Starts an agent for node `node_name` on the member at `etcd`, keeping its state under
    /// `dir/agent-NAME` and its images in `dir/images`, with `args` added (e.g.
    /// `--pod-cidr=127.1.3.0/24`); waits until its log server's address is written.
    pub fn start(etcd: &str, dir: &Path, node_name: &str, args: &[&str]) -> Agent {
        let bin = agent_bin();
        assert!(
            bin.is_file(),
            "{} not found: build it in the tests' profile \
             (`cargo build --profile ci --workspace --bins`) or set CONCORD_AGENT_BIN",
            bin.display()
        );
        let mut a = Agent {
            child: None,
            node_name: node_name.to_string(),
            root_dir: dir.join(format!("agent-{node_name}")),
            image_dir: dir.join("images"),
            log_addr: String::new(),
            etcd: etcd.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log_path: dir.join(format!("agent-{node_name}.log")),
            starts: 0,
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let addr_file = self.root_dir.with_extension("addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(agent_bin());
        cmd.arg(format!("--etcd-servers={}", self.etcd))
            .arg(format!("--node-name={}", self.node_name))
            .arg(format!("--root-dir={}", self.root_dir.display()))
            .arg(format!("--image-dir={}", self.image_dir.display()))
            .arg("--port=0")
            .arg(format!("--address-file={}", addr_file.display()))
            .arg("--cgroup-root=concord-test")
            .args(&self.args);
        self.starts += 1;
        let banner = format!("concord-agent {} (start {})", self.node_name, self.starts);
        let mut child = spawn_logged(&mut cmd, &self.log_path, &banner)
            .unwrap_or_else(|e| panic!("start concord-agent: {e}"));
        self.log_addr = wait_address_file(&addr_file, &mut child, &self.log_path, "concord-agent");
        self.child = Some(child);
    }

    /// Starts it again with the same flags (after [`Agent::kill`] or [`Agent::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the agent is still running");
        self.spawn();
    }

    /// Runs `concord-agent ARGS` with this agent's `--image-dir` and `--root-dir` (e.g.
    /// `image import …`), returning its output.
    pub fn command(&self, args: &[&str]) -> Output {
        Command::new(agent_bin())
            .arg(format!("--image-dir={}", self.image_dir.display()))
            .arg(format!("--root-dir={}", self.root_dir.display()))
            .arg("--cgroup-root=concord-test")
            .args(args)
            .output()
            .expect("run concord-agent")
    }

    /// `concord-agent image import REFERENCE ARGS…`, which must succeed.
    pub fn import_image(&self, reference: &str, args: &[&str]) {
        let mut all = vec!["image", "import", reference];
        all.extend_from_slice(args);
        let out = self.command(&all);
        assert!(
            out.status.success(),
            "image import {reference}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Everything it logged so far (all its starts).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log(), 40)
    }

    /// Its pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// `SIGKILL`s the agent (its pods keep running).
    pub fn kill(&mut self) {
        if let Some(c) = self.child.take() {
            kill_child(c);
        }
    }

    /// `SIGTERM`s the agent and waits (10 s) for it to exit (its pods keep running).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            kill_child(c);
        }
    }

    /// `SIGSTOP`s the agent (its node stops renewing its Lease).
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            signal(c, libc::SIGSTOP);
        }
    }

    /// `SIGCONT`s a paused agent.
    pub fn resume(&self) {
        if let Some(c) = &self.child {
            signal(c, libc::SIGCONT);
        }
    }

    /// Kills every pod process this agent started (`concord-agent kill-pods`).
    pub fn kill_pods(&self) {
        let _ = self.command(&["kill-pods"]);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        self.kill_pods();
    }
}
