//! A command's setup, in etcdctl's order: `ETCDCTL_*` variables for the global flags, the
//! connection settings (refusing TLS and authentication, which Concord does not have yet) and
//! the output format.

use std::time::Duration;

use crate::cli::Invocation;
use crate::exit;
use crate::printer::{Format, Printer};
use crate::rpc::Cfg;

/// Local time as capnslog (etcd's v2-era logger) prints it: `2026-12-02 04:38:26.905317`.
fn capnslog_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which lives on this stack frame.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return String::new();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_micros()
    )
}

/// `ETCDCTL_DIAL_TIMEOUT` for `dial-timeout`.
fn env_name(flag: &str) -> String {
    format!("ETCDCTL_{}", flag.to_uppercase().replace('-', "_"))
}

/// The command being run.
pub struct Ctx {
    pub inv: Invocation,
    env_done: bool,
}

impl Ctx {
    pub fn new(inv: Invocation) -> Ctx {
        Ctx {
            inv,
            env_done: false,
        }
    }

    pub fn args(&self) -> &[String] {
        &self.inv.args
    }

    /// etcd's `SetPflagsFromEnv` over the inherited flags, then its check of the environment:
    /// a variable for a flag also given on the command line is fatal, an unknown `ETCDCTL_*`
    /// variable is warned about.
    pub fn apply_env(&mut self) {
        if self.env_done {
            return;
        }
        self.env_done = true;
        if self.inv.path.first() == Some(&"watch") {
            self.inv.flags.add_discard("watch-key");
            self.inv.flags.add_discard("watch-range-end");
        }
        let names: Vec<&'static str> = self.inv.flags.inherited.iter().copied().collect();
        let mut already_set = std::collections::HashSet::new();
        let mut used = std::collections::HashSet::new();
        for name in names {
            let key = env_name(name);
            if self.inv.flags.changed(name) {
                already_set.insert(key.clone());
                continue;
            }
            if let Ok(val) = std::env::var(&key) {
                if !val.is_empty() {
                    used.insert(key);
                    // etcdctl ignores a value that does not parse.
                    let _ = self.inv.flags.set(name, &val);
                }
            }
        }
        for (k, v) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if used.contains(&k) {
                continue;
            }
            if already_set.contains(&k) {
                eprintln!(
                    "{} C | pkg/flags: conflicting environment variable \"{k}\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)",
                    capnslog_now()
                );
                exit::now(exit::ERROR);
            }
            if k.starts_with("ETCDCTL_") {
                eprintln!(
                    "{} W | pkg/flags: unrecognized environment variable {k}={}",
                    capnslog_now(),
                    v.to_string_lossy()
                );
            }
        }
    }

    /// etcdctl's `initDisplayFromCmd`.
    pub fn display(&self) -> Printer {
        let Some(format) = Format::parse(&self.inv.flags.string("write-out")) else {
            exit::with_error(exit::BAD_FEATURE, "unsupported output format")
        };
        Printer {
            format,
            hex: self.inv.flags.bool("hex"),
            value_only: false,
        }
    }

    /// The endpoints as given (trimmed), as etcdctl prints them.
    pub fn endpoints(&self) -> Vec<String> {
        self.inv
            .flags
            .slice("endpoints")
            .into_iter()
            .map(|e| e.trim().to_string())
            .collect()
    }

    /// The checks of etcdctl's TLS flags; TLS itself is refused.
    fn secure_checks(&self) {
        let f = &self.inv.flags;
        for name in ["cert", "key", "cacert"] {
            if f.changed(name) && f.string(name).is_empty() {
                exit::with_error(
                    exit::BAD_ARGS,
                    &format!("empty string is passed to --{name} option"),
                );
            }
        }
    }

    fn refuse_tls_and_auth(&self) {
        let f = &self.inv.flags;
        let (cert, key) = (f.string("cert"), f.string("key"));
        if cert.is_empty() != key.is_empty() {
            exit::with_error(
                exit::BAD_ARGS,
                &format!("KeyFile and CertFile must both be present[key: {key}, cert: {cert}]"),
            );
        }
        if !cert.is_empty() || !f.string("cacert").is_empty() || !f.bool("insecure-transport") {
            exit::with_error(
                exit::BAD_ARGS,
                "TLS is not supported by concordctl yet (Concord serves plain http only)",
            );
        }
        if !f.string("discovery-srv").is_empty() {
            exit::with_error(
                exit::ERROR,
                "DNS discovery (--discovery-srv) is not supported by concordctl yet",
            );
        }
    }

    fn refuse_auth(&self) {
        if !self.inv.flags.string("user").is_empty() {
            exit::with_error(
                exit::BAD_ARGS,
                "authentication (--user) is not supported by concordctl yet",
            );
        }
    }

    /// etcdctl's `clientConfigFromCmd`: the environment, `--debug`, the connection settings,
    /// the output format.
    pub fn client_config(&mut self) -> (Cfg, Printer) {
        self.apply_env();
        let debug = self.inv.flags.bool("debug");
        if debug {
            for name in self.inv.flags.inherited.clone() {
                if let Some(v) = self.inv.flags.values.get(name) {
                    eprintln!("{}={}", env_name(name), v.to_go_string());
                }
            }
        }
        let cfg = Cfg::new(
            self.endpoints(),
            self.inv.flags.duration("dial-timeout").std(),
            self.command_timeout(),
            debug,
        );
        self.secure_checks();
        self.refuse_auth();
        let printer = self.display();
        self.refuse_tls_and_auth();
        (cfg, printer)
    }

    pub fn command_timeout(&self) -> Duration {
        self.inv.flags.duration("command-timeout").std()
    }

    /// A client over the endpoints (clientv3.New's failures exit 2, as etcdctl's do).
    pub fn client(&self, cfg: &Cfg) -> concord_client::Client {
        cfg.client()
            .unwrap_or_else(|e| exit::with_error(exit::BAD_CONNECTION, &e))
    }
}
