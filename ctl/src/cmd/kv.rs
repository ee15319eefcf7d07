//! get, put, del, txn and compaction.

use std::io::{BufRead, Read};

use concord_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
};

use crate::cli::{self, Flags};
use crate::ctx::Ctx;
use crate::exit;
use crate::gofmt;
use crate::printer::Format;
use crate::rpc::Target;

/// The range of `get`/`del`: `(key, options)` from the arguments and flags, or etcdctl's
/// error (and exit).
pub fn get_op(args: &[String], f: &Flags) -> (Vec<u8>, GetOptions) {
    if args.is_empty() {
        exit::with_error(
            exit::BAD_ARGS,
            "get command needs one argument as key and an optional argument as range_end",
        );
    }
    let (prefix, from_key) = prefix_or_from_key(f);
    let mut opts = GetOptions::new();
    match f.string("consistency").as_str() {
        "s" => opts = opts.serializable(),
        "l" => {}
        other => exit::with_error(
            exit::BAD_FEATURE,
            &format!("unknown consistency flag {}", gofmt::quote_str(other)),
        ),
    }
    let mut key = args[0].clone().into_bytes();
    if args.len() > 1 {
        if prefix || from_key {
            exit::with_error(
                exit::BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            );
        }
        opts = opts.range_end(args[1].clone());
    }
    opts = opts.limit(f.int("limit"));
    if f.int("rev") > 0 {
        opts = opts.revision(f.int("rev"));
    }
    let order_s = f.string("order");
    let mut order = match order_s.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => exit::with_error(exit::BAD_FEATURE, &format!("bad sort order {order_s}")),
    };
    let target_s = f.string("sort-by");
    let target = match target_s.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => exit::with_error(exit::BAD_FEATURE, &format!("bad sort target {target_s}")),
    };
    // clientv3: the server sorts by key ascending anyway, so that order is not asked for.
    if target == SortTarget::Key && order == SortOrder::Ascend {
        order = SortOrder::None;
    }
    opts = opts.sort(target, order);
    if prefix {
        if key.is_empty() {
            key = vec![0];
            opts = opts.from_key();
        } else {
            opts = opts.prefix();
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        opts = opts.from_key();
    }
    if f.bool("keys-only") {
        opts = opts.keys_only();
    }
    if f.bool("count-only") {
        if f.bool("keys-only") {
            exit::with_error(
                exit::BAD_ARGS,
                "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
            );
        }
        opts = opts.count_only();
    }
    (key, opts)
}

/// The value of a `put`: the second argument, or all of stdin.
fn arg_or_stdin(args: &[String], i: usize) -> Option<Vec<u8>> {
    if let Some(a) = args.get(i) {
        return Some(a.clone().into_bytes());
    }
    let mut buf = Vec::new();
    match std::io::stdin().read_to_end(&mut buf) {
        Ok(_) if !buf.is_empty() => Some(buf),
        _ => None,
    }
}

/// `stdin`: whether a missing value is read from stdin (in a `txn`, etcdctl's reader has
/// already taken the input, so there is nothing left).
pub fn put_op(args: &[String], f: &Flags, stdin: bool) -> (Vec<u8>, Vec<u8>, PutOptions) {
    const NEEDS: &str = "put command needs 1 argument and input from stdin or 2 arguments";
    if args.is_empty() {
        exit::with_error(exit::BAD_ARGS, NEEDS);
    }
    let ignore_value = f.bool("ignore-value");
    if ignore_value && args.len() > 1 {
        exit::with_error(
            exit::BAD_ARGS,
            "put command needs only 1 argument when 'ignore-value' is set",
        );
    }
    let key = args[0].clone().into_bytes();
    let mut value = Vec::new();
    if !ignore_value {
        let given = if stdin {
            arg_or_stdin(args, 1)
        } else {
            args.get(1).map(|a| a.clone().into_bytes())
        };
        value = given.unwrap_or_else(|| exit::with_error(exit::BAD_ARGS, NEEDS));
    }
    let lease = gofmt::parse_int(&f.string("lease"), 16).unwrap_or_else(|e| {
        exit::with_error(
            exit::BAD_ARGS,
            &format!("bad lease ID ({e}), expecting ID in Hex"),
        )
    });
    let mut opts = PutOptions::new().lease(lease);
    if f.bool("prev-kv") {
        opts = opts.prev_kv();
    }
    if ignore_value {
        opts = opts.ignore_value();
    }
    if f.bool("ignore-lease") {
        opts = opts.ignore_lease();
    }
    (key, value, opts)
}

