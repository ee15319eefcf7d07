//! The control plane's layering rule, checked on the lock file: nothing in `controlplane/`
//! links the store's server, its state machine, its log or RocksDB; it reaches the store
//! through `concord-client` only (docs/ARCHITECTURE.md, "The control plane's layering").

use std::collections::{BTreeMap, BTreeSet};

/// Package name -> names of its dependencies, from Cargo.lock.
fn lock_graph() -> BTreeMap<String, Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock");
    let text = std::fs::read_to_string(path).expect("read Cargo.lock");
    let mut graph = BTreeMap::new();
    for block in text.split("[[package]]").skip(1) {
        let mut name = None;
        let mut deps = Vec::new();
        let mut in_deps = false;
        for line in block.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("name = ") {
                name = Some(v.trim_matches('"').to_string());
            } else if line.starts_with("dependencies = [") {
                in_deps = !line.ends_with(']');
            } else if in_deps {
                if line == "]" {
                    in_deps = false;
                } else {
                    // `"name"` or `"name version"`.
                    let dep = line.trim_end_matches(',').trim_matches('"');
                    deps.push(dep.split(' ').next().unwrap_or(dep).to_string());
                }
            }
        }
        if let Some(n) = name {
            graph.entry(n).or_insert_with(Vec::new).extend(deps);
        }
    }
    graph
}

fn reachable(graph: &BTreeMap<String, Vec<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            todo.extend(graph.get(&n).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn the_control_plane_reaches_the_store_only_through_the_client() {
    let graph = lock_graph();
    assert!(graph.contains_key("concord-server"), "the lock file parses");
    for krate in [
        "concord-apiserver",
        "concord-cp-store",
        "concord-cp-types",
        "concord-scheduler",
        "concord-agent",
        "concord-controllers",
    ] {
        assert!(graph.contains_key(krate), "{krate} is in the lock file");
        let deps = reachable(&graph, krate);
        for forbidden in ["concord-server", "concord-mvcc", "concord-wal", "rocksdb"] {
            assert!(
                !deps.contains(forbidden),
                "{krate} depends on {forbidden} (directly or not): the control plane may reach the store only through concord-client"
            );
        }
    }
    // And the rule is not vacuous: the graph is walked (the API server does reach the client),
    // and the server does reach RocksDB.
    assert!(reachable(&graph, "concord-apiserver").contains("concord-client"));
    assert!(reachable(&graph, "concord-server").contains("rocksdb"));
    // The types know no store at all.
    assert!(!reachable(&graph, "concord-cp-types").contains("concord-client"));
}
