//! `concord`: runs one Concord member.

use clap::Parser;
use concord_server::logging;
use concord_server::Config;

/// mimalloc instead of glibc's allocator: the request path allocates many small, short-lived
/// buffers, and glibc's malloc and free were a large share of its time (figures in
/// docs/PERFORMANCE.md, "Why the design looks like this").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Err(e) = init_logging(&config) {
        eprintln!("concord: {e}");
        std::process::exit(1);
    }

    // A panic is a bug whose damage is unknown (the Raft thread may be gone while the gRPC
    // servers still answer): stop the whole process, as etcd does, rather than limp on.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        tracing::error!("panic; stopping");
        std::process::abort();
    }));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if let Err(e) = concord_server::run(config, shutdown_signal()).await {
            tracing::error!(error = %e, "concord stopped");
            eprintln!("concord: {e}");
            std::process::exit(1);
        }
    });
    Ok(())
}

/// `--log-level`, `--log-outputs`, `--log-format` and `--logger`.
fn init_logging(config: &Config) -> Result<(), logging::LogError> {
    logging::check_logger(&config.logger)?;
    let format = logging::Format::parse(&config.log_format)?;
    let outputs = logging::parse_outputs(&config.log_outputs)?;
    logging::init(&config.log_level, format, &outputs)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
