//! The Service proxy: kube-proxy's role for TCP, in userspace. Every agent forwards
//! connections made to a Service's cluster IP and port to one of the Service's ready
//! endpoints.
//!
//! # What it serves
//!
//! The proxy watches Services and `discovery.k8s.io/v1` EndpointSlices with the control
//! plane's informers and keeps a [`ProxyTable`]: for each Service port, the address it is
//! served on (`spec.clusterIP` and the port) and its backends (the endpoints of the Service's
//! slices, found by their `kubernetes.io/service-name` label, with the slice port of the same
//! name; the endpoints controller already resolved `targetPort`, so the slice's port number
//! is the backend's port). Only what can be served on this machine's loopback is served:
//!
//! - Services of type `ClusterIP` (or no type), `NodePort` and `LoadBalancer` whose
//!   `spec.clusterIP` is an IPv4 address in `127.0.0.0/8` (the API server's
//!   `--service-cluster-ip-range` should be a loopback range such as `127.2.0.0/16`); other
//!   Services (headless, `ExternalName`, other addresses) are skipped, with one debug log
//!   each. Node ports and load balancer addresses are not served; neither is
//!   `internalTrafficPolicy: Local` told apart from `Cluster` (all agents on a machine share
//!   its addresses, see below).
//! - Services labelled `service.kubernetes.io/service-proxy-name` belong to another proxy
//!   and are skipped, as kube-proxy skips them.
//! - TCP ports only (UDP and SCTP ports are skipped); slices of address type `IPv4` only.
//!
//! # Which backend
//!
//! Each accepted connection goes to one backend of its Service port:
//!
//! - **Ready endpoints** (`conditions.ready` true or absent). When there are none, the
//!   endpoints that are **serving and terminating** are used instead (kube-proxy's rule for
//!   terminating endpoints, KEP-1669), so a Service whose pods are all shutting down keeps
//!   answering while they drain. An endpoint listed in several slices counts once, ready if
//!   any of its entries is.
//! - **Round-robin** over them, per Service port, in address order.
//! - **`sessionAffinity: ClientIP`**: a client IP keeps going to the same endpoint while that
//!   endpoint stays usable and less than `sessionAffinityConfig.clientIP.timeoutSeconds`
//!   (default 10800) have passed since the client's last connection. A new client (or one
//!   whose endpoint expired or went away) gets the endpoint with the highest hash of client
//!   IP and endpoint address (**rendezvous hashing**), not the round-robin's next: several
//!   agents on one machine serve the same address (below) and each keeps its own affinity
//!   table, so the first choice must be one they all make alike. They then agree as long as
//!   their tables agree; a client pinned by one agent before an endpoint was added may be
//!   sent to the new endpoint by another agent that never saw it, which is within what
//!   Kubernetes promises (affinity is best effort).
//! - A backend that refuses the connection (or does not answer within
//!   [`ProxyOptions::connect_timeout`]) is skipped for the next one, up to
//!   [`ProxyOptions::max_attempts`] backends; then the client's connection is closed. A Service
//!   port without usable endpoints has its connections closed at once (kube-proxy rejects
//!   them).
//!
//! Bytes are then copied both ways until both sides are done (a half-close is passed on).
//! The backend sees the client's address as its source when the client is on loopback
//! ([`ProxyOptions::preserve_client_ip`]), as it would behind kube-proxy's iptables rules.
//!
//! # Changes
//!
//! Each change of a Service or slice rebuilds the table, and each listener reads the current
//! table at every accept: an endpoint that goes away or turns not ready gets no new
//! connection from the next accept on. Established connections are left alone, as kube-proxy
//! leaves them. A Service port that goes away (the Service deleted, the port removed) has its
//! listener closed; a changed cluster IP or port closes the old listener and opens the new
//! one. A listener that cannot be opened (the address taken by another program) is retried
//! every [`ProxyOptions::retry_interval`].
//!
//! # Who serves a Service address
//!
//! Several agents may run on one machine, and every one serves every Service: each binds each
//! cluster IP and port with `SO_REUSEADDR` and `SO_REUSEPORT`, so the kernel keeps one
//! listening socket per agent on the same address and spreads new connections across them
//! (by a hash of the connection's addresses). Any agent can take any connection since they
//! all build the same table from the same objects. When an agent stops, its sockets close and
//! new connections go to the others (connections the kernel had queued for the stopped
//! agent but that it had not accepted yet are reset). `SO_REUSEPORT` only lets sockets of
//! the same user share an address, so the agents of a machine must run as one user; and
//! since they share whatever address they bind, the agents of one machine must belong to one
//! cluster (or clusters whose Service ranges do not overlap).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use concord_cp_store::{Informer, InformerEvent, Registry, Selector};
use concord_cp_types::resources;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The label that hands a Service to another proxy: kube-proxy (and this proxy) skip the
/// Services that carry it.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// `sessionAffinityConfig.clientIP.timeoutSeconds`' default (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10800);

/// The longest affinity timeout the API accepts (one day).
const MAX_AFFINITY_TIMEOUT_SECONDS: i64 = 86400;

/// How many affinity entries a Service port records between sweeps of the expired ones.
const AFFINITY_SWEEP_EVERY: usize = 256;

/// The proxy's settings.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// How many backends a connection tries before it is closed (at least 1).
    pub max_attempts: usize,
    /// How long one attempt to connect to a backend may take.
    pub connect_timeout: Duration,
    /// Connect to backends from the client's own address when the client is on loopback, so
    /// that backends see who called them.
    pub preserve_client_ip: bool,
    /// How often listeners that could not be opened are tried again.
    pub retry_interval: Duration,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            max_attempts: 3,
            connect_timeout: Duration::from_secs(3),
            preserve_client_ip: true,
            retry_interval: Duration::from_secs(5),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The table: pure functions of Service and EndpointSlice objects
// ---------------------------------------------------------------------------------------

/// One endpoint of a Service port: an address and the endpoint's conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    /// Where to connect.
    pub addr: SocketAddrV4,
    /// `conditions.ready` (absent counts as true).
    pub ready: bool,
    /// `conditions.serving` (absent counts as true).
    pub serving: bool,
    /// `conditions.terminating` (absent counts as false).
    pub terminating: bool,
}

/// One Service port as the proxy serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The port's name (empty for an unnamed port).
    pub port_name: String,
    /// How long a client sticks to its endpoint, with `sessionAffinity: ClientIP`.
    pub affinity_timeout: Option<Duration>,
    /// Every endpoint, usable or not, in address order.
    pub backends: Vec<Backend>,
}

impl ServicePort {
    /// The endpoints connections may go to, in address order: the ready ones, or when there
    /// are none, the serving and terminating ones.
    pub fn usable(&self) -> Vec<SocketAddrV4> {
        let ready: Vec<SocketAddrV4> = self
            .backends
            .iter()
            .filter(|b| b.ready)
            .map(|b| b.addr)
            .collect();
        if !ready.is_empty() {
            return ready;
        }
        self.backends
            .iter()
            .filter(|b| b.serving && b.terminating)
            .map(|b| b.addr)
            .collect()
    }

