//! Command-line flags. Every flag is spelled as etcd spells it and can also be set from the
//! environment as `CONCORD_<FLAG>` (upper case, `-` becomes `_`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::raft::bootstrap::{parse_initial_cluster, InitialMember};

use clap::Parser;

/// Concord: a Raft-replicated key-value store that speaks etcd's v3 API.
#[derive(Clone, Debug, Parser)]
#[command(name = "concord", version, about)]
pub struct Config {
    /// Human-readable name of this member.
    #[arg(long, env = "CONCORD_NAME", default_value = "default")]
    pub name: String,

    /// Where the member keeps its data. Default: `./<name>.concord`.
    #[arg(long = "data-dir", env = "CONCORD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Comma-separated URLs to serve clients on (http only for now). Port 0 lets the system
    /// pick a free port (see --listen-addresses-file).
    #[arg(
        long = "listen-client-urls",
        env = "CONCORD_LISTEN_CLIENT_URLS",
        default_value = "http://127.0.0.1:2379"
    )]
    pub listen_client_urls: String,

    /// Comma-separated client URLs this member advertises to the cluster. Port 0 stands for
    /// the port a client listener was given (the one with the same host, or the only one).
    /// Default: `http://127.0.0.1:2379`, or, when a --listen-client-urls URL asks for port 0,
    /// the listen URLs with the ports they were given (`0.0.0.0` advertised as `127.0.0.1`).
    #[arg(long = "advertise-client-urls", env = "CONCORD_ADVERTISE_CLIENT_URLS")]
    pub advertise_client_urls: Option<String>,

    /// Comma-separated URLs to listen on for peer traffic. Port 0 lets the system pick a free
    /// port (see --listen-addresses-file).
    #[arg(
        long = "listen-peer-urls",
        env = "CONCORD_LISTEN_PEER_URLS",
        default_value = "http://127.0.0.1:2380"
    )]
    pub listen_peer_urls: String,

    /// Comma-separated peer URLs this member advertises to the rest of the cluster. Port 0
    /// stands for the port a peer listener was given, and is refused unless this member is
    /// alone in a new cluster (other members must know its peer URLs before it starts).
    /// Default: `http://127.0.0.1:2380`, or, when a --listen-peer-urls URL asks for port 0, the
    /// listen URLs with the ports they were given (`0.0.0.0` advertised as `127.0.0.1`).
    #[arg(
        long = "initial-advertise-peer-urls",
        env = "CONCORD_INITIAL_ADVERTISE_PEER_URLS"
    )]
    pub initial_advertise_peer_urls: Option<String>,

    /// Initial cluster configuration, `name=peer-url,...`. Default: this member alone.
    #[arg(long = "initial-cluster", env = "CONCORD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,

    /// `new` to bootstrap a cluster, `existing` to join one.
    #[arg(
        long = "initial-cluster-state",
        env = "CONCORD_INITIAL_CLUSTER_STATE",
        default_value = "new"
    )]
    pub initial_cluster_state: String,

    /// Token that makes cluster and member ids unique per cluster.
    #[arg(
        long = "initial-cluster-token",
        env = "CONCORD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,

    /// Largest client request accepted, in bytes.
    #[arg(
        long = "max-request-bytes",
        env = "CONCORD_MAX_REQUEST_BYTES",
        default_value_t = 1572864
    )]
    pub max_request_bytes: usize,

    /// Most operations allowed in each of a txn's compare, success and failure lists.
    #[arg(
        long = "max-txn-ops",
        env = "CONCORD_MAX_TXN_OPS",
        default_value_t = 128
    )]
    pub max_txn_ops: usize,

    /// Space quota of the store in bytes, as etcd's: past it the member raises the NOSPACE
    /// alarm and writes that add data are refused until an operator frees space and disarms
    /// it. 0 means the default (2 GiB); a negative value disables the quota.
    #[arg(
        long = "quota-backend-bytes",
        env = "CONCORD_QUOTA_BACKEND_BYTES",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub quota_backend_bytes: i64,

    /// Automatic compaction, as etcd's: `periodic` keeps `--auto-compaction-retention` worth
    /// of history (a duration such as 1h or 30m, or a bare number of hours); `revision` keeps
    /// that many revisions. Only the leader compacts.
    #[arg(
        long = "auto-compaction-mode",
        env = "CONCORD_AUTO_COMPACTION_MODE",
        default_value = "periodic"
    )]
    pub auto_compaction_mode: String,

    /// What automatic compaction keeps (see `--auto-compaction-mode`); 0 turns it off.
    #[arg(
        long = "auto-compaction-retention",
        env = "CONCORD_AUTO_COMPACTION_RETENTION",
        default_value = "0"
    )]
    pub auto_compaction_retention: String,

    /// How often the leader compares every member's HashKV with its own, as etcd's: a member
    /// whose hash differs at the same compaction revision gets the CORRUPT alarm. 0 turns the
    /// check off.
    #[arg(
        long = "experimental-corrupt-check-time",
        env = "CONCORD_EXPERIMENTAL_CORRUPT_CHECK_TIME",
        default_value = "0s"
    )]
    pub corrupt_check_time: String,

    /// Raft heartbeat interval in milliseconds (one Raft tick).
    #[arg(
        long = "heartbeat-interval",
        env = "CONCORD_HEARTBEAT_INTERVAL",
        default_value_t = 100
    )]
    pub heartbeat_interval: u64,

    /// Raft election timeout in milliseconds.
    #[arg(
        long = "election-timeout",
        env = "CONCORD_ELECTION_TIMEOUT",
        default_value_t = 1000
    )]
    pub election_timeout: u64,

    /// Applied entries between Raft log compactions.
    #[arg(
        long = "snapshot-count",
        env = "CONCORD_SNAPSHOT_COUNT",
        default_value_t = 100000
    )]
    pub snapshot_count: u64,

    /// How often watchers that asked for progress notifications get one (a Go duration, as
    /// etcd takes it: `10m`, `1m30s`, `500ms`).
    #[arg(
        long = "experimental-watch-progress-notify-interval",
        env = "CONCORD_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m"
    )]
    pub watch_progress_notify_interval: String,

    /// How often the leader records the remaining TTL of every lease through Raft, so a new
    /// leader does not restart leases from their full TTL (etcd keeps this behind
    /// `--experimental-enable-lease-checkpoint`; Concord always does it).
    #[arg(
        long = "experimental-lease-checkpoint-interval",
        env = "CONCORD_LEASE_CHECKPOINT_INTERVAL",
        default_value = "5m"
    )]
    pub lease_checkpoint_interval: String,

    /// Size of one Raft WAL segment file, in bytes (Concord-specific).
    #[arg(long = "wal-segment-size", env = "CONCORD_WAL_SEGMENT_SIZE", default_value_t = 64 * 1024 * 1024)]
    pub wal_segment_size: u64,

    /// Concord only: once every listener is bound, write the addresses they are bound to to
    /// this file, as JSON: `{"client":["127.0.0.1:41234"],"peer":["127.0.0.1:41235"]}` (in the
    /// order of --listen-client-urls and --listen-peer-urls). The file is written under a
    /// temporary name and renamed, so a reader never sees part of it; one left by an earlier
    /// run is removed at start. With port 0 in a listen URL, this is how to learn the port.
    /// Bound is not yet serving: a new member may still be electing a leader.
    #[arg(long = "listen-addresses-file", env = "CONCORD_LISTEN_ADDRESSES_FILE")]
    pub listen_addresses_file: Option<PathBuf>,

    /// Log level, as etcd names them: debug, info, warn, error, panic or fatal (the last two
    /// log errors only); or a tracing filter (`info,concord_server::raft=debug`). `RUST_LOG`
    /// takes precedence when set.
    #[arg(long = "log-level", env = "CONCORD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Where logs go, comma-separated: `stderr`, `stdout`, `default` (stderr) or file paths
    /// (appended to). Colour codes go only to an output that is a terminal.
    #[arg(
        long = "log-outputs",
        env = "CONCORD_LOG_OUTPUTS",
        default_value = "default"
    )]
    pub log_outputs: String,

    /// `console` (human-readable lines) or `json` (one JSON object per line, with etcd's keys:
    /// `level`, `ts`, `caller`, `msg`, then the event's fields), as etcd 3.6's flag. etcd 3.5
    /// logs JSON always; Concord's default is `console`.
    #[arg(
        long = "log-format",
        env = "CONCORD_LOG_FORMAT",
        default_value = "console"
    )]
    pub log_format: String,

    /// etcd's logger choice; only `zap` (structured logging), accepted for compatibility.
    #[arg(long = "logger", env = "CONCORD_LOGGER", default_value = "zap")]
    pub logger: String,

    /// Comma-separated URLs to serve `/metrics` and the health endpoints (`/health`,
    /// `/livez`, `/readyz`) on, over plain HTTP, besides the client URLs. Port 0 lets the system
    /// pick (see --listen-addresses-file, which then lists them under `metrics`).
    #[arg(long = "listen-metrics-urls", env = "CONCORD_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
}

