//! `concord-failpoints`: the `concord` binary with failpoints and the log's power-loss
//! simulation compiled in, controlled over HTTP at `$CONCORD_FAILPOINTS_ADDR`
//! (`concord_server::failpoints`). For the fault tests only.

#[path = "../main.rs"]
mod concord;

fn main() -> anyhow::Result<()> {
    concord_server::failpoints::serve_from_env()?;
    concord::main()
}
