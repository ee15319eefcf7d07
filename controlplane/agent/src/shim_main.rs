//! `concord-shim`: the container shim as a binary of its own. The agent runs one per
//! container instance; a small binary keeps each one's private memory small (the agent's own
//! binary, as `concord-agent shim`, works too but costs several MiB more per container).
//!
//! Usage: `concord-shim shim SPEC` (the same arguments as `concord-agent shim SPEC`).

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(cmd), Some(spec), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: concord-shim shim SPEC");
        std::process::exit(2);
    };
    if cmd != "shim" {
        eprintln!("usage: concord-shim shim SPEC");
        std::process::exit(2);
    }
    std::process::exit(concord_agent::shim::shim_main(std::path::Path::new(&spec)));
}
