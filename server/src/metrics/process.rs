//! The process metrics of Prometheus' Go client (`process_*`), read from `/proc` when scraped.
//! On a system without `/proc` the families are left out.

use super::text::Text;

/// What `/proc/self/stat` says, in the units Prometheus wants.
struct Stat {
    cpu_seconds: f64,
    virtual_bytes: u64,
    resident_bytes: u64,
    start_time_seconds: f64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|p| *p > 0).unwrap_or(4096)
}

/// The system's boot time (`btime` in `/proc/stat`), in seconds since the epoch.
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Parses `/proc/self/stat`: the fields after the command name (which is in parentheses and may
/// hold spaces), numbered from 3 (`state`) as in proc(5).
fn parse_stat(text: &str, ticks: f64, page: u64, boot: u64) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page,
        start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
    })
}

fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    Some(lim.rlim_cur)
}

pub(super) fn write(t: &mut Text) {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat(&s, clock_ticks(), page_size(), boot_time()?));
    if let Some(s) = stat {
        t.family(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
        );
        t.sample_float("process_cpu_seconds_total", &[], s.cpu_seconds);
        t.family(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
        );
        t.sample("process_virtual_memory_bytes", &[], s.virtual_bytes);
        t.family(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
        );
        t.sample("process_resident_memory_bytes", &[], s.resident_bytes);
        t.family(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
        );
        t.sample_float("process_start_time_seconds", &[], s.start_time_seconds);
    }
    if let Some(n) = open_fds() {
        t.family(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
        );
        t.sample("process_open_fds", &[], n);
    }
    if let Some(n) = max_fds() {
        t.family(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
        );
        t.sample("process_max_fds", &[], n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_past_a_command_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime priority nice threads itrealvalue starttime vsize rss ...
        let text = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1000 \
                    123456789 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0";
        let s = parse_stat(text, 100.0, 4096, 1_700_000_000).expect("parses");
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.virtual_bytes, 123_456_789);
        assert_eq!(s.resident_bytes, 300 * 4096);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert!(parse_stat("garbage", 100.0, 4096, 0).is_none());
    }

    #[test]
    fn this_process_has_numbers() {
        let mut t = Text::default();
        write(&mut t);
        let page = t.finish();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                page.contains(&format!("\n{name} ")),
                "{name} missing:\n{page}"
            );
        }
    }
}