/// A flag value that does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
}

/// A duration as Go writes one: numbers with units `h`, `m`, `s`, `ms`, `us`, `ns`, in any
/// sequence (`1h2m3.5s`).
pub fn parse_go_duration(s: &str) -> Option<std::time::Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        nanos += n * scale;
        rest = tail;
    }
    Some(std::time::Duration::from_nanos(nanos as u64))
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        reason: reason.into(),
    }
}

/// etcd's default space quota.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;

impl Config {
    /// The space quota in bytes; 0 when disabled.
    pub fn quota_backend_bytes(&self) -> u64 {
        match self.quota_backend_bytes {
            0 => DEFAULT_QUOTA_BACKEND_BYTES,
            q if q < 0 => 0,
            q => q as u64,
        }
    }

    /// The data directory, defaulting to `./<name>.concord`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.concord", self.name)))
    }

    /// The socket addresses to serve clients on.
    pub fn client_listen_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        parse_listen_urls("listen-client-urls", &self.listen_client_urls)
    }

    /// The socket addresses to serve peers on.
    pub fn peer_listen_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        parse_listen_urls("listen-peer-urls", &self.listen_peer_urls)
    }

    /// The `--listen-metrics-urls` addresses (none by default).
    pub fn metrics_listen_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        match self.listen_metrics_urls.as_deref().map(str::trim) {
            None | Some("") => Ok(Vec::new()),
            Some(list) => parse_listen_urls("listen-metrics-urls", list),
        }
    }

    /// The initial members; by default this member alone. This member must be listed under its
    /// name with exactly its advertised peer URLs.
    pub fn initial_cluster(&self) -> Result<Vec<InitialMember>, ConfigError> {
        let own = self.advertise_peer_urls();
        let text = match &self.initial_cluster {
            Some(c) => c.clone(),
            None => own
                .iter()
                .map(|u| format!("{}={u}", self.name))
                .collect::<Vec<_>>()
                .join(","),
        };
        let members = parse_initial_cluster(&text).map_err(|e| invalid("initial-cluster", e))?;
        let mine = members.iter().find(|m| m.name == self.name);
        let same = mine.is_some_and(|m| {
            let mut a = m.peer_urls.clone();
            let mut b = own.clone();
            a.sort();
            b.sort();
            a == b
        });
        if !same {
            return Err(invalid(
                "initial-cluster",
                format!(
                    "it must list this member (--name {}) with its --initial-advertise-peer-urls \
                     ({})",
                    self.name,
                    own.join(",")
                ),
            ));
        }
        Ok(members)
    }

    /// Whether this member joins an existing cluster (`--initial-cluster-state existing`).
    pub fn joins_existing(&self) -> bool {
        self.initial_cluster_state == "existing"
    }

    /// The client URLs this member advertises. Before [`Config::with_bound_ports`], a URL may
    /// still name port 0.
    pub fn advertise_client_urls(&self) -> Vec<String> {
        advertised(
            self.advertise_client_urls.as_deref(),
            &self.listen_client_urls,
            "http://127.0.0.1:2379",
        )
    }

    /// The peer URLs this member advertises. Before [`Config::with_bound_ports`], a URL may
    /// still name port 0.
    pub fn advertise_peer_urls(&self) -> Vec<String> {
        advertised(
            self.initial_advertise_peer_urls.as_deref(),
            &self.listen_peer_urls,
            "http://127.0.0.1:2380",
        )
    }

    /// This configuration with every port 0 replaced by the port actually bound: `client` and
    /// `peer` are the addresses of the listeners, in the order of `--listen-client-urls` and
    /// `--listen-peer-urls` (for a URL with a fixed port, its own address). The listen URLs,
    /// the advertised URLs and this member's own entry in `--initial-cluster` change; the
    /// result names no port 0.
    pub fn with_bound_ports(
        &self,
        client: &[SocketAddr],
        peer: &[SocketAddr],
    ) -> Result<Config, ConfigError> {
        let flag = "advertise-client-urls";
        let client_urls = fill_ports(flag, &self.advertise_client_urls(), client)?;
        let flag = "initial-advertise-peer-urls";
        let own_before = self.advertise_peer_urls();
        let peer_urls = fill_ports(flag, &own_before, peer)?;
        let mut c = self.clone();
        let listen = |addrs: &[SocketAddr]| {
            addrs
                .iter()
                .map(|a| format!("http://{a}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        c.listen_client_urls = listen(client);
        c.listen_peer_urls = listen(peer);
        c.advertise_client_urls = Some(client_urls.join(","));
        c.initial_advertise_peer_urls = Some(peer_urls.join(","));
        if peer_urls != own_before && self.initial_cluster.is_some() {
            // validate() allows port 0 here only when this member is alone in the cluster.
            c.initial_cluster = Some(
                peer_urls
                    .iter()
                    .map(|u| format!("{}={u}", self.name))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        Ok(c)
    }

    /// Port 0 in an advertised peer URL is only known once this member has bound its peer
    /// listener, too late for anyone else to have it in their `--initial-cluster`.
    fn check_peer_port_zero(&self) -> Result<(), ConfigError> {
        let flag = "initial-advertise-peer-urls";
        let Some(url) = self
            .advertise_peer_urls()
            .into_iter()
            .find(|u| url_port(u) == Some(0))
        else {
            return Ok(());
        };
        let others: Vec<String> = self
            .initial_cluster
            .as_deref()
            .and_then(|c| parse_initial_cluster(c).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.name != self.name)
            .map(|m| m.name)
            .collect();
        if !others.is_empty() {
            return Err(invalid(
                flag,
                format!(
                    "{url}: port 0 is only allowed for a single-member cluster, but \
                     --initial-cluster also lists {}, which must know this member's peer URL \
                     before it starts: give the port",
                    others.join(", ")
                ),
            ));
        }
        if self.joins_existing() {
            return Err(invalid(
                flag,
                format!(
                    "{url}: port 0 cannot join an existing cluster (--initial-cluster-state \
                     existing): the cluster must know the peer URL from `member add`: give the \
                     port"
                ),
            ));
        }
        Ok(())
    }

    pub fn watch_progress_interval(&self) -> Result<std::time::Duration, ConfigError> {
        let d = parse_go_duration(&self.watch_progress_notify_interval).ok_or_else(|| {
            invalid(
                "experimental-watch-progress-notify-interval",
                "not a duration (e.g. 10m, 30s, 500ms)",
            )
        })?;
        if d.is_zero() {
            return Err(invalid(
                "experimental-watch-progress-notify-interval",
                "must be positive",
            ));
        }
        Ok(d)
    }

    pub fn lease_checkpoint_every(&self) -> Result<std::time::Duration, ConfigError> {
        let flag = "experimental-lease-checkpoint-interval";
        let d = parse_go_duration(&self.lease_checkpoint_interval)
            .ok_or_else(|| invalid(flag, "not a duration (e.g. 5m, 30s)"))?;
        if d.is_zero() {
            return Err(invalid(flag, "must be positive"));
        }
        Ok(d)
    }

    /// The automatic compaction asked for, if any.
    pub fn auto_compaction(&self) -> Result<Option<crate::compactor::Retention>, ConfigError> {
        use crate::compactor::Retention;
        let flag = "auto-compaction-retention";
        let r = self.auto_compaction_retention.trim();
        match self.auto_compaction_mode.as_str() {
            "periodic" => {
                // etcd reads a bare number as hours.
                let d = match r.parse::<u64>() {
                    Ok(hours) => Some(std::time::Duration::from_secs(hours.saturating_mul(3600))),
                    Err(_) => parse_go_duration(r),
                }
                .ok_or_else(|| invalid(flag, "not a duration (e.g. 1h, 30m) or hours"))?;
                Ok((!d.is_zero()).then_some(Retention::Periodic(d)))
            }
            "revision" => {
                let n = r
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| invalid(flag, "not a number of revisions"))?;
                Ok((n > 0).then_some(Retention::Revisions(n)))
            }
            _ => Err(invalid(
                "auto-compaction-mode",
                "must be 'periodic' or 'revision'",
            )),
        }
    }

    /// The corruption check's period, if it is on.
    pub fn corrupt_check_every(&self) -> Result<Option<std::time::Duration>, ConfigError> {
        let d = parse_go_duration(&self.corrupt_check_time).ok_or_else(|| {
            invalid(
                "experimental-corrupt-check-time",
                "not a duration (e.g. 1m, 30s)",
            )
        })?;
        Ok((!d.is_zero()).then_some(d))
    }

    /// Ticks per election timeout, as raft-rs counts them.
    pub fn election_ticks(&self) -> Result<usize, ConfigError> {
        if self.heartbeat_interval == 0 {
            return Err(invalid("heartbeat-interval", "must be positive"));
        }
        if self.election_timeout < 5 * self.heartbeat_interval {
            return Err(invalid(
                "election-timeout",
                "must be at least 5 times --heartbeat-interval",
            ));
        }
        Ok((self.election_timeout / self.heartbeat_interval) as usize)
    }

    /// Checks the flags that have no other validation path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.election_ticks()?;
        self.watch_progress_interval()?;
        self.lease_checkpoint_every()?;
        self.auto_compaction()?;
        self.corrupt_check_every()?;
        self.client_listen_addrs()?;
        if self.max_request_bytes == 0 {
            return Err(invalid("max-request-bytes", "must be positive"));
        }
        if self.wal_segment_size < 4096 {
            return Err(invalid("wal-segment-size", "must be at least 4096"));
        }
        if self.max_txn_ops == 0 {
            return Err(invalid("max-txn-ops", "must be positive"));
        }
        if self.initial_cluster_state != "new" && self.initial_cluster_state != "existing" {
            return Err(invalid(
                "initial-cluster-state",
                "must be 'new' or 'existing'",
            ));
        }
        self.peer_listen_addrs()?;
        self.metrics_listen_addrs()?;
        self.check_peer_port_zero()?;
        self.initial_cluster()?;
        Ok(())
    }
}

/// The advertised URLs: `given`, or by default `fallback`, unless a listen URL asks for port 0:
/// then the listen URLs themselves (an unspecified host advertised as loopback), whose port 0
/// [`fill_ports`] replaces with the bound port.
fn advertised(given: Option<&str>, listen: &str, fallback: &str) -> Vec<String> {
    if let Some(given) = given {
        return split_list(given);
    }
    let listen = split_list(listen);
    if !listen.iter().any(|u| url_port(u) == Some(0)) {
        return vec![fallback.to_string()];
    }
    listen
        .iter()
        .map(|u| match url_host(u) {
            Some("0.0.0.0") => u.replacen("0.0.0.0", "127.0.0.1", 1),
            Some("[::]") => u.replacen("[::]", "[::1]", 1),
            _ => u.clone(),
        })
        .collect()
}

/// `host` of `scheme://host[:port][/]`, with the brackets of an IPv6 address.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1.trim_end_matches('/');
    match rest.rfind(':') {
        Some(i)
            if !rest[i + 1..].is_empty() && rest[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(&rest[..i])
        }
        _ => Some(rest),
    }
}

/// The port a URL names, if it names one.
fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1.trim_end_matches('/');
    let (_, port) = rest.rsplit_once(':')?;
    port.parse().ok()
}

