//! `concordctl`: a drop-in for etcdctl v3 (3.4, with 3.5's additions), on concord-client.
//!
//! The same command against the same server gives the same output, byte for byte, and the
//! same exit code, error texts included: the command line is parsed as cobra and pflag parse
//! etcdctl's, the output is written as etcdctl's printers and Go's formatting write it, and
//! failures are reported as clientv3 reports them. What etcdctl leaves to timing (log
//! timestamps, client IDs, durations) differs as it does between two etcdctl runs.
//!
//! Not yet: authentication and TLS (Concord has neither), the auth/user/role commands,
//! make-mirror, migrate, check datascale and shell completion.

mod cli;
mod cmd;
mod crc32c;
mod ctx;
mod exit;
mod gofmt;
mod printer;
mod rpc;
mod spec;
mod table;
mod tabwriter;

fn main() {
    // etcdctl reads ETCDCTL_API, then removes it from its environment (so that it is neither
    // an unknown ETCDCTL_ variable nor passed to the commands it runs).
    let api = std::env::var("ETCDCTL_API").unwrap_or_default();
    std::env::remove_var("ETCDCTL_API");
    match api.as_str() {
        "" | "3" => {}
        "2" => {
            eprintln!("concordctl speaks etcd's v3 API only (ETCDCTL_API=2 is not supported)");
            exit::now(exit::ERROR);
        }
        other => {
            eprintln!("unsupported API version {other}");
            exit::now(exit::ERROR);
        }
    }
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let root = spec::root();
    let inv = match cli::parse(&root, args) {
        cli::Parsed::Run(inv) => inv,
        cli::Parsed::Done => exit::now(0),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => exit::with_error(exit::ERROR, &e.to_string()),
    };
    rt.block_on(cmd::run(ctx::Ctx::new(inv)));
    exit::now(0);
}
