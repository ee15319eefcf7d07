//! A TCP proxy in front of a member's peer port, to cut links between members.
//!
//! Every member of a [`Cluster`](crate::Cluster) has its own loopback address and binds its
//! outgoing peer connections to it, so the proxy in front of member B knows which member a
//! connection comes from. A rule for a source address applies to the connections that
//! address opens to B — the traffic A sends to B on its own streams (and what B answers on
//! those same TCP connections). B's streams to A go through A's proxy. So a rule in B's proxy
//! against A cuts A→B only; cutting both directions takes a rule in each proxy.
//!
//! Two kinds of rules:
//!
//! * [`Proxy::refuse`]: connections from the address are closed at once, open ones are cut.
//!   The sender sees connection errors and reconnects with backoff.
//! * [`Proxy::blackhole`]: connections are still accepted, but every byte in both directions is
//!   read and dropped, and nothing is ever closed: the sender sees its writes succeed and no
//!   answer, as with a network that silently drops packets. Connections that were open when
//!   the rule came lose their bytes from then on; since their HTTP/2 framing is broken, they
//!   are closed when the rule is lifted ([`Proxy::allow_all`]) and the sender reconnects.
//!
//! A proxy may start before it knows its target ([`Proxy::start_untargeted_on`]), so that it
//! can listen (and be advertised) before the member behind it has bound its peer port (port 0).
//! Until [`Proxy::set_target`] gives it one, connections are closed at once, as if refused (a
//! blackholed source is still swallowed: that rule needs no target); peers retry.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the proxy does with connections from one source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkRule {
    /// Close them (refuse new ones, cut open ones).
    Refuse,
    /// Accept them and drop every byte, never closing.
    Blackhole,
}

struct Conn {
    src: IpAddr,
    client: TcpStream,
    upstream: Option<TcpStream>,
    /// Bytes read on this connection are dropped instead of forwarded.
    dropping: Arc<AtomicBool>,
    /// Set by the pipe threads when the connection ended.
    closed: Arc<AtomicBool>,
    /// Where it was forwarded (`None`: a blackhole sink).
    target: Option<SocketAddr>,
}

impl Conn {
    fn cut(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(u) = &self.upstream {
            let _ = u.shutdown(Shutdown::Both);
        }
    }
}

#[derive(Default)]
struct Shared {
    rules: Mutex<HashMap<IpAddr, LinkRule>>,
    /// Where connections are forwarded; `None` until known (connections are then closed).
    target: Mutex<Option<SocketAddr>>,
    conns: Mutex<Vec<Conn>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A TCP proxy that can refuse or blackhole chosen source addresses.
pub struct Proxy {
    /// Where the proxy listens (the member's advertised peer address).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Copies `from` to `to` until either side ends; while `dropping` is set, reads and discards.
fn pipe(mut from: TcpStream, mut to: Option<TcpStream>, dropping: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if dropping.load(Ordering::Relaxed) {
                    continue;
                }
                if let Some(t) = to.as_mut() {
                    if t.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    }
    if let Some(t) = &to {
        let _ = t.shutdown(Shutdown::Both);
    }
    let _ = from.shutdown(Shutdown::Both);
}

impl Proxy {
    /// Listens on `listen` and forwards every connection to `target`.
    pub fn start(listen: SocketAddr, target: SocketAddr) -> Proxy {
        Self::serve(TcpListener::bind(listen).expect("bind proxy"), Some(target))
    }

    /// Listens on a free port of `ip` (bound at once, so nothing can take it meanwhile) and
    /// forwards every connection to `target`.
    pub fn start_on(ip: std::net::Ipv4Addr, target: SocketAddr) -> Proxy {
        Self::serve(crate::bind_free_on(ip), Some(target))
    }

    /// Listens on a free port of `ip` (bound at once) with no target yet: connections are
    /// closed at once until [`Proxy::set_target`] gives one.
    pub fn start_untargeted_on(ip: std::net::Ipv4Addr) -> Proxy {
        Self::serve(crate::bind_free_on(ip), None)
    }

    fn serve(listener: TcpListener, target: Option<SocketAddr>) -> Proxy {
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let shared: Arc<Shared> = Arc::default();
        *lock(&shared.target) = target;
        let s = shared.clone();
        std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, s))
            .expect("spawn proxy thread");
        Proxy { addr, shared }
    }

    /// The member's real peer address behind the proxy, if known.
    pub fn target(&self) -> Option<SocketAddr> {
        *lock(&self.shared.target)
    }

