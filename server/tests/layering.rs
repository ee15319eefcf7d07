//! The server's layering rule, checked on its source: every top-level module of `server/src`
//! belongs to one layer, and a module imports (`crate::…`) only from layers below its own. In
//! particular nothing below `core` imports `core` or `api`. A new top-level module must be
//! placed in [`LAYERS`] before this test passes. Test-only code (`sim/`, `tests.rs`,
//! `#[cfg(test)] mod tests` blocks) is not checked.
//!
//! `docs/ARCHITECTURE.md` ("Layers") explains each layer.

use std::collections::BTreeSet;
use std::path::Path;

/// The layers, lowest first. Modules in one entry form one layer.
const LAYERS: &[&[&str]] = &[
    // Process-wide counters, gauges and histograms: everything may count into them.
    &["metrics"],
    // The peer protocol's generated wire types (`lib.rs`, from `proto/peer.proto`): they import
    // nothing of the crate.
    &["peerpb"],
    // The failpoint control of the test binary `concord-failpoints` (feature `failpoints`).
    &["failpoints"],
    &["error"],
    &["cluster"],
    &["proposal"],
    &["watch"],
    &["state"],
    &["raft"],
    &["transport"],
    // Backups: the snapshot file and restoring a data dir from it.
    &["backup"],
    &["core"],
    // The leader's background duties: lease expiry, automatic compaction, corruption checks;
    // and every member's watch over its free disk space.
    &["lease", "compactor", "corrupt", "space"],
    &["api"],
    // The composition root wires everything together.
    &["config", "logging", "server", "lib", "main", "bin"],
];

/// Modules compiled only for tests.
const TEST_ONLY: &[&str] = &["sim"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Drops `//` comments and `#[cfg(test)] mod tests { … }` blocks.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            // Skip the test module that follows, by brace depth.
            let mut depth = 0i32;
            let mut opened = false;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                opened |= l.contains('{');
                if (opened && depth <= 0) || (!opened && l.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The top-level modules a piece of code names through `crate::` paths.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(inner) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the names at depth 0.
            let mut depth = 0;
            let mut start = 0;
            for (j, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(&inner[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(&inner[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_from_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("utf-8 path")
            .trim_end_matches(".rs")
            .to_string();
        if TEST_ONLY.contains(&top.as_str())
            || rel.file_name().is_some_and(|n| n == "tests.rs")
            || rel.components().any(|c| c.as_os_str() == "tests")
        {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            problems.push(format!(
                "{}: module `{top}` is in no layer (add it to LAYERS)",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for used in imports(&code_of(&text)) {
            if used == top {
                continue;
            }
            match layer_of(&used) {
                Some(l) if l < own || LAYERS[own].contains(&used.as_str()) => {}
                Some(_) => problems.push(format!(
                    "{}: `{top}` imports `crate::{used}` from a layer above or beside its own",
                    rel.display()
                )),
                None if TEST_ONLY.contains(&used.as_str()) => problems.push(format!(
                    "{}: `{top}` imports test-only `crate::{used}`",
                    rel.display()
                )),
                None => problems.push(format!(
                    "{}: `crate::{used}` is in no layer (add it to LAYERS)",
                    rel.display()
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering rule broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_imports_and_skips_tests() {
    let code = code_of(
        "use crate::{core::Core, state::{apply, lessor}};\n\
         // use crate::api;\n\
         fn f() { crate::raft::refuse(1, \"x\"); }\n\
         #[cfg(test)]\nmod tests {\n    use crate::server;\n}\n",
    );
    let got: Vec<String> = imports(&code).into_iter().collect();
    assert_eq!(got, ["core", "raft", "state"]);
}
