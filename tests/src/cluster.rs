//! Multi-process clusters of the real `concord` binary on loopback, with a TCP [`Proxy`] in
//! front of every member's peer port to cut or blackhole links.
//!
//! Member `i` gets its own loopback address (`127.A.B.(10+i)`, A and B random per cluster so
//! concurrent test binaries never meet). Members bind their outgoing peer connections to that
//! address, so the proxy in front of a member knows which member connects and can refuse it.
//! Clients talk to members directly (client ports are not proxied).
//!
//! Client and peer ports are never probed and released before a member binds them. The proxy
//! in front of a member binds its own port when the slot is allocated (that address is the
//! advertised peer URL) and starts with no target: it closes every connection (peers retry).
//! A member's first start asks for client and peer port 0; the harness reads both back from
//! its `--listen-addresses-file` before the spawn returns, and then points the proxy at the
//! peer port. Restarts reuse both ports. A member removed and added back
//! ([`Cluster::readd_member`]) keeps its client port but starts on peer port 0 again, and the
//! proxy is re-pointed.
//! (The failpoint control port of `concord-failpoints` members is still picked by the harness.)
//!
//! Members run with a 50 ms heartbeat and a 500 ms election timeout.
//!
//! A cluster started with [`Cluster::try_start_failpoints`] runs `concord-failpoints` instead
//! (`concord_server::failpoints`): each member gets a control port, and
//! [`Cluster::failpoint`] and [`Cluster::power_loss`] reach it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use concord_proto::etcdserverpb as pb;

use crate::apiserver::http_request;
use crate::{
    concord_bin, etcdctl_command, failpoints_bin, kill_child, log_tail, read_log, remove_if_exists,
    rt, signal, spawn_logged, terminate, wait_listen_addresses, Proxy,
};

/// Every key and value of a member, in key order.
pub type Kvs = Vec<(Vec<u8>, Vec<u8>)>;

/// The election timeout members run with.
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(500);

/// One member slot: its addresses, proxy, data dir, log and process (if running).
pub struct MemberProc {
    pub name: String,
    pub ip: Ipv4Addr,
    /// 0 until the member's first start has bound it ([`Cluster::try_spawn`] waits for that).
    pub client_port: u16,
    /// The member's own peer port behind the proxy: 0 until its first start (or its first
    /// start after [`Cluster::readd_member`]) has bound it; the proxy closes connections
    /// until then.
    pub peer_port: u16,
    pub proxy: Proxy,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    /// The member's `--listen-addresses-file`.
    pub addresses_path: PathBuf,
    pub child: Option<Child>,
    pub extra: Vec<String>,
    /// Stopped with SIGSTOP (and not continued yet).
    pub paused: bool,
    /// Started with `--initial-cluster-state existing` (it joined after `member add`).
    pub joined_existing: bool,
    /// How many times this slot was removed from the cluster and added back as a new member.
    pub rejoins: u32,
    /// The failpoint control port (`concord-failpoints` only): 0 until the member's first start
    /// has bound it and written it to `control_path`; later starts ask for it again.
    pub control_port: u16,
    /// Where `concord-failpoints` writes its control address (`CONCORD_FAILPOINTS_ADDR_FILE`).
    pub control_path: PathBuf,
    /// Failpoints the next start arms from its first instruction (`name=actions;...`), taken
    /// by that start.
    pub arm_at_start: Option<String>,
}

impl MemberProc {
    /// The client URL (`http://ip:port`).
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.ip, self.client_port)
    }

    /// The advertised peer URL: the proxy's address.
    pub fn peer_url(&self) -> String {
        format!("http://{}", self.proxy.addr)
    }

    /// Everything the member's processes logged so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Whether a process is running and not paused.
    pub fn is_live(&self) -> bool {
        self.child.is_some() && !self.paused
    }
}

/// A cluster of member processes.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<MemberProc>,
    pub token: String,
    base: [u8; 2],
    /// Members run `concord-failpoints`.
    pub failpoints: bool,
}

