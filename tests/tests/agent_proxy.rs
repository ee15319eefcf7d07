//! The agent's Service proxy (kube-proxy's role) against the real binaries: a member, the API
//! server and `concord-agent`s. A selector-less Service (written with kubectl) and its
//! EndpointSlice point at TCP servers this test runs on loopback; connections to the
//! Service's cluster IP must reach the ready ones, round-robin, and follow changes of the
//! slice.
//!
//! The slices are written through the object layer, as the endpoints controller writes them:
//! the API server refuses endpoint addresses in 127.0.0.0/8 (Kubernetes' validation of
//! EndpointSlices), which is where Concord's pods live.
//!
//! Every agent on a machine serves every Service address it sees (`SO_REUSEPORT`), so each
//! test picks a cluster IP and backend addresses of its own, away from what other tests on
//! the machine use.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use concord_cp_store::{Registry, Update, DEFAULT_PREFIX};
use concord_cp_types::{resources, ApiError};
use concord_tests::agent::Agent;
use concord_tests::ApiServer;
use serde_json::{json, Value};

/// A third octet for this test's addresses, from the process id and a per-test salt.
fn octet(salt: u32) -> u8 {
    let pid = std::process::id();
    (200 + (pid.wrapping_mul(31).wrapping_add(salt * 7)) % 50) as u8
}