/// `--prefix` and `--from-key`, which etcdctl refuses together.
fn prefix_or_from_key(f: &Flags) -> (bool, bool) {
    let (prefix, from_key) = (f.bool("prefix"), f.bool("from-key"));
    if prefix && from_key {
        exit::with_error(
            exit::BAD_ARGS,
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        );
    }
    (prefix, from_key)
}

pub fn del_op(args: &[String], f: &Flags) -> (Vec<u8>, DeleteOptions) {
    if args.is_empty() || args.len() > 2 {
        exit::with_error(
            exit::BAD_ARGS,
            "del command needs one argument as key and an optional argument as range_end",
        );
    }
    let (prefix, from_key) = prefix_or_from_key(f);
    let mut opts = DeleteOptions::new();
    let mut key = args[0].clone().into_bytes();
    if args.len() > 1 {
        if prefix || from_key {
            exit::with_error(
                exit::BAD_ARGS,
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            );
        }
        opts = opts.range_end(args[1].clone());
    }
    if prefix {
        if key.is_empty() {
            key = vec![0];
            opts = opts.from_key();
        } else {
            opts = opts.prefix();
        }
    }
    if f.bool("prev-kv") {
        opts = opts.prev_kv();
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        opts = opts.from_key();
    }
    (key, opts)
}

