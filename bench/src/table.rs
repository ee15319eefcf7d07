//! The side-by-side table `bench/compare` prints: one row per cluster size and workload, with
//! Concord/etcd ratios of throughput and p99 latency.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

/// (throughput, p99 ms) of one server for one row.
type Cell = (f64, f64);

fn cell(result: &Value) -> Option<Cell> {
    Some((
        result["throughput"].as_f64()?,
        result["latency_ms"]["p99"].as_f64()?,
    ))
}

/// Renders the table for the JSON lines of `bench/compare`.
pub fn render(lines: &str) -> Result<String> {
    // (members, workload) → server → cell
    let mut rows: BTreeMap<(u64, String), BTreeMap<String, Cell>> = BTreeMap::new();
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
            .insert(server, c);
    }
    let mut out = String::from(
        "members  workload          concord req/s   etcd req/s   ratio   concord p99 ms   etcd p99 ms   ratio\n",
    );
    for ((members, workload), servers) in rows {
        let (c, e) = (servers.get("concord"), servers.get("etcd"));
        let f = |x: Option<f64>, w: usize, p: usize| {
            x.map_or(format!("{:>w$}", "-"), |v| format!("{v:>w$.p$}"))
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        out.push_str(&format!(
            "{members:<8} {workload:<16} {} {} {} {} {} {}\n",
            f(c.map(|c| c.0), 14, 0),
            f(e.map(|e| e.0), 12, 0),
            f(ratio(c.map(|c| c.0), e.map(|e| e.0)), 7, 2),
            f(c.map(|c| c.1), 16, 2),
            f(e.map(|e| e.1), 13, 2),
            f(ratio(c.map(|c| c.1), e.map(|e| e.1)), 7, 2),
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
        let t = render(lines).unwrap();
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 3, "{t}");
        assert!(rows[1].starts_with("1        put"), "{t}");
        assert!(
            rows[1].contains(" 2.00 ") && rows[1].contains(" 0.50"),
            "{t}"
        );
        // A row with one server only shows dashes for the other and the ratios.
        assert!(
            rows[2].contains("range-l") && rows[2].contains(" - "),
            "{t}"
        );
        assert!(render("{not json").is_err());
    }
}
