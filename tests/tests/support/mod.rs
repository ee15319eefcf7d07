//! Multi-process clusters of the real `concord` binary on loopback, with a TCP proxy in front of
//! every member's peer port to cut links.
//!
//! Member `i` gets its own loopback address (`127.A.B.(10+i)`, A and B random per cluster so
//! concurrent test binaries never meet). Members bind their outgoing peer connections to that
//! address, so the proxy in front of a member knows which member connects and can refuse it.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_proto::etcdserverpb as pb;
use concord_tests::concord_bin;

/// A TCP proxy that can refuse chosen source addresses.
pub struct Proxy {
    pub addr: SocketAddr,
    blocked: Arc<Mutex<HashSet<IpAddr>>>,
    conns: Arc<Mutex<Vec<(IpAddr, TcpStream, TcpStream)>>>,
    stop: Arc<AtomicBool>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Proxy {
    pub fn start(listen: SocketAddr, target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(listen).expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let blocked: Arc<Mutex<HashSet<IpAddr>>> = Arc::default();
        let conns: Arc<Mutex<Vec<(IpAddr, TcpStream, TcpStream)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (b, c, s) = (blocked.clone(), conns.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, peer)) => {
                        let _ = client.set_nonblocking(false);
                        if b.lock().unwrap().contains(&peer.ip()) {
                            drop(client);
                            continue;
                        }
                        let Ok(upstream) = TcpStream::connect(target) else {
                            continue;
                        };
                        let _ = upstream.set_nodelay(true);
                        let _ = client.set_nodelay(true);
                        c.lock().unwrap().push((
                            peer.ip(),
                            client.try_clone().unwrap(),
                            upstream.try_clone().unwrap(),
                        ));
                        let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                        std::thread::spawn(move || pipe(client, upstream));
                        std::thread::spawn(move || pipe(u2, c2));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            blocked,
            conns,
            stop,
        }
    }

    /// Refuses `ip` from now on and cuts its open connections.
    pub fn block(&self, ip: IpAddr) {
        self.blocked.lock().unwrap().insert(ip);
        let mut conns = self.conns.lock().unwrap();
        conns.retain(|(src, a, b)| {
            if *src == ip {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
                false
            } else {
                true
            }
        });
    }

    pub fn unblock_all(&self) {
        self.blocked.lock().unwrap().clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (_, a, b) in self.conns.lock().unwrap().drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind")
        .local_addr()
        .unwrap()
        .port()
}

pub struct MemberProc {
    pub name: String,
    pub ip: Ipv4Addr,
    pub client_port: u16,
    pub peer_port: u16,
    pub proxy: Proxy,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub child: Option<Child>,
    pub extra: Vec<String>,
}

impl MemberProc {
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.ip, self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://{}", self.proxy.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<MemberProc>,
    pub token: String,
    base: [u8; 2],
}

fn random_base() -> [u8; 2] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ (std::process::id() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    [1 + (nanos % 250) as u8, ((nanos >> 8) % 250) as u8]
}

impl Cluster {
    /// Starts `n` members of a new cluster and waits for a leader.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let base = random_base();
        let dir = tempfile::tempdir().unwrap();
        let token = format!("tok-{}-{}", base[0], base[1]);
        let mut c = Cluster {
            dir,
            members: Vec::new(),
            token,
            base,
        };
        for i in 0..n {
            c.add_member_proc(&format!("m{i}"), extra);
        }
        let initial = c.initial_cluster();
        for i in 0..n {
            c.spawn(i, &initial, "new");
        }
        c.wait_leader(Duration::from_secs(30));
        c
    }

    /// Allocates address, ports and proxy for one more member (not started).
    pub fn add_member_proc(&mut self, name: &str, extra: &[&str]) -> usize {
        let i = self.members.len();
        let ip = Ipv4Addr::new(127, self.base[0], self.base[1], 10 + i as u8);
        let peer_port = free_port(ip);
        let proxy = Proxy::start(
            SocketAddr::new(IpAddr::V4(ip), free_port(ip)),
            SocketAddr::new(IpAddr::V4(ip), peer_port),
        );
        self.members.push(MemberProc {
            name: name.to_string(),
            ip,
            client_port: free_port(ip),
            peer_port,
            proxy,
            data_dir: self.dir.path().join(name),
            log_path: self.dir.path().join(format!("{name}.log")),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        });
        i
    }