pub async fn get(mut ctx: Ctx) {
    let (key, opts) = get_op(ctx.args(), &ctx.inv.flags);
    let (cfg, mut printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let resp = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.get_with(key.clone(), opts.clone())
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    if ctx.inv.flags.bool("count-only") && printer.format != Format::Fields {
        exit::with_error(
            exit::BAD_ARGS,
            "--count-only is only for `--write-out=fields`",
        );
    }
    if ctx.inv.flags.bool("print-value-only") {
        if printer.format != Format::Simple {
            exit::with_error(
                exit::BAD_ARGS,
                "print-value-only is only for `--write-out=simple`",
            );
        }
        printer.value_only = true;
    }
    printer.get(&resp);
}

pub async fn put(mut ctx: Ctx) {
    let (key, value, opts) = put_op(ctx.args(), &ctx.inv.flags, true);
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let resp = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.put_with(key.clone(), value.clone(), opts)
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    printer.put(&resp);
}

pub async fn del(mut ctx: Ctx) {
    let (key, opts) = del_op(ctx.args(), &ctx.inv.flags);
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let resp = cfg
        .call(&Target::Balanced, Some(cfg.deadline()), || {
            client.delete_with(key.clone(), opts.clone())
        })
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    printer.del(&resp);
}

pub async fn compaction(mut ctx: Ctx) {
    if ctx.args().len() != 1 {
        exit::with_error(exit::BAD_ARGS, "compaction command needs 1 argument");
    }
    let rev =
        gofmt::parse_int(&ctx.args()[0], 10).unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    let physical = ctx.inv.flags.bool("physical");
    let (cfg, _) = ctx.client_config();
    let client = ctx.client(&cfg);
    cfg.call(&Target::Balanced, Some(cfg.deadline()), || {
        client.compact(rev, physical)
    })
    .await
    .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    println!("compacted revision {rev}");
}

// --- txn ---

/// Go's `strconv.Unquote` of a double-quoted or back-quoted string at the start of `s`:
/// the string and the rest of the input.
fn scan_quoted(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    let mut chars = s.char_indices();
    let (_, q) = chars.next()?;
    if q == '`' {
        let end = s[1..].find('`')? + 1;
        return Some((s[1..end].to_string(), &s[end + 1..]));
    }
    if q != '"' {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                return Some((String::from_utf8_lossy(&out).into_owned(), &s[i + 1..]));
            }
            b'\\' => {
                let c = *bytes.get(i + 1)?;
                i += 2;
                match c {
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(11),
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'\'' => out.push(b'\''),
                    b'x' => {
                        let h = s.get(i..i + 2)?;
                        out.push(u8::from_str_radix(h, 16).ok()?);
                        i += 2;
                    }
                    b'u' | b'U' => {
                        let n = if c == b'u' { 4 } else { 8 };
                        let h = s.get(i..i + n)?;
                        let ch = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        i += n;
                    }
                    b'0'..=b'7' => {
                        let o = s.get(i - 1..i + 2)?;
                        out.push(u8::from_str_radix(o, 8).ok()?);
                        i += 2;
                    }
                    _ => return None,
                }
            }
            b'\n' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

/// `target("key") op "value"`, read as etcdctl's `fmt.Sscanf(rest, "%q) %s %q")`.
fn parse_compare(line: &str) -> Result<Compare, String> {
    let Some((target, rest)) = line.split_once('(') else {
        return Err(format!("malformed comparison: {line}"));
    };
    let (mut key, mut op, mut val) = (String::new(), String::new(), String::new());
    let mut n = 0;
    let mut scan = || -> Option<()> {
        let (k, r) = scan_quoted(rest)?;
        key = k;
        n = 1;
        let r = r.strip_prefix(')')?;
        let r = r.trim_start_matches([' ', '\t']);
        let end = r.find([' ', '\t']).unwrap_or(r.len());
        if end == 0 {
            return None;
        }
        op = r[..end].to_string();
        n = 2;
        let (v, _) = scan_quoted(&r[end..])?;
        val = v;
        n = 3;
        Some(())
    };
    if scan().is_none() || n != 3 {
        return Err(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            gofmt::quote_str(&key),
            gofmt::quote_str(&val)
        ));
    }
    let cop = match op.as_str() {
        "=" => CompareOp::Equal,
        "!=" => CompareOp::NotEqual,
        ">" => CompareOp::Greater,
        "<" => CompareOp::Less,
        // etcdctl panics here; concordctl says why.
        _ => {
            return Err(format!(
                "malformed comparison: {line} (unknown operator {op})"
            ))
        }
    };
    let invalid = || format!("invalid txn compare request: {line}");
    let int = || gofmt::parse_int(&val, 10).map_err(|_| invalid());
    Ok(match target {
        "ver" | "version" => Compare::version(key, cop, int()?),
        "c" | "create" => Compare::create_revision(key, cop, int()?),
        "m" | "mod" => Compare::mod_revision(key, cop, int()?),
        "val" | "value" => Compare::value(key, cop, val.clone()),
        // etcdctl 3.4 panics on a lease comparison; concordctl reads the lease ID in hex.
        "lease" => Compare::lease(key, cop, gofmt::parse_int(&val, 16).map_err(|_| invalid())?),
        _ => {
            return Err(format!(
                "malformed comparison: {line} (unknown target {target})"
            ))
        }
    })
}

/// etcdctl's `argify`: words, "double-quoted strings" (Go escapes) and 'single-quoted' ones.
pub fn argify_line(s: &str) -> Vec<String> {
    argify(s)
}

fn argify(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else { break };
        if c == '"' {
            match scan_quoted(rest) {
                Some((v, r)) => {
                    out.push(v);
                    rest = r;
                }
                None => {
                    // An unterminated quote: skip it, as the regexp does.
                    rest = &rest[1..];
                }
            }
        } else if c == '\'' {
            match rest[1..].find('\'') {
                Some(end) => {
                    out.push(rest[1..end + 1].to_string());
                    rest = &rest[end + 2..];
                }
                None => rest = &rest[1..],
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

fn txn_ops_tree() -> cli::Cmd {
    cli::Cmd::new("txn-ops", "", false).subs(vec![
        crate::spec::put_cmd(),
        crate::spec::get_cmd(),
        crate::spec::del_cmd(),
    ])
}

fn parse_op(line: &str) -> Result<TxnOp, String> {
    let args = argify(line);
    if args.len() < 2 {
        return Err(format!("invalid txn compare request: {line}"));
    }
    let Some(inv) = cli::parse_quiet(&txn_ops_tree(), &args) else {
        return Err(format!("invalid txn request: {line}"));
    };
    Ok(match inv.path.first().copied() {
        Some("put") => {
            let (k, v, o) = put_op(&inv.args, &inv.flags, false);
            TxnOp::put_with(k, v, o)
        }
        Some("get") => {
            let (k, o) = get_op(&inv.args, &inv.flags);
            TxnOp::get(k, o)
        }
        Some("del") => {
            let (k, o) = del_op(&inv.args, &inv.flags);
            TxnOp::delete(k, o)
        }
        _ => return Err(format!("invalid txn request: {line}")),
    })
}

/// Lines up to the first empty one; end of input before it is etcdctl's `EOF` error.
fn read_section(input: &mut impl BufRead) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut buf = Vec::new();
        match input.read_until(b'\n', &mut buf) {
            Ok(_) if buf.last() == Some(&b'\n') => {}
            Ok(_) => exit::with_error(exit::INVALID_INPUT, "EOF"),
            Err(e) => exit::with_error(exit::INVALID_INPUT, &e.to_string()),
        }
        let line = String::from_utf8_lossy(&buf).trim().to_string();
        if line.is_empty() {
            return lines;
        }
        lines.push(line);
    }
}

pub async fn txn(mut ctx: Ctx) {
    if !ctx.args().is_empty() {
        exit::with_error(exit::BAD_ARGS, "txn command does not accept argument");
    }
    let interactive = ctx.inv.flags.bool("interactive");
    let (cfg, printer) = ctx.client_config();
    let client = ctx.client(&cfg);
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let prompt = |s: &str| {
        if interactive {
            println!("{s}");
        }
    };
    prompt("compares:");
    let mut compares = Vec::new();
    for line in read_section(&mut input) {
        compares.push(
            parse_compare(&line).unwrap_or_else(|e| exit::with_error(exit::INVALID_INPUT, &e)),
        );
    }
    let ops = |input: &mut std::io::StdinLock<'_>| {
        read_section(input)
            .iter()
            .map(|l| parse_op(l).unwrap_or_else(|e| exit::with_error(exit::INVALID_INPUT, &e)))
            .collect::<Vec<_>>()
    };
    prompt("success requests (get, put, del):");
    let success = ops(&mut input);
    prompt("failure requests (get, put, del):");
    let failure = ops(&mut input);
    drop(input);
    let txn = Txn::new().when(compares).and_then(success).or_else(failure);
    // etcdctl sends the txn without a deadline.
    let resp = cfg
        .call(&Target::Balanced, None, || client.commit_txn(txn.clone()))
        .await
        .unwrap_or_else(|e| exit::with_error(exit::ERROR, &e));
    printer.txn(&resp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_parse_like_etcdctl() {
        let c = parse_compare("value(\"foo\") = \"bar\"").expect("ok");
        assert_eq!(c, Compare::value("foo", CompareOp::Equal, "bar"));
        let c = parse_compare("mod(\"k\") > \"3\"").expect("ok");
        assert_eq!(c, Compare::mod_revision("k", CompareOp::Greater, 3));
        assert_eq!(
            parse_compare("nothing"),
            Err("malformed comparison: nothing".into())
        );
        assert_eq!(
            parse_compare("ver(\"k\") = \"x\""),
            Err("invalid txn compare request: ver(\"k\") = \"x\"".into())
        );
        assert_eq!(
            parse_compare("val(k) = \"x\""),
            Err("malformed comparison: val(k) = \"x\"; got val(\"\")  \"\"".into())
        );
        assert!(parse_compare("foo(\"k\") = \"1\"")
            .unwrap_err()
            .contains("unknown target foo"));
    }

    #[test]
    fn argify_like_etcdctl() {
        assert_eq!(argify("put a b"), ["put", "a", "b"]);
        assert_eq!(argify("put \"a b\" \"c\\n\""), ["put", "a b", "c\n"]);
        assert_eq!(argify("  get   k --prefix "), ["get", "k", "--prefix"]);
    }

    #[test]
    fn ops_parse_like_etcdctl() {
        assert!(parse_op("put a b").is_ok());
        assert!(parse_op("get a --prefix").is_ok());
        assert_eq!(
            parse_op("foo a b").err(),
            Some("invalid txn request: foo a b".into())
        );
        assert_eq!(
            parse_op("put a b --bogus").err(),
            Some("invalid txn request: put a b --bogus".into())
        );
        assert_eq!(
            parse_op("get").err(),
            Some("invalid txn compare request: get".into())
        );
    }
}
