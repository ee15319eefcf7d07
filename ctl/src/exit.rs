//! etcdctl's exit codes and its way of failing: `Error: <text>` on stderr, then exit.

use std::io::Write;

pub const ERROR: i32 = 1;
pub const BAD_CONNECTION: i32 = 2;
pub const INVALID_INPUT: i32 = 3;
pub const BAD_FEATURE: i32 = 4;
pub const INTERRUPTED: i32 = 5;
pub const BAD_ARGS: i32 = 128;

/// Flushes stdout and exits.
pub fn now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

/// etcdctl's `ExitWithError`.
pub fn with_error(code: i32, msg: &str) -> ! {
    let _ = std::io::stdout().flush();
    eprintln!("Error: {msg}");
    now(code)
}