    /// Whether two entries are the same Service port (so that round-robin position and
    /// affinities carry over).
    fn same_port(&self, other: &ServicePort) -> bool {
        self.namespace == other.namespace
            && self.service == other.service
            && self.port_name == other.port_name
    }
}

/// Why a Service is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// No cluster IP (`None`: a headless Service).
    Headless,
    /// A cluster IP that is not an IPv4 address in `127.0.0.0/8`.
    NotLoopback,
    /// A type the proxy does not serve (`ExternalName`, or unknown).
    Type,
    /// Labelled for another proxy ([`SERVICE_PROXY_NAME_LABEL`]).
    OtherProxy,
    /// Another Service (earlier in namespace and name order) has the same address and port.
    Conflict,
}

impl SkipReason {
    fn as_str(self) -> &'static str {
        match self {
            SkipReason::Headless => "headless",
            SkipReason::NotLoopback => "cluster IP not in 127.0.0.0/8",
            SkipReason::Type => "type not proxied",
            SkipReason::OtherProxy => "handled by another proxy",
            SkipReason::Conflict => "address and port taken by another Service",
        }
    }
}

/// `(namespace, name)` of a Service.
pub type ServiceKey = (String, String);

/// What the proxy serves: each listening address's Service port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyTable {
    /// Service ports by the address they are served on.
    pub ports: BTreeMap<SocketAddrV4, ServicePort>,
    /// The Services left out (wholly or, for conflicts, in part), and why.
    pub skipped: BTreeMap<ServiceKey, SkipReason>,
}

/// A slice's TCP ports: name and number.
type SlicePorts = Vec<(String, u16)>;

/// A slice's endpoints: address, ready, serving, terminating.
type SliceEndpoints = Vec<(Ipv4Addr, bool, bool, bool)>;

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn is_tcp(port: &Value) -> bool {
    port.get("protocol")
        .and_then(Value::as_str)
        .is_none_or(|p| p == "TCP")
}

fn port_number(v: Option<&Value>) -> Option<u16> {
    v.and_then(Value::as_i64)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n != 0)
}

/// The loopback IPv4 cluster IP of a Service of a proxied type, or why there is none.
fn cluster_ip(svc: &Value) -> Result<Ipv4Addr, SkipReason> {
    if svc
        .pointer("/metadata/labels")
        .and_then(|l| l.get(SERVICE_PROXY_NAME_LABEL))
        .is_some()
    {
        return Err(SkipReason::OtherProxy);
    }
    match svc.pointer("/spec/type").and_then(Value::as_str) {
        None | Some("") | Some("ClusterIP") | Some("NodePort") | Some("LoadBalancer") => {}
        Some(_) => return Err(SkipReason::Type),
    }
    let ip = str_at(svc, "/spec/clusterIP");
    if ip.is_empty() || ip == "None" {
        return Err(SkipReason::Headless);
    }
    match ip.parse::<Ipv4Addr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        _ => Err(SkipReason::NotLoopback),
    }
}

/// The affinity timeout of a Service with `sessionAffinity: ClientIP`.
fn affinity_timeout(svc: &Value) -> Option<Duration> {
    if str_at(svc, "/spec/sessionAffinity") != "ClientIP" {
        return None;
    }
    let secs = svc
        .pointer("/spec/sessionAffinityConfig/clientIP/timeoutSeconds")
        .and_then(Value::as_i64)
        .filter(|&s| s > 0 && s <= MAX_AFFINITY_TIMEOUT_SECONDS);
    Some(secs.map_or(DEFAULT_AFFINITY_TIMEOUT, |s| {
        Duration::from_secs(s.unsigned_abs())
    }))
}

/// The endpoints of a slice (IPv4 ones, by their first address) and its TCP ports.
fn slice_contents(slice: &Value) -> Option<(SlicePorts, SliceEndpoints)> {
    match slice.get("addressType").and_then(Value::as_str) {
        None | Some("IPv4") => {}
        Some(_) => return None,
    }
    let ports: SlicePorts = slice
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| is_tcp(p))
        .filter_map(|p| {
            let n = port_number(p.get("port"))?;
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            Some((name.to_string(), n))
        })
        .collect();
    let endpoints = slice
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ep| {
            let ip: Ipv4Addr = ep.pointer("/addresses/0")?.as_str()?.parse().ok()?;
            let cond = |name: &str, absent: bool| {
                ep.get("conditions")
                    .and_then(|c| c.get(name))
                    .and_then(Value::as_bool)
                    .unwrap_or(absent)
            };
            Some((
                ip,
                cond("ready", true),
                cond("serving", true),
                cond("terminating", false),
            ))
        })
        .collect();
    Some((ports, endpoints))
}

impl ProxyTable {
    /// The table for these Services and EndpointSlices (objects as the API serves them; odd
    /// or incomplete ones are skipped, never an error). Services are taken in namespace and
    /// name order, so when two claim one address and port the first keeps it.
    pub fn build<'a>(
        services: impl IntoIterator<Item = &'a Value>,
        slices: impl IntoIterator<Item = &'a Value>,
    ) -> ProxyTable {
        // Backends by (namespace, service, port name): the union over the Service's slices.
        let mut backends: HashMap<(&str, &str, String), BTreeMap<SocketAddrV4, Backend>> =
            HashMap::new();
        for slice in slices {
            let ns = str_at(slice, "/metadata/namespace");
            let Some(svc) = slice
                .pointer("/metadata/labels")
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            else {
                continue;
            };
            let Some((ports, endpoints)) = slice_contents(slice) else {
                continue;
            };
            for (name, port) in ports {
                let set = backends.entry((ns, svc, name)).or_default();
                for &(ip, ready, serving, terminating) in &endpoints {
                    let addr = SocketAddrV4::new(ip, port);
                    let b = Backend {
                        addr,
                        ready,
                        serving,
                        terminating,
                    };
                    // Listed twice (a slice being replaced): the ready entry wins.
                    match set.get(&addr) {
                        Some(old) if old.ready || !ready => {}
                        _ => {
                            set.insert(addr, b);
                        }
                    }
                }
            }
        }

        let mut services: Vec<&Value> = services.into_iter().collect();
        services.sort_by(|a, b| {
            (
                str_at(a, "/metadata/namespace"),
                str_at(a, "/metadata/name"),
            )
                .cmp(&(
                    str_at(b, "/metadata/namespace"),
                    str_at(b, "/metadata/name"),
                ))
        });
        let mut table = ProxyTable::default();
        for svc in services {
            let ns = str_at(svc, "/metadata/namespace");
            let name = str_at(svc, "/metadata/name");
            let key = (ns.to_string(), name.to_string());
            let ip = match cluster_ip(svc) {
                Ok(ip) => ip,
                Err(reason) => {
                    table.skipped.insert(key, reason);
                    continue;
                }
            };
            let affinity = affinity_timeout(svc);
            for p in svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|p| is_tcp(p))
            {
                let Some(port) = port_number(p.get("port")) else {
                    continue;
                };
                let port_name = p.get("name").and_then(Value::as_str).unwrap_or("");
                let addr = SocketAddrV4::new(ip, port);
                if table.ports.contains_key(&addr) {
                    table.skipped.insert(key.clone(), SkipReason::Conflict);
                    continue;
                }
                let found = backends
                    .get(&(ns, name, port_name.to_string()))
                    .map(|m| m.values().copied().collect())
                    .unwrap_or_default();
                table.ports.insert(
                    addr,
                    ServicePort {
                        namespace: ns.to_string(),
                        service: name.to_string(),
                        port_name: port_name.to_string(),
                        affinity_timeout: affinity,
                        backends: found,
                    },
                );
            }
        }
        table
    }
}