/// `urls` with port 0 replaced by the port of a listener in `bound`: the one whose host is the
/// URL's host, or else the only one.
fn fill_ports(
    flag: &'static str,
    urls: &[String],
    bound: &[SocketAddr],
) -> Result<Vec<String>, ConfigError> {
    urls.iter()
        .map(|url| {
            if url_port(url) != Some(0) {
                return Ok(url.clone());
            }
            let host = url_host(url).unwrap_or_default();
            let same_host: Vec<&SocketAddr> = bound
                .iter()
                .filter(|a| {
                    let ip = a.ip();
                    host == ip.to_string() || host == format!("[{ip}]")
                })
                .collect();
            let port = match (same_host.as_slice(), bound) {
                ([one], _) => one.port(),
                ([], [one]) => one.port(),
                _ => {
                    return Err(invalid(
                        flag,
                        format!(
                            "{url}: port 0 must name one listener, by its host or by being the \
                             only one; give the port"
                        ),
                    ))
                }
            };
            let base = url
                .trim_end_matches('/')
                .rsplit_once(':')
                .map_or(url.as_str(), |(base, _)| base);
            Ok(format!("{base}:{port}"))
        })
        .collect()
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

fn parse_listen_urls(flag: &'static str, list: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let urls = split_list(list);
    if urls.is_empty() {
        return Err(invalid(flag, "no URL given"));
    }
    let mut addrs = Vec::new();
    for url in urls {
        let hostport = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") || url.starts_with("unixs://") {
            return Err(invalid(flag, format!("{url}: TLS is not supported yet")));
        } else {
            return Err(invalid(flag, format!("{url}: expected http://host:port")));
        };
        let hostport = hostport.trim_end_matches('/');
        let resolved = hostport
            .to_socket_addrs()
            .map_err(|e| invalid(flag, format!("{url}: {e}")))?
            .find(|a| a.is_ipv4())
            .or_else(|| hostport.to_socket_addrs().ok().and_then(|mut a| a.next()));
        match resolved {
            Some(a) => addrs.push(a),
            None => return Err(invalid(flag, format!("{url}: does not resolve"))),
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults_match_the_embedded_single_member() {
        let c = Config::parse_from(["concord"]);
        assert_eq!(c.data_dir(), PathBuf::from("default.concord"));
        assert_eq!(
            c.client_listen_addrs().unwrap(),
            vec!["127.0.0.1:2379".parse().unwrap()]
        );
        assert_eq!(c.max_request_bytes, 1572864);
        assert_eq!(c.election_ticks().unwrap(), 10);
        assert_eq!(
            c.watch_progress_interval().unwrap(),
            Duration::from_secs(600)
        );
        c.validate().unwrap();
    }

    #[test]
    fn go_durations_parse_as_go_writes_them() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(parse_go_duration("10m0s"), ms(600_000));
        assert_eq!(parse_go_duration("1h2m3.5s"), ms(3_723_500));
        assert_eq!(parse_go_duration("250ms"), ms(250));
        assert_eq!(parse_go_duration("0"), ms(0));
        for bad in ["", "10", "5x", "m", "1.2.3s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        let c = Config::parse_from([
            "concord",
            "--experimental-watch-progress-notify-interval",
            "0s",
        ]);
        assert!(c.watch_progress_interval().is_err());
    }

    #[test]
    fn bad_urls_are_refused() {
        let c = Config::parse_from(["concord", "--listen-client-urls", "https://127.0.0.1:1"]);
        assert!(c.validate().unwrap_err().to_string().contains("TLS"));
        let c = Config::parse_from(["concord", "--listen-client-urls", "127.0.0.1:1"]);
        assert!(c.validate().is_err());
        let c = Config::parse_from(["concord", "--election-timeout", "200"]);
        assert!(c.validate().is_err());
        let c = Config::parse_from([
            "concord",
            "--initial-cluster",
            "other=http://127.0.0.1:2380",
        ]);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--name default"));
        let c = Config::parse_from([
            "concord",
            "--initial-cluster",
            "default=http://127.0.0.1:2380,b=http://127.0.0.1:9",
        ]);
        assert_eq!(c.initial_cluster().unwrap().len(), 2);
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn port_zero_is_replaced_by_the_bound_port() {
        // Advertised URLs derived from port-0 listen URLs.
        let c = Config::parse_from([
            "concord",
            "--listen-client-urls",
            "http://0.0.0.0:0",
            "--listen-peer-urls",
            "http://127.0.0.1:0",
        ]);
        c.validate().unwrap();
        assert_eq!(c.advertise_client_urls(), vec!["http://127.0.0.1:0"]);
        let r = c
            .with_bound_ports(&[addr("0.0.0.0:41234")], &[addr("127.0.0.1:41235")])
            .unwrap();
        assert_eq!(r.advertise_client_urls(), vec!["http://127.0.0.1:41234"]);
        assert_eq!(r.advertise_peer_urls(), vec!["http://127.0.0.1:41235"]);
        assert_eq!(
            r.client_listen_addrs().unwrap(),
            vec![addr("0.0.0.0:41234")]
        );
        assert_eq!(
            r.peer_listen_addrs().unwrap(),
            vec![addr("127.0.0.1:41235")]
        );
        let members = r.initial_cluster().unwrap();
        assert_eq!(members[0].peer_urls, vec!["http://127.0.0.1:41235"]);
        r.validate().unwrap();

        // Explicit port 0, with this member alone in an explicit --initial-cluster; a fixed
        // advertised port stays as given.
        let c = Config::parse_from([
            "concord",
            "--name=a",
            "--listen-client-urls=http://127.0.0.1:0,http://10.0.0.1:0",
            "--advertise-client-urls=http://10.0.0.1:0/,http://example.com:2379",
            "--listen-peer-urls=http://127.0.0.1:0",
            "--initial-advertise-peer-urls=http://localhost:0",
            "--initial-cluster=a=http://localhost:0",
        ]);
        c.validate().unwrap();
        let r = c
            .with_bound_ports(
                &[addr("127.0.0.1:5000"), addr("10.0.0.1:5001")],
                &[addr("127.0.0.1:5002")],
            )
            .unwrap();
        assert_eq!(
            r.advertise_client_urls(),
            vec!["http://10.0.0.1:5001", "http://example.com:2379"]
        );
        assert_eq!(r.advertise_peer_urls(), vec!["http://localhost:5002"]);
        assert_eq!(
            r.initial_cluster.as_deref(),
            Some("a=http://localhost:5002")
        );
        r.validate().unwrap();

        // Port 0 that could mean either of two listeners.
        let c = Config::parse_from([
            "concord",
            "--listen-client-urls=http://127.0.0.1:0,http://10.0.0.1:0",
            "--advertise-client-urls=http://example.com:0",
        ]);
        let e = c
            .with_bound_ports(
                &[addr("127.0.0.1:5000"), addr("10.0.0.1:5001")],
                &[addr("127.0.0.1:2380")],
            )
            .unwrap_err();
        assert!(e.to_string().contains("--advertise-client-urls"), "{e}");

        // Without port 0, the defaults are etcd's, whatever the listen URLs.
        let c = Config::parse_from(["concord", "--listen-client-urls=http://127.0.0.1:3000"]);
        assert_eq!(c.advertise_client_urls(), vec!["http://127.0.0.1:2379"]);
        assert_eq!(c.advertise_peer_urls(), vec!["http://127.0.0.1:2380"]);
    }

    #[test]
    fn port_zero_peer_urls_are_refused_beyond_a_single_member() {
        let c = Config::parse_from([
            "concord",
            "--name=a",
            "--initial-advertise-peer-urls=http://127.0.0.1:0",
            "--initial-cluster=a=http://127.0.0.1:0,b=http://127.0.0.1:2480",
        ]);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with("--initial-advertise-peer-urls"), "{e}");
        assert!(e.contains("single-member"), "{e}");
        assert!(e.contains("lists b"), "{e}");

        // Derived from a port-0 listen URL, the same.
        let c = Config::parse_from([
            "concord",
            "--name=a",
            "--listen-peer-urls=http://127.0.0.1:0",
            "--initial-cluster=a=http://127.0.0.1:0,b=http://127.0.0.1:2480",
        ]);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("single-member"));

        let c = Config::parse_from([
            "concord",
            "--name=a",
            "--initial-advertise-peer-urls=http://127.0.0.1:0",
            "--initial-cluster=a=http://127.0.0.1:0",
            "--initial-cluster-state=existing",
        ]);
        assert!(c.validate().unwrap_err().to_string().contains("existing"));

        // A port-0 listener behind a fixed advertised URL (a proxy) is fine.
        let c = Config::parse_from([
            "concord",
            "--name=a",
            "--listen-peer-urls=http://127.0.0.1:0",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=a=http://127.0.0.1:2380,b=http://127.0.0.1:2480",
        ]);
        c.validate().unwrap();
    }
}
