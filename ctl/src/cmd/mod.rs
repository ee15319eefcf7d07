//! The commands, each as etcdctl 3.4 runs it.

pub mod check;
pub mod kv;
pub mod lease;
pub mod maint;
pub mod member;
pub mod snapshot;
pub mod sync;
pub mod watch;

use crate::ctx::Ctx;
use crate::exit;

/// Runs the command `ctx` names.
pub async fn run(ctx: Ctx) {
    let path: Vec<&str> = ctx.inv.path.clone();
    match path.as_slice() {
        ["get"] => kv::get(ctx).await,
        ["put"] => kv::put(ctx).await,
        ["del"] => kv::del(ctx).await,
        ["txn"] => kv::txn(ctx).await,
        ["compaction"] => kv::compaction(ctx).await,
        ["watch"] => watch::watch(ctx).await,
        ["lease", "grant"] => lease::grant(ctx).await,
        ["lease", "revoke"] => lease::revoke(ctx).await,
        ["lease", "timetolive"] => lease::timetolive(ctx).await,
        ["lease", "list"] => lease::list(ctx).await,
        ["lease", "keep-alive"] => lease::keep_alive(ctx).await,
        ["member", "add"] => member::add(ctx).await,
        ["member", "remove"] => member::remove(ctx).await,
        ["member", "update"] => member::update(ctx).await,
        ["member", "list"] => member::list(ctx).await,
        ["member", "promote"] => member::promote(ctx).await,
        ["endpoint", "health"] => maint::health(ctx).await,
        ["endpoint", "status"] => maint::status(ctx).await,
        ["endpoint", "hashkv"] => maint::hashkv(ctx).await,
        ["move-leader"] => maint::move_leader(ctx).await,
        ["defrag"] => maint::defrag(ctx).await,
        ["alarm", "list"] => maint::alarm(ctx, false).await,
        ["alarm", "disarm"] => maint::alarm(ctx, true).await,
        ["snapshot", "save"] => snapshot::save(ctx).await,
        ["snapshot", "status"] => snapshot::status(ctx).await,
        ["snapshot", "restore"] => snapshot::restore(ctx).await,
        ["lock"] => sync::lock(ctx).await,
        ["elect"] => sync::elect(ctx).await,
        ["check", "perf"] => check::perf(ctx).await,
        ["version"] => {
            println!("etcdctl version: {}", crate::cli::VERSION);
            println!("API version: {}", crate::cli::API_VERSION);
        }
        other => exit::with_error(
            exit::ERROR,
            &format!("{} is not supported by concordctl yet", other.join(" ")),
        ),
    }
}