/// TCP servers on `127.1.<net>.<1..>` sharing one port, each answering every connection
/// with its id and closing it.
struct Backends {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Backends {
    fn start(net: u8, ids: &[&'static str]) -> Backends {
        for _ in 0..50 {
            let first = concord_tests::bind_free_on(Ipv4Addr::new(127, 1, net, 1));
            let port = first.local_addr().expect("local addr").port();
            let mut listeners = vec![first];
            for i in 2..=ids.len() {
                match TcpListener::bind((Ipv4Addr::new(127, 1, net, i as u8), port)) {
                    Ok(l) => listeners.push(l),
                    Err(_) => break,
                }
            }
            if listeners.len() < ids.len() {
                continue;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let threads = listeners
                .into_iter()
                .zip(ids.iter().copied())
                .map(|(l, id)| {
                    let stop = stop.clone();
                    std::thread::spawn(move || serve(l, id, &stop))
                })
                .collect();
            return Backends {
                port,
                stop,
                threads,
            };
        }
        panic!("could not bind the backends on 127.1.{net}.x");
    }
}

fn serve(l: TcpListener, id: &str, stop: &AtomicBool) {
    l.set_nonblocking(true).expect("nonblocking");
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.write_all(id.as_bytes());
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Connects to `addr` and returns what the server said before closing (`None`: refused,
/// or closed without a word, as the proxy does without a usable endpoint).
fn ask(addr: SocketAddrV4) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

fn ask_n(addr: SocketAddrV4, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| ask(addr).unwrap_or_else(|| "-".into()))
        .collect()
}

/// How many sockets listen on `addr` (from `/proc/net/tcp`, where an IPv4 address is its
/// bytes read as a native-endian number, in hex).
fn listeners_on(addr: SocketAddrV4) -> usize {
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(addr.ip().octets()),
        addr.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        })
        .count()
}

/// Polls until `pred` holds of `n` answers in a row (30 s), returning them.
fn wait_answers(
    addr: SocketAddrV4,
    n: usize,
    what: &str,
    agent: &Agent,
    pred: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = ask_n(addr, n);
        if pred(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last answers {got:?}; agent log:\n{}",
            agent.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn service(name: &str, ip: Ipv4Addr, port: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
spec:
  clusterIP: {ip}
  ports:
  - name: web
    port: {port}
    targetPort: 8080
    protocol: TCP
"#
    )
}

/// The object layer on the API server's member, for writing EndpointSlices.
struct Store {
    rt: tokio::runtime::Runtime,
    registry: Registry,
}

impl Store {
    fn open(api: &ApiServer) -> Store {
        let rt = concord_tests::rt();
        let endpoint = api.etcd.endpoint();
        let registry = rt.block_on(async {
            let client = concord_client::Client::connect([endpoint])
                .await
                .expect("connect to the member");
            Registry::new(client, DEFAULT_PREFIX)
        });
        Store { rt, registry }
    }

    /// Creates or replaces the slice `<name>-1` of Service `name` in `default`, with
    /// endpoints `(ip, ready)` on `port` (serving as ready, none terminating).
    fn put_slice(&self, name: &str, port: u16, endpoints: &[(String, bool)]) {
        let res = resources::find("discovery.k8s.io", "v1", "endpointslices")
            .expect("endpointslices resource");
        let eps: Vec<Value> = endpoints
            .iter()
            .map(|(ip, ready)| {
                json!({"addresses": [ip],
                       "conditions": {"ready": ready, "serving": ready, "terminating": false}})
            })
            .collect();
        let slice_name = format!("{name}-1");
        let obj = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": slice_name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "web", "port": port, "protocol": "TCP"}],
            "endpoints": eps,
        });
        self.rt.block_on(async {
            match self.registry.create(res, obj.clone()).await {
                Ok(_) => {}
                Err(ApiError::AlreadyExists { .. }) => {
                    self.registry
                        .guaranteed_update(res, Some("default"), &slice_name, |cur| {
                            let mut o = obj.clone();
                            o["metadata"]["resourceVersion"] =
                                cur["metadata"]["resourceVersion"].clone();
                            Ok(Update::Put(o))
                        })
                        .await
                        .expect("update the slice");
                }
                Err(e) => panic!("create the slice: {e}"),
            }
        });
    }
}

#[test]
fn service_connections_go_round_robin_to_ready_endpoints_and_follow_the_slice() {
    let api = ApiServer::start();
    let store = Store::open(&api);
    let net = octet(1);
    let agent = Agent::start(
        &api.etcd.endpoint(),
        api.dir(),
        "proxy-a",
        &[&format!("--pod-cidr=127.1.{}.0/24", octet(2))],
    );
    let backends = Backends::start(net, &["a", "b", "c"]);
    let ep = |i: u8| format!("127.1.{net}.{i}");

    let cluster_ip = Ipv4Addr::new(127, 2, net, 10);
    let port = concord_tests::free_port_on(cluster_ip);
    let addr = SocketAddrV4::new(cluster_ip, port);
    api.apply_stdin(&service("web", cluster_ip, port), &[]);
    let got = api.kubectl_ok(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert_eq!(got.trim(), cluster_ip.to_string());
    // c is not ready.
    store.put_slice(
        "web",
        backends.port,
        &[(ep(1), true), (ep(2), true), (ep(3), false)],
    );

    // Round-robin over a and b, never c.
    let got = wait_answers(addr, 6, "round-robin over a and b", &agent, |got| {
        got.iter().all(|g| g == "a" || g == "b") && got.windows(2).all(|w| w[0] != w[1])
    });
    assert!(got.contains(&"a".to_string()) && got.contains(&"b".to_string()));

    // b turns not ready, c ready: new connections stop going to b.
    store.put_slice(
        "web",
        backends.port,
        &[(ep(1), true), (ep(2), false), (ep(3), true)],
    );
    wait_answers(addr, 6, "round-robin over a and c", &agent, |got| {
        got.iter().all(|g| g == "a" || g == "c") && got.windows(2).all(|w| w[0] != w[1])
    });
    let got = ask_n(addr, 10);
    assert!(
        got.iter().all(|g| g == "a" || g == "c"),
        "b is not ready: {got:?}"
    );

    // No ready endpoint: connections are closed without an answer.
    store.put_slice(
        "web",
        backends.port,
        &[(ep(1), false), (ep(2), false), (ep(3), false)],
    );
    wait_answers(addr, 3, "no endpoint", &agent, |got| {
        got.iter().all(|g| g == "-")
    });

    // The Service goes: nothing listens on its address any more.
    store.put_slice("web", backends.port, &[(ep(1), true), (ep(2), true)]);
    wait_answers(addr, 2, "endpoints back", &agent, |got| {
        got.iter().all(|g| g == "a" || g == "b")
    });
    api.kubectl_ok(&["delete", "service", "web"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr.into(), Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the deleted Service's address still accepts connections; agent log:\n{}",
            agent.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agents_on_one_machine_share_service_addresses() {
    let api = ApiServer::start();
    let store = Store::open(&api);
    let net = octet(3);
    let mut one = Agent::start(
        &api.etcd.endpoint(),
        api.dir(),
        "proxy-one",
        &[&format!("--pod-cidr=127.1.{}.0/24", octet(4))],
    );
    let two = Agent::start(
        &api.etcd.endpoint(),
        api.dir(),
        "proxy-two",
        &[&format!("--pod-cidr=127.1.{}.0/24", octet(5))],
    );
    let backends = Backends::start(net, &["a", "b"]);
    let cluster_ip = Ipv4Addr::new(127, 2, net, 20);
    let port = concord_tests::free_port_on(cluster_ip);
    let addr = SocketAddrV4::new(cluster_ip, port);
    api.apply_stdin(&service("shared", cluster_ip, port), &[]);
    store.put_slice(
        "shared",
        backends.port,
        &[
            (format!("127.1.{net}.1"), true),
            (format!("127.1.{net}.2"), true),
        ],
    );
    // Both agents listen on the address, and every connection is answered, whichever
    // agent gets it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while listeners_on(addr) != 2 {
        assert!(
            Instant::now() < deadline,
            "expected two listeners on the Service address, found {}; logs:\n{}\n{}",
            listeners_on(addr),
            one.log_tail(),
            two.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_answers(addr, 20, "both agents serve", &two, |got| {
        got.iter().all(|g| g == "a" || g == "b")
    });
    // One agent stops: the other serves every new connection.
    one.stop();
    assert_eq!(listeners_on(addr), 1);
    let got = ask_n(addr, 20);
    assert!(
        got.iter().all(|g| g == "a" || g == "b"),
        "after one agent stopped: {got:?}; log:\n{}",
        two.log_tail()
    );
}
