//! The side-by-side table `bench/compare` prints: one row per cluster size and workload, with
//! the ratios of two servers' throughput and p99 latency. Concord against etcd by default; with
//! `--ab`, the "after" build against the "before" one. A server measured several times in a
//! row (rounds) is shown by its medians.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

/// (throughput, p99 ms) of one run.
type Cell = (f64, f64);

fn cell(result: &Value) -> Option<Cell> {
    Some((
        result["throughput"].as_f64()?,
        result["latency_ms"]["p99"].as_f64()?,
    ))
}

/// The median of some numbers (the mean of the middle two for an even count).
fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

/// Renders the table for the JSON lines of `bench/compare`: `first` against `second` (server
/// labels, e.g. "concord" and "etcd"), each cell a median over that server's runs.
pub fn render(lines: &str, first: &str, second: &str) -> Result<String> {
    // (members, workload) → server → runs
    let mut rows: BTreeMap<(u64, String), BTreeMap<String, Vec<Cell>>> = BTreeMap::new();
    for (n, line) in lines
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line).with_context(|| format!("line {}", n + 1))?;
        let members = v["members"].as_u64().context("members")?;
        let server = v["server"].as_str().context("server")?.to_string();
        let workload = v["result"]["workload"]
            .as_str()
            .context("workload")?
            .to_string();
        let c = cell(&v["result"]).context("throughput and p99")?;
        rows.entry((members, workload))
            .or_default()
            .entry(server)
            .or_default()
            .push(c);
    }
    let mut out = format!(
        "members  workload         {:>14} {:>12}   ratio {:>16} {:>13}   ratio   runs\n",
        format!("{first} req/s"),
        format!("{second} req/s"),
        format!("{first} p99 ms"),
        format!("{second} p99 ms"),
    );
    for ((members, workload), servers) in rows {
        let med = |server: &str, pick: fn(&Cell) -> f64| {
            servers
                .get(server)
                .and_then(|runs| median(runs.iter().map(pick).collect()))
        };
        let (a, b) = (med(first, |c| c.0), med(second, |c| c.0));
        let (a99, b99) = (med(first, |c| c.1), med(second, |c| c.1));
        let runs = |server: &str| servers.get(server).map_or(0, Vec::len);
        let f = |x: Option<f64>, w: usize, p: usize| {
            x.map_or(format!("{:>w$}", "-"), |v| format!("{v:>w$.p$}"))
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        out.push_str(&format!(
            "{members:<8} {workload:<16} {} {} {} {} {} {}   {}/{}\n",
            f(a, 14, 0),
            f(b, 12, 0),
            f(ratio(a, b), 7, 2),
            f(a99, 16, 2),
            f(b99, 13, 2),
            f(ratio(a99, b99), 7, 2),
            runs(first),
            runs(second),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pair_the_servers_and_divide() {
        let lines = r#"
{"server":"concord","members":1,"result":{"workload":"put","throughput":2000.0,"latency_ms":{"p99":5.0}}}
{"server":"etcd","members":1,"result":{"workload":"put","throughput":1000.0,"latency_ms":{"p99":10.0}}}
{"server":"etcd","members":3,"result":{"workload":"range-l","throughput":500.0,"latency_ms":{"p99":4.0}}}
"#;
        let t = render(lines, "concord", "etcd").unwrap();
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 3, "{t}");
        assert!(
            rows[0].contains("concord req/s") && rows[0].contains("etcd p99 ms"),
            "{t}"
        );
        assert!(rows[1].starts_with("1        put"), "{t}");
        assert!(
            rows[1].contains(" 2.00 ") && rows[1].contains(" 0.50") && rows[1].ends_with("1/1"),
            "{t}"
        );
        // A row with one server only shows dashes for the other and the ratios.
        assert!(
            rows[2].contains("range-l") && rows[2].contains(" - ") && rows[2].ends_with("0/1"),
            "{t}"
        );
        assert!(render("{not json", "concord", "etcd").is_err());
    }

    #[test]
    fn rounds_are_shown_by_their_medians() {
        let run = |server: &str, tput: f64, p99: f64| {
            format!(
                r#"{{"server":"{server}","members":1,"result":{{"workload":"put","throughput":{tput},"latency_ms":{{"p99":{p99}}}}}}}"#
            )
        };
        let lines = [
            run("before", 1000.0, 9.0),
            run("after", 3000.0, 1.0),
            run("after", 1200.0, 4.0),
            run("before", 500.0, 10.0),
            run("before", 2000.0, 2.0),
            run("after", 900.0, 6.0),
        ]
        .join("\n");
        let t = render(&lines, "after", "before").unwrap();
        let row = t.lines().nth(1).unwrap_or_default();
        // after: medians 1,200 req/s and 4 ms; before: 1,000 req/s and 9 ms.
        assert!(
            row.contains(" 1200 ") && row.contains(" 1000 ") && row.contains(" 1.20 "),
            "{t}"
        );
        assert!(
            row.contains(" 4.00 ") && row.contains(" 9.00 ") && row.contains(" 0.44 "),
            "{t}"
        );
        assert!(row.ends_with("3/3"), "{t}");
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