    pub fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn command(&self, i: usize, initial: &str, state: &str) -> Command {
        let m = &self.members[i];
        let mut cmd = Command::new(concord_bin());
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
            .arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg("500")
            .args(&m.extra)
            .env("RUST_LOG", "info");
        cmd
    }

    pub fn spawn(&mut self, i: usize, initial: &str, state: &str) {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.members[i].log_path)
            .unwrap();
        writeln!(log, "===== start =====").unwrap();
        let child = self
            .command(i, initial, state)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn concord");
        self.members[i].child = Some(child);
    }

    /// Restarts a stopped member on its data dir.
    pub fn restart(&mut self, i: usize) {
        let initial = self.initial_cluster();
        self.spawn(i, &initial, "new");
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| self.members[*i].child.is_some())
            .collect()
    }

    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = m.log();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                format!(
                    "--- {} ---\n{}",
                    m.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Cuts every peer link between the two sides.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for x in a {
            for y in b {
                self.members[*x]
                    .proxy
                    .block(IpAddr::V4(self.members[*y].ip));
                self.members[*y]
                    .proxy
                    .block(IpAddr::V4(self.members[*x].ip));
            }
        }
    }

    pub fn heal(&self) {
        for m in &self.members {
            m.proxy.unblock_all();
        }
    }

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

    /// The member all of `among` agree leads, if they agree and it is one of them.
    pub fn leader_among(&self, among: &[usize]) -> Option<usize> {
        let mut leader = None;
        for i in among {
            let s = self.status(*i)?;
            if s.leader == 0 || leader.is_some_and(|l| l != s.leader) {
                return None;
            }
            leader = Some(s.leader);
        }
        let leader = leader?;
        among
            .iter()
            .copied()
            .find(|i| self.status(*i).and_then(|s| s.header).map(|h| h.member_id) == Some(leader))
    }

    pub fn wait_leader_among(&self, among: &[usize], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader_among(among) {
                return l;
            }
            if Instant::now() > deadline {
                panic!(
                    "no leader among {among:?} within {timeout:?}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_leader(&self, timeout: Duration) -> usize {
        let running = self.running();
        self.wait_leader_among(&running, timeout)
    }

    pub fn endpoints(&self, among: &[usize]) -> String {
        among
            .iter()
            .map(|i| self.members[*i].endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs etcdctl against the given members.
    pub fn etcdctl(&self, among: &[usize], args: &[&str]) -> std::process::Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints(among)))
            .arg("--command-timeout=10s")
            .args(args)
            .output()
            .expect("run etcdctl (scripts/install-deps.sh --test installs it)")
    }

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
    pub fn dump(&self, i: usize) -> Option<(i64, Vec<(Vec<u8>, Vec<u8>)>)> {
        let ep = self.members[i].endpoint();
        rt().block_on(async move {
            let mut kv = pb::kv_client::KvClient::connect(ep).await.ok()?;
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
        })
    }

    /// Waits until every running member holds the same data at the same revision.
    pub fn wait_converged(&self, timeout: Duration) -> Vec<(Vec<u8>, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let dumps: Vec<_> = self.running().iter().map(|i| self.dump(*i)).collect();
            if dumps.iter().all(|d| d.is_some()) && dumps.windows(2).all(|w| w[0] == w[1]) {
                return dumps
                    .into_iter()
                    .next()
                    .flatten()
                    .map(|d| d.1)
                    .unwrap_or_default();
            }
            if Instant::now() > deadline {
                let revs: Vec<_> = dumps
                    .iter()
                    .map(|d| d.as_ref().map(|(r, kvs)| (*r, kvs.len())))
                    .collect();
                panic!("members did not converge: {revs:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill9(i);
        }
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