/// A 64-bit hash of client and endpoint that is the same in every process and release
/// (FNV-1a, then a finalizer that spreads the bits): the rendezvous weight.
fn rendezvous_weight(client: Ipv4Addr, backend: SocketAddrV4) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = client
        .octets()
        .into_iter()
        .chain(backend.ip().octets())
        .chain(backend.port().to_be_bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The endpoints in the order a client with affinity tries them: by rendezvous weight,
/// highest first (ties by address). Every agent computes the same order.
pub fn rendezvous_order(client: Ipv4Addr, backends: &[SocketAddrV4]) -> Vec<SocketAddrV4> {
    let mut v: Vec<(u64, SocketAddrV4)> = backends
        .iter()
        .map(|&b| (rendezvous_weight(client, b), b))
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    v.into_iter().map(|(_, b)| b).collect()
}

// ---------------------------------------------------------------------------------------
// Backend choice: per Service port state
// ---------------------------------------------------------------------------------------

/// A client's affinity: its endpoint and when it last connected.
#[derive(Debug, Clone, Copy)]
struct Sticky {
    backend: SocketAddrV4,
    last: Instant,
}

/// What a listener keeps across table updates: the current entry, the round-robin position,
/// the affinities.
#[derive(Debug)]
pub struct PortState {
    entry: RwLock<Arc<ServicePort>>,
    next: AtomicUsize,
    affinity: Mutex<Affinities>,
}

#[derive(Debug, Default)]
struct Affinities {
    clients: HashMap<Ipv4Addr, Sticky>,
    inserts: usize,
}

impl PortState {
    /// The state of a Service port that has not served anything yet.
    pub fn new(entry: ServicePort) -> PortState {
        PortState {
            entry: RwLock::new(Arc::new(entry)),
            next: AtomicUsize::new(0),
            affinity: Mutex::new(Affinities::default()),
        }
    }

    fn affinities(&self) -> MutexGuard<'_, Affinities> {
        self.affinity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current entry.
    pub fn entry(&self) -> Arc<ServicePort> {
        self.entry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the entry. A different Service port (the address reused), or affinity turned
    /// off, forgets the affinities and restarts the round-robin.
    pub fn update(&self, entry: ServicePort) {
        let mut cur = self.entry.write().unwrap_or_else(|p| p.into_inner());
        if !cur.same_port(&entry) {
            self.next.store(0, Ordering::Relaxed);
            self.affinities().clients.clear();
        } else if entry.affinity_timeout.is_none() {
            self.affinities().clients.clear();
        }
        *cur = Arc::new(entry);
    }

    /// The backends a connection from `client` tries, in order, at most `max` of them:
    /// - with affinity: the client's endpoint if it is still usable and its timeout has not
    ///   passed, then the others by rendezvous order (all of them by rendezvous order when
    ///   the client has no endpoint);
    /// - otherwise: the usable endpoints from the round-robin's next one on.
    pub fn plan(&self, client: Ipv4Addr, now: Instant, max: usize) -> Vec<SocketAddrV4> {
        let entry = self.entry();
        let usable = entry.usable();
        if usable.is_empty() {
            return Vec::new();
        }
        let max = max.max(1);
        match entry.affinity_timeout {
            Some(timeout) => {
                let mut order = rendezvous_order(client, &usable);
                let sticky = self.affinities().clients.get(&client).copied();
                if let Some(s) = sticky.filter(|s| now.saturating_duration_since(s.last) < timeout)
                {
                    if let Some(i) = order.iter().position(|&b| b == s.backend) {
                        let b = order.remove(i);
                        order.insert(0, b);
                    }
                }
                order.truncate(max);
                order
            }
            None => {
                let start = self.next.fetch_add(1, Ordering::Relaxed) % usable.len();
                (0..usable.len().min(max))
                    .map(|i| usable[(start + i) % usable.len()])
                    .collect()
            }
        }
    }

    /// Records that `client` connected to `backend` (with affinity: its endpoint from now on,
    /// its timeout counted from `now`).
    pub fn connected(&self, client: Ipv4Addr, backend: SocketAddrV4, now: Instant) {
        let Some(timeout) = self.entry().affinity_timeout else {
            return;
        };
        let mut aff = self.affinities();
        aff.clients.insert(client, Sticky { backend, last: now });
        aff.inserts += 1;
        if aff.inserts >= AFFINITY_SWEEP_EVERY {
            aff.inserts = 0;
            aff.clients
                .retain(|_, s| now.saturating_duration_since(s.last) < timeout);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Forwarding
// ---------------------------------------------------------------------------------------

/// A listening Service port.
struct Listener {
    state: Arc<PortState>,
    task: JoinHandle<()>,
}

/// What one [`ServiceProxy::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Listeners opened.
    pub opened: usize,
    /// Listeners closed.
    pub closed: usize,
    /// Listeners that could not be opened (tried again at the next apply).
    pub failed: usize,
}

/// The forwarding half of the proxy: listeners for the addresses of a [`ProxyTable`], each
/// forwarding its connections to the backends the table holds at the moment of the accept.
/// Dropping it closes the listeners and the connections it forwards, as
/// [`ServiceProxy::shutdown`] does.
pub struct ServiceProxy {
    options: Arc<ProxyOptions>,
    listeners: HashMap<SocketAddrV4, Listener>,
    /// Addresses of the last table that have no listener (their bind failed).
    pending: usize,
    /// Turns true to close the forwarded connections.
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for ServiceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProxy")
            .field("listeners", &self.listeners.len())
            .field("pending", &self.pending)
            .finish()
    }
}

impl ServiceProxy {
    /// A proxy that serves nothing yet.
    pub fn new(options: ProxyOptions) -> ServiceProxy {
        let (closing, _) = watch::channel(false);
        ServiceProxy {
            options: Arc::new(options),
            listeners: HashMap::new(),
            pending: 0,
            closing,
        }
    }

    /// Makes the listeners match `table`: opens the missing ones, closes those the table no
    /// longer has (their established connections go on), and gives every listener its new
    /// entry, which the next accept uses. Returns once the closed listeners' sockets are
    /// closed. Must be called inside a tokio runtime.
    pub async fn apply(&mut self, table: &ProxyTable) -> ApplyReport {
        let mut report = ApplyReport::default();
        let gone: Vec<SocketAddrV4> = self
            .listeners
            .keys()
            .filter(|a| !table.ports.contains_key(a))
            .copied()
            .collect();
        for addr in gone {
            if let Some(l) = self.listeners.remove(&addr) {
                close(l).await;
                report.closed += 1;
            }
        }
        for (addr, entry) in &table.ports {
            if let Some(l) = self.listeners.get(addr) {
                l.state.update(entry.clone());
                continue;
            }
            match bind(*addr) {
                Ok(listener) => {
                    let state = Arc::new(PortState::new(entry.clone()));
                    let task = tokio::spawn(accept_loop(
                        listener,
                        state.clone(),
                        self.options.clone(),
                        self.closing.subscribe(),
                    ));
                    self.listeners.insert(*addr, Listener { state, task });
                    report.opened += 1;
                }
                Err(e) => {
                    tracing::warn!(
                        error_kind = ?e.kind(),
                        os_error = e.raw_os_error(),
                        "proxy: cannot listen on a Service address; will retry"
                    );
                    report.failed += 1;
                }
            }
        }
        self.pending = report.failed;
        report
    }

    /// The addresses listened on.
    pub fn listening(&self) -> Vec<SocketAddrV4> {
        let mut v: Vec<SocketAddrV4> = self.listeners.keys().copied().collect();
        v.sort();
        v
    }

    /// Whether some address of the last table has no listener.
    pub fn has_pending(&self) -> bool {
        self.pending > 0
    }

    /// The state of the Service port served on `addr`.
    pub fn port_state(&self, addr: SocketAddrV4) -> Option<Arc<PortState>> {
        self.listeners.get(&addr).map(|l| l.state.clone())
    }

    /// Closes every listener and every forwarded connection; returns once the listening
    /// sockets are closed.
    pub async fn shutdown(mut self) {
        self.closing.send_replace(true);
        for (_, l) in self.listeners.drain() {
            close(l).await;
        }
    }
}

impl Drop for ServiceProxy {
    fn drop(&mut self) {
        self.closing.send_replace(true);
        for (_, l) in self.listeners.drain() {
            l.task.abort();
        }
    }
}

/// Stops a listener's task and waits until it is gone (and its socket closed with it).
async fn close(l: Listener) {
    l.task.abort();
    let _ = l.task.await;
}

/// A listening socket on `addr` that shares the address with the other agents' (see the
/// module docs).
fn bind(addr: SocketAddrV4) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(SocketAddr::V4(addr))?;
    socket.listen(1024)
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<PortState>,
    options: Arc<ProxyOptions>,
    closing: watch::Receiver<bool>,
) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                let SocketAddr::V4(peer) = peer else {
                    continue;
                };
                tokio::spawn(forward(
                    client,
                    *peer.ip(),
                    state.clone(),
                    options.clone(),
                    closing.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted:
                // wait a little rather than spin.
                tracing::warn!(error_kind = ?e.kind(), "proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Connects to `backend`, from `source` when given (and bindable).
async fn connect(backend: SocketAddrV4, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        // The client's address is a local one (loopback): reuse it so the backend sees the
        // caller. If it cannot be bound the kernel picks the source, as it would anyway.
        let _ = socket.bind(SocketAddr::V4(SocketAddrV4::new(ip, 0)));
    }
    let stream = socket.connect(SocketAddr::V4(backend)).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Forwards one accepted connection.
async fn forward(
    mut client: TcpStream,
    client_ip: Ipv4Addr,
    state: Arc<PortState>,
    options: Arc<ProxyOptions>,
    mut closing: watch::Receiver<bool>,
) {
    let _ = client.set_nodelay(true);
    let now = Instant::now();
    let plan = state.plan(client_ip, now, options.max_attempts);
    if plan.is_empty() {
        tracing::debug!("proxy: no usable endpoint; closing the connection");
        return;
    }
    let source = (options.preserve_client_ip && client_ip.is_loopback()).then_some(client_ip);
    let mut backend = None;
    for (i, &b) in plan.iter().enumerate() {
        match tokio::time::timeout(options.connect_timeout, connect(b, source)).await {
            Ok(Ok(stream)) => {
                state.connected(client_ip, b, now);
                backend = Some(stream);
                break;
            }
            Ok(Err(e)) => {
                tracing::debug!(attempt = i + 1, error_kind = ?e.kind(), "proxy: endpoint refused");
            }
            Err(_) => tracing::debug!(attempt = i + 1, "proxy: endpoint did not answer in time"),
        }
    }
    let Some(mut backend) = backend else {
        tracing::debug!(
            attempts = plan.len(),
            "proxy: no endpoint answered; closing the connection"
        );
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut backend) => {}
        _ = closing.wait_for(|c| *c) => {}
    }
}

// ---------------------------------------------------------------------------------------
// The control loop
// ---------------------------------------------------------------------------------------

/// Runs the proxy until `stop` turns true (or its sender goes): watches Services and
/// EndpointSlices, keeps the listeners in line with them, and on stop closes the listeners
/// and the forwarded connections. Must be called inside a tokio runtime.
pub async fn run(registry: Registry, options: ProxyOptions, mut stop: watch::Receiver<bool>) {
    let (Some(services_res), Some(slices_res)) = (
        resources::find("", "v1", "services"),
        resources::find("discovery.k8s.io", "v1", "endpointslices"),
    ) else {
        tracing::error!("proxy: the resource table has no services or endpointslices");
        return;
    };
    let stopped = *stop.borrow_and_update();
    if stopped {
        return;
    }
    let not_other_proxy: Selector = Arc::new(|svc: &Value| {
        svc.pointer("/metadata/labels")
            .and_then(|l| l.get(SERVICE_PROXY_NAME_LABEL))
            .is_none()
    });
    let (services, mut service_events) =
        Informer::start(registry.clone(), services_res, None, Some(not_other_proxy));
    let (slices, mut slice_events) = Informer::start(registry, slices_res, None, None);
    let retry_every = options.retry_interval.max(Duration::from_millis(100));
    let mut proxy = ServiceProxy::new(options);
    let mut retry = tokio::time::interval(retry_every);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut logged_skips: HashSet<ServiceKey> = HashSet::new();
    let mut table = ProxyTable::default();

    loop {
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            e = service_events.recv() => {
                if e.is_none() { break; }
                drain(&mut service_events);
            }
            e = slice_events.recv() => {
                if e.is_none() { break; }
                drain(&mut slice_events);
            }
            _ = retry.tick() => {
                if proxy.has_pending() {
                    let report = proxy.apply(&table).await;
                    if report.opened > 0 {
                        tracing::info!(opened = report.opened, "proxy: opened listeners on retry");
                    }
                }
                continue;
            }
        }
        // Every event rebuilds the table, once both caches hold their initial lists (the
        // second `Synced` event is the first to get past this).
        if !services.has_synced() || !slices.has_synced() {
            continue;
        }
        let svc_list = services.list();
        let slice_list = slices.list();
        table = ProxyTable::build(
            svc_list.iter().map(|v| v.as_ref()),
            slice_list.iter().map(|v| v.as_ref()),
        );
        for (key, reason) in &table.skipped {
            if logged_skips.insert(key.clone()) {
                tracing::debug!(reason = reason.as_str(), "proxy: not serving a Service");
            }
        }
        logged_skips.retain(|k| table.skipped.contains_key(k));
        let report = proxy.apply(&table).await;
        if report.opened + report.closed + report.failed > 0 {
            tracing::info!(
                ports = table.ports.len(),
                opened = report.opened,
                closed = report.closed,
                failed = report.failed,
                "proxy: listeners updated"
            );
        }
    }
    proxy.shutdown().await;
    tracing::info!("proxy: stopped");
}

/// Takes the events already queued (the table is rebuilt once for all of them).
fn drain(events: &mut mpsc::Receiver<InformerEvent>) {
    while events.try_recv().is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    fn svc(ns: &str, name: &str, ip: &str, ports: Value) -> Value {
        json!({"metadata": {"namespace": ns, "name": name},
               "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": ports}})
    }

    fn slice(ns: &str, name: &str, svc: &str, ports: Value, endpoints: Value) -> Value {
        json!({"metadata": {"namespace": ns, "name": name,
                            "labels": {SERVICE_NAME_LABEL: svc}},
               "addressType": "IPv4", "ports": ports, "endpoints": endpoints})
    }

    fn ep(ip: &str, ready: Option<bool>, serving: Option<bool>, term: Option<bool>) -> Value {
        let mut c = serde_json::Map::new();
        for (k, v) in [
            ("ready", ready),
            ("serving", serving),
            ("terminating", term),
        ] {
            if let Some(v) = v {
                c.insert(k.into(), json!(v));
            }
        }
        json!({"addresses": [ip], "conditions": c})
    }

    fn ready(ip: &str) -> Value {
        ep(ip, Some(true), Some(true), Some(false))
    }

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().expect("socket address")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_proxy_task_can_be_spawned() {
        fn is_send<T: Send + 'static>(_: &T) {}
        let _ = |registry: Registry, stop: watch::Receiver<bool>| {
            let f = run(registry, ProxyOptions::default(), stop);
            is_send(&f);
        };
    }

    // ---------------------------------------------------------------- the table

    #[test]
    fn the_table_joins_service_ports_to_slice_ports_by_name() {
        let s = svc(
            "d",
            "web",
            "127.2.0.10",
            json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                   {"name": "admin", "port": 81, "targetPort": "admin"},
                   {"name": "dns", "port": 53, "protocol": "UDP"}]),
        );
        let a = slice(
            "d",
            "web-a",
            "web",
            json!([{"name": "http", "port": 8080, "protocol": "TCP"},
                   {"name": "admin", "port": 9090}]),
            json!([ready("127.1.0.2"), ep("127.1.0.1", None, None, None)]),
        );
        // Another Service's slice, and one in another namespace: not ours.
        let b = slice(
            "d",
            "other-a",
            "other",
            json!([{"name": "http", "port": 1}]),
            json!([ready("127.1.9.9")]),
        );
        let c = slice(
            "e",
            "web-a",
            "web",
            json!([{"name": "http", "port": 1}]),
            json!([ready("127.1.9.8")]),
        );
        let t = ProxyTable::build([&s], [&a, &b, &c]);
        assert_eq!(
            t.ports.keys().copied().collect::<Vec<_>>(),
            vec![sa("127.2.0.10:80"), sa("127.2.0.10:81")]
        );
        let http = &t.ports[&sa("127.2.0.10:80")];
        assert_eq!(
            (http.namespace.as_str(), http.service.as_str()),
            ("d", "web")
        );
        assert_eq!(http.port_name, "http");
        assert_eq!(
            http.usable(),
            vec![sa("127.1.0.1:8080"), sa("127.1.0.2:8080")]
        );
        assert_eq!(
            t.ports[&sa("127.2.0.10:81")].usable(),
            vec![sa("127.1.0.1:9090"), sa("127.1.0.2:9090")]
        );
        assert!(t.skipped.is_empty());
    }

    #[test]
    fn unnamed_ports_match_slices_without_a_port_name() {
        let s = svc("d", "one", "127.2.0.11", json!([{"port": 80}]));
        let a = slice(
            "d",
            "one-x",
            "one",
            json!([{"port": 8080, "protocol": "TCP"}]),
            json!([ready("127.1.0.3")]),
        );
        let t = ProxyTable::build([&s], [&a]);
        assert_eq!(
            t.ports[&sa("127.2.0.11:80")].usable(),
            vec![sa("127.1.0.3:8080")]
        );
    }

    #[test]
    fn services_that_cannot_be_served_are_skipped_with_a_reason() {
        let mut external = svc("d", "ext", "", json!([{"port": 80}]));
        external["spec"]["type"] = json!("ExternalName");
        let headless = svc("d", "hl", "None", json!([{"port": 80}]));
        let remote = svc("d", "remote", "10.96.0.1", json!([{"port": 80}]));
        let v6 = svc("d", "v6", "::1", json!([{"port": 80}]));
        let mut other = svc("d", "other", "127.2.0.1", json!([{"port": 80}]));
        other["metadata"]["labels"] = json!({SERVICE_PROXY_NAME_LABEL: "someone"});
        let mut node_port = svc("d", "np", "127.2.0.2", json!([{"port": 80}]));
        node_port["spec"]["type"] = json!("NodePort");
        let first = svc(
            "a",
            "first",
            "127.2.0.3",
            json!([{"port": 80}, {"port": 81}]),
        );
        let dup = svc("b", "dup", "127.2.0.3", json!([{"port": 80}, {"port": 82}]));
        let odd = json!({"metadata": {"name": 5}, "spec": {"clusterIP": 7, "ports": "x"}});
        let t = ProxyTable::build(
            [
                &dup, &external, &headless, &remote, &v6, &other, &node_port, &first, &odd,
            ],
            [&odd],
        );
        let reason = |ns: &str, n: &str| t.skipped.get(&(ns.to_string(), n.to_string())).copied();
        assert_eq!(reason("d", "ext"), Some(SkipReason::Type));
        assert_eq!(reason("d", "hl"), Some(SkipReason::Headless));
        assert_eq!(reason("d", "remote"), Some(SkipReason::NotLoopback));
        assert_eq!(reason("d", "v6"), Some(SkipReason::NotLoopback));
        assert_eq!(reason("d", "other"), Some(SkipReason::OtherProxy));
        assert_eq!(reason("d", "np"), None);
        assert_eq!(reason("b", "dup"), Some(SkipReason::Conflict));
        assert_eq!(
            t.ports.keys().copied().collect::<Vec<_>>(),
            vec![
                sa("127.2.0.2:80"),
                sa("127.2.0.3:80"),
                sa("127.2.0.3:81"),
                sa("127.2.0.3:82")
            ]
        );
        assert_eq!(t.ports[&sa("127.2.0.3:80")].service, "first");
        assert_eq!(t.ports[&sa("127.2.0.3:82")].service, "dup");
    }

    #[test]
    fn not_ready_endpoints_are_not_usable_and_terminating_ones_are_the_fallback() {
        let s = svc("d", "w", "127.2.0.12", json!([{"port": 80}]));
        let mixed = slice(
            "d",
            "w-1",
            "w",
            json!([{"port": 8080}]),
            json!([
                ready("127.1.0.1"),
                ep("127.1.0.2", Some(false), Some(false), Some(false)),
                ep("127.1.0.3", Some(false), Some(true), Some(true)),
            ]),
        );
        let t = ProxyTable::build([&s], [&mixed]);
        let p = &t.ports[&sa("127.2.0.12:80")];
        assert_eq!(p.backends.len(), 3);
        // A ready endpoint exists: terminating ones are not used.
        assert_eq!(p.usable(), vec![sa("127.1.0.1:8080")]);

        let draining = slice(
            "d",
            "w-1",
            "w",
            json!([{"port": 8080}]),
            json!([
                ep("127.1.0.2", Some(false), Some(false), Some(false)),
                ep("127.1.0.3", Some(false), Some(true), Some(true)),
                ep("127.1.0.4", Some(false), Some(false), Some(true)),
                ep("127.1.0.5", Some(false), None, Some(true)),
            ]),
        );
        let t = ProxyTable::build([&s], [&draining]);
        assert_eq!(
            t.ports[&sa("127.2.0.12:80")].usable(),
            vec![sa("127.1.0.3:8080"), sa("127.1.0.5:8080")]
        );
    }

    #[test]
    fn an_endpoint_in_two_slices_counts_once_and_ready_wins() {
        let s = svc("d", "w", "127.2.0.13", json!([{"port": 80}]));
        let a = slice(
            "d",
            "w-a",
            "w",
            json!([{"port": 8080}]),
            json!([ep("127.1.0.1", Some(false), Some(false), Some(false))]),
        );
        let b = slice(
            "d",
            "w-b",
            "w",
            json!([{"port": 8080}]),
            json!([ready("127.1.0.1"), {"addresses": ["not-an-ip"]}, {"addresses": []}]),
        );
        let mut v6 = slice(
            "d",
            "w-c",
            "w",
            json!([{"port": 8080}]),
            json!([ready("127.1.0.9")]),
        );
        v6["addressType"] = json!("IPv6");
        for order in [[&a, &b, &v6], [&b, &a, &v6]] {
            let t = ProxyTable::build([&s], order);
            let p = &t.ports[&sa("127.2.0.13:80")];
            assert_eq!(p.backends.len(), 1);
            assert_eq!(p.usable(), vec![sa("127.1.0.1:8080")]);
        }
    }

    #[test]
    fn affinity_timeouts_default_and_are_bounded() {
        let mut s = svc("d", "w", "127.2.0.14", json!([{"port": 80}]));
        assert_eq!(affinity_timeout(&s), None);
        s["spec"]["sessionAffinity"] = json!("ClientIP");
        assert_eq!(affinity_timeout(&s), Some(DEFAULT_AFFINITY_TIMEOUT));
        s["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 30}});
        assert_eq!(affinity_timeout(&s), Some(Duration::from_secs(30)));
        s["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": -4}});
        assert_eq!(affinity_timeout(&s), Some(DEFAULT_AFFINITY_TIMEOUT));
        s["spec"]["sessionAffinity"] = json!("None");
        assert_eq!(affinity_timeout(&s), None);
    }

    // ---------------------------------------------------------------- backend choice

    fn port_with(backends: &[(&str, bool)], affinity: Option<Duration>) -> ServicePort {
        ServicePort {
            namespace: "d".into(),
            service: "w".into(),
            port_name: String::new(),
            affinity_timeout: affinity,
            backends: backends
                .iter()
                .map(|&(a, ready)| Backend {
                    addr: sa(a),
                    ready,
                    serving: ready,
                    terminating: false,
                })
                .collect(),
        }
    }

    #[test]
    fn round_robin_rotates_over_usable_endpoints_and_plans_failover() {
        let st = PortState::new(port_with(
            &[
                ("127.1.0.1:1", true),
                ("127.1.0.2:1", false),
                ("127.1.0.3:1", true),
            ],
            None,
        ));
        let now = Instant::now();
        let c = ip("127.0.0.1");
        assert_eq!(
            st.plan(c, now, 3),
            vec![sa("127.1.0.1:1"), sa("127.1.0.3:1")]
        );
        assert_eq!(
            st.plan(c, now, 3),
            vec![sa("127.1.0.3:1"), sa("127.1.0.1:1")]
        );
        assert_eq!(st.plan(c, now, 1), vec![sa("127.1.0.1:1")]);
        st.update(port_with(&[("127.1.0.2:1", false)], None));
        assert!(st.plan(c, now, 3).is_empty());
    }

    #[test]
    fn rendezvous_order_is_stable_and_spreads_clients() {
        let backends: Vec<SocketAddrV4> = (1..=4)
            .map(|i| SocketAddrV4::new(Ipv4Addr::new(127, 1, 0, i), 80))
            .collect();
        let mut firsts = HashSet::new();
        for c in 1..=64u8 {
            let client = Ipv4Addr::new(127, 9, 0, c);
            let order = rendezvous_order(client, &backends);
            assert_eq!(order.len(), 4);
            // The order does not depend on the input's order.
            let mut rev = backends.clone();
            rev.reverse();
            assert_eq!(rendezvous_order(client, &rev), order);
            // Removing an endpoint only moves the clients that had it.
            let without: Vec<SocketAddrV4> = backends
                .iter()
                .copied()
                .filter(|&b| b != order[3])
                .collect();
            assert_eq!(rendezvous_order(client, &without)[0], order[0]);
            firsts.insert(order[0]);
        }
        assert_eq!(firsts.len(), 4, "64 clients should reach every endpoint");
        // A fixed value: agents built from other releases must agree.
        assert_eq!(
            rendezvous_weight(ip("127.0.0.1"), sa("127.1.0.1:80")),
            7_362_807_568_835_512_259
        );
    }

    #[test]
    fn affinity_sticks_until_the_timeout_or_the_endpoint_goes() {
        let timeout = Duration::from_secs(10);
        let all = [
            ("127.1.0.1:1", true),
            ("127.1.0.2:1", true),
            ("127.1.0.3:1", true),
        ];
        let st = PortState::new(port_with(&all, Some(timeout)));
        let c = ip("127.9.0.1");
        let t0 = Instant::now();
        let order = rendezvous_order(c, &st.entry().usable());
        assert_eq!(st.plan(c, t0, 3), order);
        // Pin the client to its last choice, as if the first two refused.
        st.connected(c, order[2], t0);
        assert_eq!(st.plan(c, t0 + Duration::from_secs(9), 1), vec![order[2]]);
        st.connected(c, order[2], t0 + Duration::from_secs(9));
        // The timeout counts from the last connection.
        assert_eq!(st.plan(c, t0 + Duration::from_secs(18), 1), vec![order[2]]);
        assert_eq!(st.plan(c, t0 + Duration::from_secs(19), 1), vec![order[0]]);
        // The endpoint turns not ready: the client moves on.
        let gone: Vec<(&str, bool)> = all
            .iter()
            .map(|&(a, r)| (a, r && sa(a) != order[2]))
            .collect();
        st.update(port_with(&gone, Some(timeout)));
        assert_eq!(st.plan(c, t0 + Duration::from_secs(10), 1), vec![order[0]]);
        // Affinity turned off forgets the clients.
        st.connected(c, order[1], t0);
        st.update(port_with(&all, None));
        st.update(port_with(&all, Some(timeout)));
        assert_eq!(st.plan(c, t0, 1), vec![order[0]]);
    }

    // ---------------------------------------------------------------- real TCP

    /// A backend: answers each connection with its id and a newline, then echoes.
    async fn backend(addr: SocketAddrV4, id: &'static str) -> io::Result<JoinHandle<()>> {
        let listener = TcpListener::bind(addr).await?;
        Ok(tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if s.write_all(format!("{id}\n").as_bytes()).await.is_err() {
                        return;
                    }
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        }))
    }

    /// Backends on `127.93.<net>.<i>` sharing one port; returns the port.
    async fn backends(net: u8, ids: &[&'static str]) -> (u16, Vec<JoinHandle<()>>) {
        for _ in 0..20 {
            let first = SocketAddrV4::new(Ipv4Addr::new(127, 93, net, 1), 0);
            let Ok(l) = std::net::TcpListener::bind(first) else {
                continue;
            };
            let port = match l.local_addr() {
                Ok(a) => a.port(),
                Err(_) => continue,
            };
            drop(l);
            let mut tasks = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let a = SocketAddrV4::new(Ipv4Addr::new(127, 93, net, i as u8 + 1), port);
                match backend(a, id).await {
                    Ok(t) => tasks.push(t),
                    Err(_) => break,
                }
            }
            if tasks.len() == ids.len() {
                return (port, tasks);
            }
            tasks.iter().for_each(|t| t.abort());
        }
        panic!("could not bind test backends");
    }

    fn backend_ip(net: u8, i: u8) -> String {
        format!("127.93.{net}.{i}")
    }

    fn frontend(net: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(127, 94, net, 1), 7000)
    }

    /// The table of one Service on `frontend(net)` with these endpoints.
    fn table(net: u8, port: u16, endpoints: Vec<Value>, affinity: Option<u64>) -> ProxyTable {
        let mut s = svc(
            "d",
            "w",
            &frontend(net).ip().to_string(),
            json!([{"name": "p", "port": frontend(net).port()}]),
        );
        if let Some(t) = affinity {
            s["spec"]["sessionAffinity"] = json!("ClientIP");
            s["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": t}});
        }
        let sl = slice(
            "d",
            "w-1",
            "w",
            json!([{"name": "p", "port": port}]),
            json!(endpoints),
        );
        ProxyTable::build([&s], [&sl])
    }

    /// Connects through the proxy (from `from` when given) and returns the backend's id, or
    /// `None` when the proxy closed the connection.
    async fn ask(addr: SocketAddrV4, from: Option<Ipv4Addr>) -> Option<String> {
        let s = TcpSocket::new_v4().expect("socket");
        if let Some(ip) = from {
            s.bind(SocketAddr::V4(SocketAddrV4::new(ip, 0)))
                .expect("bind client");
        }
        let stream = tokio::time::timeout(Duration::from_secs(5), s.connect(addr.into()))
            .await
            .expect("connect in time")
            .ok()?;
        let mut line = String::new();
        let mut r = BufReader::new(stream);
        let n = tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line))
            .await
            .expect("answer in time")
            .ok()?;
        (n > 0).then(|| line.trim_end().to_string())
    }

    async fn ask_n(addr: SocketAddrV4, n: usize) -> Vec<String> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(ask(addr, None).await.unwrap_or_else(|| "-".into()));
        }
        v
    }

    #[tokio::test]
    async fn connections_go_round_robin_to_ready_endpoints_only() {
        let (port, _b) = backends(1, &["a", "b", "c", "d"]).await;
        let t = table(
            1,
            port,
            vec![
                ready(&backend_ip(1, 1)),
                ep(&backend_ip(1, 2), Some(false), Some(false), Some(false)),
                ready(&backend_ip(1, 3)),
                ep(&backend_ip(1, 4), None, None, None),
            ],
            None,
        );
        let mut proxy = ServiceProxy::new(ProxyOptions::default());
        assert_eq!(
            proxy.apply(&t).await,
            ApplyReport {
                opened: 1,
                ..Default::default()
            }
        );
        assert_eq!(proxy.listening(), vec![frontend(1)]);
        assert_eq!(
            ask_n(frontend(1), 7).await,
            ["a", "c", "d", "a", "c", "d", "a"]
        );
        proxy.shutdown().await;
    }

    #[tokio::test]
    async fn changes_apply_to_the_next_connection_and_spare_established_ones() {
        let (port, _b) = backends(2, &["a", "b", "c"]).await;
        let all = |ready_b: bool| {
            vec![
                ready(&backend_ip(2, 1)),
                ep(&backend_ip(2, 2), Some(ready_b), Some(ready_b), Some(false)),
                ready(&backend_ip(2, 3)),
            ]
        };
        let mut proxy = ServiceProxy::new(ProxyOptions::default());
        proxy.apply(&table(2, port, all(true), None)).await;
        assert_eq!(ask_n(frontend(2), 3).await, ["a", "b", "c"]);

        // An established connection (to "a": the round-robin came round).
        let mut held = BufReader::new(TcpStream::connect(frontend(2)).await.expect("connect"));
        let mut line = String::new();
        held.read_line(&mut line).await.expect("id");
        assert_eq!(line, "a\n");

        // "b" turns not ready: never chosen again.
        proxy.apply(&table(2, port, all(false), None)).await;
        let got = ask_n(frontend(2), 6).await;
        assert!(!got.contains(&"b".to_string()), "{got:?}");
        assert!(got.iter().all(|g| g == "a" || g == "c"), "{got:?}");
        // "a" goes away altogether.
        proxy
            .apply(&table(2, port, vec![ready(&backend_ip(2, 3))], None))
            .await;
        assert_eq!(ask_n(frontend(2), 3).await, ["c", "c", "c"]);

        // The established connection still works.
        held.get_mut().write_all(b"ping\n").await.expect("write");
        line.clear();
        held.read_line(&mut line).await.expect("echo");
        assert_eq!(line, "ping\n");

        // No endpoints: connections are closed.
        proxy.apply(&table(2, port, vec![], None)).await;
        assert_eq!(ask(frontend(2), None).await, None);
        proxy.shutdown().await;
        // Shutting down closes the established connection too.
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(5), held.read_line(&mut line))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn refused_endpoints_are_skipped_for_the_next() {
        let (port, _b) = backends(3, &["a", "b"]).await;
        // 127.93.3.9 has no server: connections to it are refused.
        let t = table(
            3,
            port,
            vec![
                ready(&backend_ip(3, 1)),
                ready(&backend_ip(3, 2)),
                ready(&backend_ip(3, 9)),
            ],
            None,
        );
        let mut proxy = ServiceProxy::new(ProxyOptions::default());
        proxy.apply(&t).await;
        let got = ask_n(frontend(3), 6).await;
        assert_eq!(got, ["a", "b", "a", "a", "b", "a"]);

        // Only dead endpoints: the client is closed after the bounded attempts.
        proxy
            .apply(&table(3, port, vec![ready(&backend_ip(3, 9))], None))
            .await;
        assert_eq!(ask(frontend(3), None).await, None);
    }

    #[tokio::test]
    async fn terminating_serving_endpoints_take_over_when_none_is_ready() {
        let (port, _b) = backends(4, &["a", "b", "c"]).await;
        let t = table(
            4,
            port,
            vec![
                ep(&backend_ip(4, 1), Some(false), Some(false), Some(false)),
                ep(&backend_ip(4, 2), Some(false), Some(true), Some(true)),
                ep(&backend_ip(4, 3), Some(false), Some(false), Some(true)),
            ],
            None,
        );
        let mut proxy = ServiceProxy::new(ProxyOptions::default());
        proxy.apply(&t).await;
        assert_eq!(ask_n(frontend(4), 4).await, ["b", "b", "b", "b"]);
        // A ready endpoint comes back: it takes all the traffic.
        let t = table(
            4,
            port,
            vec![
                ready(&backend_ip(4, 1)),
                ep(&backend_ip(4, 2), Some(false), Some(true), Some(true)),
            ],
            None,
        );
        proxy.apply(&t).await;
        assert_eq!(ask_n(frontend(4), 3).await, ["a", "a", "a"]);
    }

    #[tokio::test]
    async fn client_ip_affinity_sticks_and_expires() {
        let (port, _b) = backends(5, &["a", "b", "c"]).await;
        let addr = |i: u8| SocketAddrV4::new(ip(&backend_ip(5, i)), port);
        // A client whose rendezvous choice among a and b differs from its choice among all
        // three (so it must be c).
        let client = (1..=250u8)
            .map(|i| Ipv4Addr::new(127, 95, 5, i))
            .find(|&c| {
                rendezvous_order(c, &[addr(1), addr(2), addr(3)])[0] == addr(3)
                    && rendezvous_order(c, &[addr(1), addr(2)])[0] == addr(1)
            })
            .expect("some client prefers c, then a");
        let two = vec![ready(&backend_ip(5, 1)), ready(&backend_ip(5, 2))];
        let three = vec![
            ready(&backend_ip(5, 1)),
            ready(&backend_ip(5, 2)),
            ready(&backend_ip(5, 3)),
        ];
        let mut proxy = ServiceProxy::new(ProxyOptions::default());
        proxy.apply(&table(5, port, two, Some(1))).await;
        for _ in 0..4 {
            assert_eq!(ask(frontend(5), Some(client)).await.as_deref(), Some("a"));
        }
        // c appears: the client stays with a while its affinity lasts...
        proxy.apply(&table(5, port, three.clone(), Some(1))).await;
        assert_eq!(ask(frontend(5), Some(client)).await.as_deref(), Some("a"));
        // ...and moves to its rendezvous choice once it expired.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(ask(frontend(5), Some(client)).await.as_deref(), Some("c"));
        assert_eq!(ask(frontend(5), Some(client)).await.as_deref(), Some("c"));
        // Its endpoint turns not ready: it moves at once.
        let mut c_down = three;
        c_down[2] = ep(&backend_ip(5, 3), Some(false), Some(false), Some(false));
        proxy.apply(&table(5, port, c_down, Some(1))).await;
        assert_eq!(ask(frontend(5), Some(client)).await.as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn listeners_follow_services_and_cluster_ips() {
        let (port, _b) = backends(6, &["a"]).await;
        let mut proxy = ServiceProxy::new(ProxyOptions::default());
        proxy
            .apply(&table(6, port, vec![ready(&backend_ip(6, 1))], None))
            .await;
        assert_eq!(ask(frontend(6), None).await.as_deref(), Some("a"));

        // The cluster IP changes: the old address closes, the new one opens.
        let moved = frontend(7);
        let s = svc(
            "d",
            "w",
            &moved.ip().to_string(),
            json!([{"name": "p", "port": moved.port()}]),
        );
        let sl = slice(
            "d",
            "w-1",
            "w",
            json!([{"name": "p", "port": port}]),
            json!([ready(&backend_ip(6, 1))]),
        );
        let report = proxy.apply(&ProxyTable::build([&s], [&sl])).await;
        assert_eq!((report.opened, report.closed), (1, 1));
        assert_eq!(proxy.listening(), vec![moved]);
        assert_eq!(ask(moved, None).await.as_deref(), Some("a"));
        assert!(TcpStream::connect(frontend(6)).await.is_err());

        // The Service goes: nothing listens.
        let report = proxy.apply(&ProxyTable::default()).await;
        assert_eq!(report.closed, 1);
        assert!(proxy.listening().is_empty());
        assert!(TcpStream::connect(moved).await.is_err());
    }

    #[tokio::test]
    async fn two_proxies_share_an_address() {
        let (port, _b) = backends(8, &["a", "b"]).await;
        let t = table(
            8,
            port,
            vec![ready(&backend_ip(8, 1)), ready(&backend_ip(8, 2))],
            None,
        );
        let mut one = ServiceProxy::new(ProxyOptions::default());
        let mut two = ServiceProxy::new(ProxyOptions::default());
        assert_eq!(one.apply(&t).await.opened, 1);
        assert_eq!(two.apply(&t).await.opened, 1);
        let got = ask_n(frontend(8), 20).await;
        assert!(got.iter().all(|g| g == "a" || g == "b"), "{got:?}");
        // One stops: the other serves every connection.
        one.shutdown().await;
        let got = ask_n(frontend(8), 6).await;
        assert!(got.iter().all(|g| g == "a" || g == "b"), "{got:?}");
        two.shutdown().await;
        assert!(TcpStream::connect(frontend(8)).await.is_err());
    }

    #[tokio::test]
    async fn backends_see_a_loopback_client_address() {
        // A backend that answers with the peer address it sees.
        let listener = TcpListener::bind("127.93.9.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            while let Ok((mut s, peer)) = listener.accept().await {
                let _ = s.write_all(format!("{}\n", peer.ip()).as_bytes()).await;
            }
        });
        let mut proxy = ServiceProxy::new(ProxyOptions::default());
        proxy
            .apply(&table(9, port, vec![ready("127.93.9.1")], None))
            .await;
        let client = ip("127.95.9.7");
        assert_eq!(
            ask(frontend(9), Some(client)).await.as_deref(),
            Some("127.95.9.7")
        );
        let mut proxy2 = ServiceProxy::new(ProxyOptions {
            preserve_client_ip: false,
            ..Default::default()
        });
        proxy.shutdown().await;
        proxy2
            .apply(&table(9, port, vec![ready("127.93.9.1")], None))
            .await;
        assert_ne!(
            ask(frontend(9), Some(client)).await.as_deref(),
            Some("127.95.9.7")
        );
        server.abort();
    }
}