fn random_base() -> [u8; 2] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (std::process::id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    [1 + (nanos % 250) as u8, ((nanos >> 8) % 250) as u8]
}

/// Runs a command with a wall-clock bound; `None` if it had to be killed.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().ok(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                kill_child(child);
                return None;
            }
        }
    }
}

impl Cluster {
    /// Starts `n` members of a new cluster and waits for a leader; panics if it cannot.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        match Self::try_start(n, extra) {
            Ok(c) => c,
            Err(e) => panic!("{e:#}"),
        }
    }

    /// Starts `n` members of a new cluster and waits (30 s) for a leader.
    pub fn try_start(n: usize, extra: &[&str]) -> Result<Cluster> {
        Self::try_start_prepared(n, extra, &mut |_| Ok(()))
    }

    /// Like [`Cluster::try_start`], with `concord-failpoints` members.
    pub fn try_start_failpoints(n: usize, extra: &[&str]) -> Result<Cluster> {
        Self::start_inner(n, extra, true, &mut |_| Ok(()))
    }

    /// Like [`Cluster::try_start`], and runs `prepare` once every member slot (name, peer URL,
    /// data dir) is allocated and before any process starts: e.g. to restore data dirs from a
    /// backup.
    pub fn try_start_prepared(
        n: usize,
        extra: &[&str],
        prepare: &mut dyn FnMut(&Cluster) -> Result<()>,
    ) -> Result<Cluster> {
        Self::start_inner(n, extra, false, prepare)
    }

    fn start_inner(
        n: usize,
        extra: &[&str],
        failpoints: bool,
        prepare: &mut dyn FnMut(&Cluster) -> Result<()>,
    ) -> Result<Cluster> {
        let base = random_base();
        let dir = tempfile::tempdir()?;
        let token = format!("tok-{}-{}", base[0], base[1]);
        let mut c = Cluster {
            dir,
            members: Vec::new(),
            token,
            base,
            failpoints,
        };
        for i in 0..n {
            c.add_member_proc(&format!("m{i}"), extra);
        }
        prepare(&c)?;
        let initial = c.initial_cluster();
        // All processes first, then their ports: they start side by side.
        for i in 0..n {
            c.spawn_process(i, &initial, "new")?;
        }
        for i in 0..n {
            c.learn_ports(i)?;
        }
        let all: Vec<usize> = (0..n).collect();
        if c.try_wait_leader_among(&all, Duration::from_secs(30))
            .is_none()
        {
            bail!("no leader within 30s\n{}", c.logs());
        }
        Ok(c)
    }

    /// Allocates address and proxy (not pointed anywhere yet) for one more member (not
    /// started); its ports are learnt at its first start.
    pub fn add_member_proc(&mut self, name: &str, extra: &[&str]) -> usize {
        let i = self.members.len();
        let ip = Ipv4Addr::new(127, self.base[0], self.base[1], 10 + i as u8);
        let proxy = Proxy::start_untargeted_on(ip);
        self.members.push(MemberProc {
            name: name.to_string(),
            ip,
            client_port: 0,
            peer_port: 0,
            proxy,
            data_dir: self.dir.path().join(name),
            log_path: self.dir.path().join(format!("{name}.log")),
            addresses_path: self.dir.path().join(format!("{name}.addresses.json")),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            paused: false,
            joined_existing: false,
            rejoins: 0,
            control_port: 0,
            control_path: self.dir.path().join(format!("{name}.control-addr")),
            arm_at_start: None,
        });
        i
    }

    /// `name=peer-url,...` of every member slot.
    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The command line of member `i`.
    pub fn command(&self, i: usize, initial: &str, state: &str) -> Command {
        let m = &self.members[i];
        let mut cmd = Command::new(if self.failpoints {
            failpoints_bin()
        } else {
            concord_bin()
        });
        if self.failpoints {
            cmd.env(
                "CONCORD_FAILPOINTS_ADDR",
                format!("{}:{}", m.ip, m.control_port),
            )
            .env("CONCORD_FAILPOINTS_ADDR_FILE", &m.control_path);
            if let Some(fp) = &m.arm_at_start {
                cmd.env("CONCORD_FAILPOINTS", fp);
            }
        }
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .arg("--listen-client-urls")
            .arg(m.endpoint())
            .arg("--advertise-client-urls")
            .arg(m.endpoint())
            .arg("--listen-peer-urls")
            .arg(format!("http://{}:{}", m.ip, m.peer_port))
            .arg("--initial-advertise-peer-urls")
            .arg(m.peer_url())
            .arg("--initial-cluster")
            .arg(initial)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--listen-addresses-file")
            .arg(&m.addresses_path)
            .arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg(ELECTION_TIMEOUT.as_millis().to_string())
            .args(&m.extra)
            .env("RUST_LOG", "info");
        cmd
    }

    /// Starts member `i`'s process (without waiting for it to serve). On the member's first
    /// start, waits until it has bound its client and peer ports, to learn them and point its
    /// proxy at the peer port (a process that exits before that leaves them 0, and is found
    /// gone by [`Cluster::exited`]).
    pub fn try_spawn(&mut self, i: usize, initial: &str, state: &str) -> Result<()> {
        self.spawn_process(i, initial, state)?;
        self.learn_ports(i)
    }

    /// If member `i`'s failpoint control port is not known yet, takes it from the file its
    /// process writes before it starts the member (so before its `--listen-addresses-file`, unless
    /// the process died first: then the next start tries again).
    fn learn_control_port(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        if !self.failpoints || m.control_port != 0 {
            return Ok(());
        }
        match std::fs::read_to_string(&m.control_path) {
            Ok(text) => {
                let addr: SocketAddr = text
                    .trim()
                    .parse()
                    .with_context(|| format!("{}: failpoint control address {text:?}", m.name))?;
                m.control_port = addr.port();
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context(format!("reading {}", m.control_path.display())),
        }
    }

    /// Starts member `i`'s process without waiting for anything.
    fn spawn_process(&mut self, i: usize, initial: &str, state: &str) -> Result<()> {
        if self.members[i].child.is_some() {
            bail!("{} is already running", self.members[i].name);
        }
        remove_if_exists(&self.members[i].addresses_path)?;
        remove_if_exists(&self.members[i].control_path)?;
        let banner = format!("start ({state})");
        let child = spawn_logged(
            &mut self.command(i, initial, state),
            &self.members[i].log_path,
            &banner,
        )?;
        let m = &mut self.members[i];
        m.child = Some(child);
        m.paused = false;
        m.arm_at_start = None;
        m.joined_existing = state == "existing";
        Ok(())
    }

    /// If member `i`'s client or peer port is not known yet (it was started on port 0), waits
    /// (60 s) for its process to bind them and write its `--listen-addresses-file`, keeps
    /// them, and points the proxy at the peer port; then its failpoint control port the same
    /// way. A process that exits first is left for [`Cluster::exited`] to find.
    fn learn_ports(&mut self, i: usize) -> Result<()> {
        let listeners = self.learn_listen_ports(i);
        self.learn_control_port(i)?;
        listeners
    }

    /// The client and peer half of [`Cluster::learn_ports`].
    fn learn_listen_ports(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        if m.client_port != 0 && m.peer_port != 0 {
            return Ok(());
        }
        let Some(child) = m.child.as_mut() else {
            return Ok(());
        };
        match wait_listen_addresses(&m.addresses_path, child, Duration::from_secs(60)) {
            Ok(a) => {
                if a.client_port() == 0 || a.peer_port() == 0 {
                    bail!("{} reported no client or peer listener: {a:?}", m.name);
                }
                if m.client_port == 0 {
                    m.client_port = a.client_port();
                }
                if m.peer_port == 0 {
                    m.peer_port = a.peer_port();
                    m.proxy
                        .set_target(Some(SocketAddr::new(IpAddr::V4(m.ip), m.peer_port)));
                }
                Ok(())
            }
            Err(_) if matches!(child.try_wait(), Ok(Some(_))) => Ok(()),
            Err(e) => Err(e.context(format!(
                "{} did not report its ports\n{}",
                m.name,
                log_tail(&m.log(), 30)
            ))),
        }
    }

    /// Starts member `i`'s process; panics if it cannot be spawned.
    pub fn spawn(&mut self, i: usize, initial: &str, state: &str) {
        self.try_spawn(i, initial, state).expect("spawn concord");
    }

    /// Restarts a stopped member on its data dir.
    pub fn restart(&mut self, i: usize) {
        self.try_restart(i).expect("restart concord");
    }

    /// Restarts a stopped member on its data dir (as it first started: `new` or `existing`).
    pub fn try_restart(&mut self, i: usize) -> Result<()> {
        let initial = self.initial_cluster();
        let state = if self.members[i].joined_existing {
            "existing"
        } else {
            "new"
        };
        self.try_spawn(i, &initial, state)
    }

    /// SIGKILLs member `i` (paused or not).
    pub fn kill9(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(c) = m.child.take() {
            kill_child(c);
        }
        m.paused = false;
    }

    /// Arms (or with `actions` empty, disarms) failpoint `name` of member `i` (a
    /// `concord-failpoints` cluster).
    pub fn failpoint(&self, i: usize, name: &str, actions: &str) -> Result<()> {
        let (code, body) = if actions.is_empty() {
            self.control(i, "DELETE", name, None)?
        } else {
            self.control(i, "PUT", name, Some(actions))?
        };
        if code != 200 {
            bail!("failpoint {name}={actions}: {code} {}", body.trim());
        }
        Ok(())
    }

    /// Drops member `i`'s log writes not yet covered by an fdatasync and kills it (a
    /// `concord-failpoints` cluster); waits (5 s) for the process to be gone.
    pub fn power_loss(&mut self, i: usize) -> Result<()> {
        // The process dies while answering: no status comes back.
        let _ = self.control(i, "PUT", "power-loss", Some(""));
        if !self.wait_exit(i, Duration::from_secs(5)) {
            bail!("{} still runs after a power loss", self.members[i].name);
        }
        Ok(())
    }

    /// One request to member `i`'s failpoint control: status code and body.
    fn control(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String)> {
        let m = &self.members[i];
        if !self.failpoints {
            bail!("{} runs without failpoints", m.name);
        }
        if m.control_port == 0 {
            bail!("{}'s failpoint control has not reported its port", m.name);
        }
        let addr = format!("{}:{}", m.ip, m.control_port);
        Ok(http_request(
            &addr,
            method,
            &format!("/{path}"),
            body.map(|b| ("text/plain", b.as_bytes())),
            Duration::from_secs(5),
        )?)
    }

    /// Waits up to `timeout` for member `i`'s process to exit by itself; true if it did.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exited(i) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and wait (20 s, then SIGKILL).
    pub fn stop(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(c) = m.child.take() {
            terminate(c, Duration::from_secs(20));
        }
        m.paused = false;
    }

    /// SIGSTOPs member `i`; false if it is not running.
    pub fn pause(&mut self, i: usize) -> bool {
        let m = &mut self.members[i];
        match &m.child {
            Some(c) if signal(c, libc::SIGSTOP) => {
                m.paused = true;
                true
            }
            _ => false,
        }
    }

    /// SIGCONTs member `i`.
    pub fn resume(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(c) = &m.child {
            signal(c, libc::SIGCONT);
        }
        m.paused = false;
    }

    /// Whether member `i`'s process has exited by itself (it is then reaped and forgotten).
    pub fn exited(&mut self, i: usize) -> bool {
        let m = &mut self.members[i];
        let gone = match m.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        };
        if gone {
            m.child = None;
            m.paused = false;
        }
        gone
    }

    /// Members with a process.
    pub fn running(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| self.members[*i].child.is_some())
            .collect()
    }

    /// Members with a process that is not paused.
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| self.members[*i].is_live())
            .collect()
    }

    /// The last 30 lines of every member's log.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} ---\n{}", m.name, log_tail(&m.log(), 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Cuts every peer link between the two sides, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for x in a {
            for y in b {
                self.cut_one_way(*x, *y);
                self.cut_one_way(*y, *x);
            }
        }
    }

    /// Cuts `from` → `to` only: `to`'s proxy refuses `from`'s connections.
    pub fn cut_one_way(&self, from: usize, to: usize) {
        self.members[to]
            .proxy
            .refuse(IpAddr::V4(self.members[from].ip));
    }

    /// Silently drops every byte between the two sides, both ways.
    pub fn blackhole(&self, a: &[usize], b: &[usize]) {
        for x in a {
            for y in b {
                let (mx, my) = (&self.members[*x], &self.members[*y]);
                mx.proxy.blackhole(IpAddr::V4(my.ip));
                my.proxy.blackhole(IpAddr::V4(mx.ip));
            }
        }
    }

    /// Lifts every link rule.
    pub fn heal(&self) {
        for m in &self.members {
            m.proxy.allow_all();
        }
    }

    /// Maintenance `Status` of member `i` (1 s deadlines).
    pub fn status(&self, i: usize) -> Option<pb::StatusResponse> {
        let ep = self.members[i].endpoint();
        rt().block_on(async move {
            let mut c = tokio::time::timeout(
                Duration::from_secs(1),
                pb::maintenance_client::MaintenanceClient::connect(ep),
            )
            .await
            .ok()?
            .ok()?;
            tokio::time::timeout(Duration::from_secs(1), c.status(pb::StatusRequest {}))
                .await
                .ok()?
                .ok()
                .map(|r| r.into_inner())
        })
    }

    /// Member `i`'s id, as it answers it.
    pub fn member_id(&self, i: usize) -> Option<u64> {
        self.status(i).and_then(|s| s.header).map(|h| h.member_id)
    }

    /// The member all of `among` agree leads, if they agree and it is one of them.
    pub fn leader_among(&self, among: &[usize]) -> Option<usize> {
        let mut leader = None;
        let mut ids = Vec::new();
        for i in among {
            let s = self.status(*i)?;
            if s.leader == 0 || leader.is_some_and(|l| l != s.leader) {
                return None;
            }
            leader = Some(s.leader);
            ids.push((*i, s.header.map(|h| h.member_id)));
        }
        let leader = leader?;
        ids.into_iter()
            .find(|(_, id)| *id == Some(leader))
            .map(|(i, _)| i)
    }

    /// The leader the live members agree on, if any.
    pub fn leader(&self) -> Option<usize> {
        self.leader_among(&self.live())
    }

    /// Waits until `among` agree on a leader among them.
    pub fn try_wait_leader_among(&self, among: &[usize], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader_among(among) {
                return Some(l);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `among` agree on a leader among them; panics after `timeout`.
    pub fn wait_leader_among(&self, among: &[usize], timeout: Duration) -> usize {
        match self.try_wait_leader_among(among, timeout) {
            Some(l) => l,
            None => panic!(
                "no leader among {among:?} within {timeout:?}\n{}",
                self.logs()
            ),
        }
    }

    /// Waits until the running members agree on a leader; panics after `timeout`.
    pub fn wait_leader(&self, timeout: Duration) -> usize {
        let running = self.running();
        self.wait_leader_among(&running, timeout)
    }

    /// Comma-separated client URLs of `among`.
    pub fn endpoints(&self, among: &[usize]) -> String {
        among
            .iter()
            .map(|i| self.members[*i].endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Client URLs of every member slot.
    pub fn client_endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint()).collect()
    }

    /// Runs etcdctl against the given members (10 s command timeout; killed after 30 s).
    pub fn etcdctl(&self, among: &[usize], args: &[&str]) -> Output {
        let mut cmd = etcdctl_command(&self.endpoints(among));
        cmd.arg("--command-timeout=10s").args(args);
        output_within(&mut cmd, Duration::from_secs(30))
            .expect("run etcdctl (scripts/install-deps.sh --test installs it) within 30s")
    }

    /// Runs etcdctl, asserts it succeeded and returns its standard output.
    pub fn etcdctl_ok(&self, among: &[usize], args: &[&str]) -> String {
        let out = self.etcdctl(among, args);
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every key and value on member `i`, read locally (serializable), with its revision.
    pub fn dump(&self, i: usize) -> Option<(i64, Kvs)> {
        let ep = self.members[i].endpoint();
        rt().block_on(async move {
            let fut = async {
                let mut kv = pb::kv_client::KvClient::connect(ep)
                    .await
                    .ok()?
                    .max_decoding_message_size(usize::MAX);
                let r = kv
                    .range(pb::RangeRequest {
                        key: vec![0],
                        range_end: vec![0],
                        serializable: true,
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                Some((
                    r.header.map(|h| h.revision).unwrap_or(0),
                    r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect(),
                ))
            };
            tokio::time::timeout(Duration::from_secs(10), fut)
                .await
                .ok()
                .flatten()
        })
    }

    /// Waits until every running member holds the same data at the same revision, and
    /// returns it; on timeout, says how they differ.
    pub fn try_converged(&self, timeout: Duration) -> std::result::Result<Kvs, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let dumps: Vec<_> = self.running().iter().map(|i| self.dump(*i)).collect();
            if dumps.iter().all(|d| d.is_some()) && dumps.windows(2).all(|w| w[0] == w[1]) {
                return Ok(dumps
                    .into_iter()
                    .next()
                    .flatten()
                    .map(|d| d.1)
                    .unwrap_or_default());
            }
            if Instant::now() > deadline {
                let revs: Vec<_> = self
                    .running()
                    .iter()
                    .zip(&dumps)
                    .map(|(i, d)| {
                        format!(
                            "{}: {}",
                            self.members[*i].name,
                            match d {
                                Some((r, kvs)) => format!("revision {r}, {} keys", kvs.len()),
                                None => "no answer".into(),
                            }
                        )
                    })
                    .collect();
                return Err(format!(
                    "members did not converge within {timeout:?}: {}",
                    revs.join("; ")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every running member holds the same data; panics after `timeout`.
    pub fn wait_converged(&self, timeout: Duration) -> Kvs {
        match self.try_converged(timeout) {
            Ok(d) => d,
            Err(e) => panic!("{e}\n{}", self.logs()),
        }
    }

    /// The members the cluster lists, as (id, name, is learner), asked through `among`.
    pub fn member_list(&self, among: &[usize]) -> Result<Vec<(u64, String, bool)>> {
        let out = self.etcdctl(among, &["member", "list", "-w", "json"]);
        if !out.status.success() {
            bail!(
                "etcdctl member list: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let members = v["members"]
            .as_array()
            .ok_or_else(|| anyhow!("no members in {v}"))?;
        Ok(members
            .iter()
            .map(|m| {
                (
                    m["ID"].as_u64().unwrap_or(0),
                    m["name"].as_str().unwrap_or("").to_string(),
                    m["isLearner"].as_bool().unwrap_or(false),
                )
            })
            .collect())
    }

    /// Removes member `i` from the cluster through the others (`etcdctl member remove`) and
    /// waits for its process to stop by itself. Returns what was worth noting (e.g. that it
    /// had to be killed).
    pub fn remove_member(&mut self, i: usize) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        let id = self
            .member_id(i)
            .ok_or_else(|| anyhow!("{} does not answer its status", self.members[i].name))?;
        let others: Vec<usize> = self.live().into_iter().filter(|x| *x != i).collect();
        let hex = format!("{id:x}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.etcdctl(&others, &["member", "remove", &hex]);
            let listed = self
                .member_list(&others)
                .map(|l| l.iter().any(|(m, _, _)| *m == id));
            if matches!(listed, Ok(false)) {
                if !out.status.success() {
                    notes.push(format!(
                        "member remove answered an error but did remove it: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "could not remove {} ({hex}): {}",
                    self.members[i].name,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        // A removed member stops by itself.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.exited(i) {
            if Instant::now() > deadline {
                notes.push(format!(
                    "{} kept running 20s after its removal; killed",
                    self.members[i].name
                ));
                self.kill9(i);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(notes)
    }

    /// Adds member slot `i` (removed before, its process gone) back as a new member with a
    /// fresh data dir: `member add --learner`, start it with `--initial-cluster-state
    /// existing`, then `member promote` once it has caught up (within `timeout`). It keeps its
    /// client port and proxy (the advertised peer URL) but starts on peer port 0 like a new
    /// member; the proxy closes connections until it is pointed at the new port.
    pub fn readd_member(&mut self, i: usize, timeout: Duration) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        if self.members[i].child.is_some() {
            bail!("{} is still running", self.members[i].name);
        }
        // A new member binds a new peer port; until it reports it, the proxy has no target.
        let m = &mut self.members[i];
        m.peer_port = 0;
        m.proxy.set_target(None);
        // Keep the old data for a post-mortem.
        m.rejoins += 1;
        if m.data_dir.exists() {
            let old = m
                .data_dir
                .with_file_name(format!("{}.removed-{}", m.name, m.rejoins));
            std::fs::rename(&m.data_dir, &old)
                .with_context(|| format!("moving {} aside", m.data_dir.display()))?;
        }
        let others: Vec<usize> = self.live().into_iter().filter(|x| *x != i).collect();
        let peer = self.members[i].peer_url();
        let name = self.members[i].name.clone();
        let deadline = Instant::now() + timeout;
        let id = loop {
            let out = self.etcdctl(
                &others,
                &[
                    "member",
                    "add",
                    &name,
                    &format!("--peer-urls={peer}"),
                    "--learner",
                ],
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() {
                // "Member 8e9e05c52164694d added to cluster ..."
                let id = text
                    .split_whitespace()
                    .skip_while(|w| *w != "Member")
                    .nth(1)
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .ok_or_else(|| anyhow!("no member id in {text:?}"))?;
                break id;
            }
            // A timed-out add may have gone through: look for the peer URL.
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if err.contains("Peer URLs already exists") || err.contains("already exists") {
                let list = self.member_list(&others)?;
                if let Some((id, _, _)) = list.iter().find(|(_, n, l)| n.is_empty() && *l) {
                    notes.push(format!("member add answered {err:?} but had added it"));
                    break *id;
                }
            }
            if Instant::now() > deadline {
                bail!("member add {name} failed: {}", err.trim());
            }
            notes.push(format!(
                "member add {name} failed, retrying: {}",
                err.trim()
            ));
            std::thread::sleep(Duration::from_millis(500));
        };
        let initial = self.initial_cluster();
        let mut crash_expected = self.members[i].arm_at_start.is_some();
        self.try_spawn(i, &initial, "existing")?;
        let hex = format!("{id:x}");
        loop {
            let out = self.etcdctl(&others, &["member", "promote", &hex]);
            if out.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if err.contains("can only promote a learner member")
                && !err.contains("in sync with leader")
            {
                // Already a voter: an earlier promote went through after all.
                notes.push(format!("member promote answered {:?}", err.trim()));
                break;
            }
            if self.exited(i) {
                if crash_expected {
                    // Armed to crash at its first start (a failpoint): start it again.
                    crash_expected = false;
                    notes.push(format!("{name} crashed as armed while joining; restarted"));
                    self.try_restart(i)?;
                    continue;
                }
                bail!(
                    "{name} exited while joining as a new member\n{}",
                    log_tail(&self.members[i].log(), 30)
                );
            }
            if Instant::now() > deadline {
                bail!("{name} was never promoted: {}", err.trim());
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(notes)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
    }
}