    /// Forwards new connections to `target` from now on (`None`: closes them at once). Open
    /// connections forwarded elsewhere are cut; blackholed ones are left as they are.
    pub fn set_target(&self, target: Option<SocketAddr>) {
        *lock(&self.shared.target) = target;
        cut_forwarded_elsewhere(&self.shared);
    }

    /// Refuses `ip` from now on and cuts its open connections.
    pub fn refuse(&self, ip: IpAddr) {
        lock(&self.shared.rules).insert(ip, LinkRule::Refuse);
        let mut conns = lock(&self.shared.conns);
        conns.retain(|c| {
            if c.src == ip {
                c.cut();
                false
            } else {
                true
            }
        });
    }

    /// The name the existing tests know [`Proxy::refuse`] by.
    pub fn block(&self, ip: IpAddr) {
        self.refuse(ip)
    }

    /// Silently drops every byte from and to `ip` from now on, on open and new connections.
    pub fn blackhole(&self, ip: IpAddr) {
        lock(&self.shared.rules).insert(ip, LinkRule::Blackhole);
        for c in lock(&self.shared.conns).iter() {
            if c.src == ip {
                c.dropping.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> HashMap<IpAddr, LinkRule> {
        lock(&self.shared.rules).clone()
    }

    /// Lifts every rule. Connections whose bytes were being dropped are closed (their streams
    /// lost data), so their senders reconnect.
    pub fn allow_all(&self) {
        lock(&self.shared.rules).clear();
        lock(&self.shared.conns).retain(|c| {
            if c.dropping.load(Ordering::Relaxed) {
                c.cut();
                false
            } else {
                true
            }
        });
    }

    /// The name the existing tests know [`Proxy::allow_all`] by.
    pub fn unblock_all(&self) {
        self.allow_all()
    }

    /// Open connections, by source address (for tests of the proxy itself).
    pub fn open_connections(&self) -> Vec<IpAddr> {
        lock(&self.shared.conns)
            .iter()
            .filter(|c| !c.closed.load(Ordering::Relaxed))
            .map(|c| c.src)
            .collect()
    }
}

/// Cuts the open connections forwarded to another address than the current target.
fn cut_forwarded_elsewhere(s: &Shared) {
    let target = *lock(&s.target);
    lock(&s.conns).retain(|c| {
        if c.target.is_some() && c.target != target {
            c.cut();
            false
        } else {
            true
        }
    });
}

fn accept_loop(listener: TcpListener, s: Arc<Shared>) {
    let mut since_prune = 0u32;
    while !s.stop.load(Ordering::Relaxed) {
        since_prune += 1;
        if since_prune >= 200 {
            since_prune = 0;
            lock(&s.conns).retain(|c| !c.closed.load(Ordering::Relaxed));
        }
        let (client, peer) = match listener.accept() {
            Ok(x) => x,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let rule = lock(&s.rules).get(&peer.ip()).copied();
        if rule == Some(LinkRule::Refuse) {
            drop(client);
            continue;
        }
        let dropping = Arc::new(AtomicBool::new(rule == Some(LinkRule::Blackhole)));
        let closed = Arc::new(AtomicBool::new(false));
        let target = if rule == Some(LinkRule::Blackhole) {
            // A sink: nothing is forwarded, so there is nothing to connect to.
            None
        } else {
            match *lock(&s.target) {
                Some(t) => Some(t),
                // Nowhere to forward to yet: closed as if refused; the sender retries.
                None => continue,
            }
        };
        let upstream = match target {
            None => None,
            Some(target) => match TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                Ok(u) => {
                    let _ = u.set_nodelay(true);
                    Some(u)
                }
                Err(_) => continue,
            },
        };
        let (Ok(c_reg), Ok(c_back)) = (client.try_clone(), client.try_clone()) else {
            continue;
        };
        let u_clones = match &upstream {
            Some(u) => match (u.try_clone(), u.try_clone()) {
                (Ok(a), Ok(b)) => Some((a, b)),
                _ => continue,
            },
            None => None,
        };
        let (u_reg, u_pair) = match u_clones {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        {
            let conn = Conn {
                src: peer.ip(),
                client: c_reg,
                upstream: u_reg,
                dropping: dropping.clone(),
                closed: closed.clone(),
                target,
            };
            let mut conns = lock(&s.conns);
            // `refuse`, `blackhole` and `allow_all` act on the listed connections only: a rule
            // changed while this one was being set up applies to it here, under the same lock.
            match lock(&s.rules).get(&peer.ip()).copied() {
                Some(LinkRule::Refuse) => {
                    conn.cut();
                    continue;
                }
                Some(LinkRule::Blackhole) => dropping.store(true, Ordering::Relaxed),
                // Healed meanwhile: a sink (nothing upstream) must not stay one.
                None if target.is_none() => {
                    conn.cut();
                    continue;
                }
                None => {}
            }
            conns.push(conn);
        }
        // The target changed while this one was connecting: `set_target` may have cut the
        // open connections before this one was listed, so cut it here.
        if target.is_some() && *lock(&s.target) != target {
            cut_forwarded_elsewhere(&s);
        }
        let (d1, d2) = (dropping.clone(), dropping);
        let (cl1, cl2) = (closed.clone(), closed);
        match (upstream, u_pair) {
            (Some(up), Some(up_back)) => {
                std::thread::spawn(move || {
                    pipe(client, Some(up), d1);
                    cl1.store(true, Ordering::Relaxed);
                });
                std::thread::spawn(move || {
                    pipe(up_back, Some(c_back), d2);
                    cl2.store(true, Ordering::Relaxed);
                });
            }
            _ => {
                drop(c_back);
                std::thread::spawn(move || {
                    pipe(client, None, d1);
                    cl1.store(true, Ordering::Relaxed);
                    drop(cl2);
                    drop(d2);
                });
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for c in lock(&self.shared.conns).drain(..) {
            c.cut();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(p: &Proxy) -> TcpStream {
        let s = TcpStream::connect(p.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(400)))
            .expect("timeout");
        s
    }

    /// What reading gives: the bytes, "closed" (EOF or reset), or "nothing" (timed out).
    fn read(s: &mut TcpStream) -> String {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => "closed".into(),
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                "nothing".into()
            }
            Err(_) => "closed".into(),
        }
    }

    #[test]
    fn forwards_blackholes_and_refuses_by_source_address() {
        let proxy = Proxy::start("127.0.0.1:0".parse().expect("addr"), echo_server());
        let me: IpAddr = "127.0.0.1".parse().expect("ip");
        let mut a = connect(&proxy);
        a.write_all(b"ping").expect("write");
        assert_eq!(read(&mut a), "ping");

        // Blackholed: writes succeed, nothing comes back, nothing is closed; new connections
        // are accepted and swallowed the same way.
        proxy.blackhole(me);
        a.write_all(b"lost").expect("write");
        assert_eq!(read(&mut a), "nothing");
        let mut b = connect(&proxy);
        b.write_all(b"lost too").expect("write");
        assert_eq!(read(&mut b), "nothing");
        assert_eq!(proxy.rules().get(&me), Some(&LinkRule::Blackhole));

        // Healed: the connections that lost bytes are closed, new ones work.
        proxy.allow_all();
        assert_eq!(read(&mut a), "closed");
        assert_eq!(read(&mut b), "closed");
        let mut c = connect(&proxy);
        c.write_all(b"back").expect("write");
        assert_eq!(read(&mut c), "back");

        // Refused: open connections are cut, new ones closed at once.
        proxy.refuse(me);
        assert_eq!(read(&mut c), "closed");
        let mut d = connect(&proxy);
        let _ = d.write_all(b"x");
        assert_eq!(read(&mut d), "closed");
        proxy.allow_all();
        let mut e = connect(&proxy);
        e.write_all(b"again").expect("write");
        assert_eq!(read(&mut e), "again");
    }

    #[test]
    fn closes_connections_until_it_has_a_target_and_follows_a_new_one() {
        let proxy = Proxy::start_untargeted_on(std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(proxy.target(), None);
        let mut a = connect(&proxy);
        let _ = a.write_all(b"x");
        assert_eq!(read(&mut a), "closed");

        let first = echo_server();
        proxy.set_target(Some(first));
        assert_eq!(proxy.target(), Some(first));
        let mut b = connect(&proxy);
        b.write_all(b"one").expect("write");
        assert_eq!(read(&mut b), "one");

        // Re-pointed: connections to the old target are cut, new ones reach the new one.
        proxy.set_target(Some(echo_server()));
        assert_eq!(read(&mut b), "closed");
        let mut c = connect(&proxy);
        c.write_all(b"two").expect("write");
        assert_eq!(read(&mut c), "two");

        // Rules still apply; a blackholed source is swallowed even without a target.
        proxy.set_target(None);
        assert_eq!(read(&mut c), "closed");
        proxy.blackhole("127.0.0.1".parse().expect("ip"));
        let mut d = connect(&proxy);
        d.write_all(b"lost").expect("write");
        assert_eq!(read(&mut d), "nothing");
    }
}
