//! Command-line parsing and help the way etcdctl's libraries (cobra 1.6, pflag 1.0) do them,
//! down to their error texts: finding the command (with unique-prefix matching and "Did you
//! mean this?" suggestions), flags interspersed with arguments, `--` ending the flags, and the
//! help text etcdctl renders through its own template and Go's tabwriter.

use std::collections::BTreeMap;
use std::io::Write;

use crate::exit;
use crate::gofmt::{self, GoDuration};
use crate::tabwriter;

/// etcdctl's version, which concordctl reports as its own: it is a drop-in for it.
pub const VERSION: &str = "3.4.23";
/// The API version etcdctl 3.4 reports.
pub const API_VERSION: &str = "3.4";

/// A flag's value type, as pflag names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Str,
    StrSlice,
    Int,
    Int64,
    Duration,
}

/// A flag declaration. `default` is the default as pflag prints it.
#[derive(Clone, Debug)]
pub struct Flag {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub default: &'static str,
    pub usage: &'static str,
}

impl Flag {
    /// Flags etcdctl 3.4 does not have: accepted, but left out of the help so that it stays
    /// etcdctl's.
    fn hidden(&self) -> bool {
        matches!(self.name, "count-only" | "duration")
    }
}

/// A command declaration.
#[derive(Clone, Debug)]
pub struct Cmd {
    pub name: &'static str,
    pub use_: &'static str,
    pub short: &'static str,
    pub long: &'static str,
    pub local: Vec<Flag>,
    pub persistent: Vec<Flag>,
    pub subs: Vec<Cmd>,
    pub runnable: bool,
    /// cobra's own help command is never suggested.
    pub no_suggest: bool,
}

impl Cmd {
    pub fn new(use_: &'static str, short: &'static str, runnable: bool) -> Cmd {
        Cmd {
            name: use_.split(' ').next().unwrap_or(use_),
            use_,
            short,
            long: "",
            local: Vec::new(),
            persistent: Vec::new(),
            subs: Vec::new(),
            runnable,
            no_suggest: false,
        }
    }
    pub fn flags(mut self, f: Vec<Flag>) -> Cmd {
        self.local = f;
        self
    }
    pub fn persistent(mut self, f: Vec<Flag>) -> Cmd {
        self.persistent = f;
        self
    }
    pub fn subs(mut self, s: Vec<Cmd>) -> Cmd {
        self.subs = s;
        self
    }
    pub fn long(mut self, l: &'static str) -> Cmd {
        self.long = l;
        self
    }
    pub fn hidden_from_suggestions(mut self) -> Cmd {
        self.no_suggest = true;
        self
    }
}

/// A flag's current value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Str(String),
    /// The items, and whether the default was replaced yet (pflag appends after the first set).
    Slice(Vec<String>, bool),
    Int(i64),
    Duration(GoDuration),
}

impl Value {
    /// pflag's `Value.String()`.
    pub fn to_go_string(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => s.clone(),
            Value::Slice(items, _) => format!("[{}]", items.join(",")),
            Value::Int(i) => i.to_string(),
            Value::Duration(d) => gofmt::format_duration(*d),
        }
    }
}

/// The flags of one invocation: every flag visible to the command, by name.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub decls: BTreeMap<&'static str, Flag>,
    pub values: BTreeMap<&'static str, Value>,
    pub changed: std::collections::BTreeSet<&'static str>,
    /// Flags inherited from parent commands (the global ones and e.g. `endpoint --cluster`).
    pub inherited: std::collections::BTreeSet<&'static str>,
}

fn initial(f: &Flag) -> Value {
    match f.kind {
        Kind::Bool => Value::Bool(f.default == "true"),
        Kind::Str => Value::Str(f.default.to_string()),
        Kind::StrSlice => {
            let inner = f.default.trim_start_matches('[').trim_end_matches(']');
            let items = if inner.is_empty() {
                Vec::new()
            } else {
                inner.split(',').map(str::to_string).collect()
            };
            Value::Slice(items, false)
        }
        Kind::Int | Kind::Int64 => Value::Int(f.default.parse().unwrap_or(0)),
        Kind::Duration => Value::Duration(gofmt::parse_duration(f.default).unwrap_or_default()),
    }
}

impl Flags {
    fn add(&mut self, f: &Flag, inherited: bool) {
        self.values.insert(f.name, initial(f));
        self.decls.insert(f.name, f.clone());
        if inherited {
            self.inherited.insert(f.name);
        } else {
            self.inherited.remove(f.name);
        }
    }

    /// Declares a flag that takes and ignores any value (etcdctl does this for
    /// `ETCDCTL_WATCH_KEY` and `ETCDCTL_WATCH_RANGE_END` on `watch`).
    pub fn add_discard(&mut self, name: &'static str) {
        self.add(
            &Flag {
                name,
                short: None,
                kind: Kind::Str,
                default: "",
                usage: "",
            },
            true,
        );
    }

    fn by_short(&self, c: char) -> Option<&'static str> {
        self.decls
            .values()
            .find(|f| f.short == Some(c))
            .map(|f| f.name)
    }

    /// pflag's `Set`: parses `v` into the flag; the error as pflag words it.
    pub fn set(&mut self, name: &str, v: &str) -> Result<(), String> {
        let Some(decl) = self.decls.get(name).cloned() else {
            return Err(format!("no such flag -{name}"));
        };
        let shown = match decl.short {
            Some(c) => format!("-{c}, --{}", decl.name),
            None => format!("--{}", decl.name),
        };
        let bad = |e: String| {
            format!(
                "invalid argument {} for {} flag: {e}",
                gofmt::quote_str(v),
                gofmt::quote_str(&shown)
            )
        };
        let value = match (decl.kind, self.values.get(decl.name)) {
            (Kind::Bool, _) => Value::Bool(gofmt::parse_bool(v).map_err(bad)?),
            (Kind::Str, _) => Value::Str(v.to_string()),
            (Kind::Int | Kind::Int64, _) => Value::Int(gofmt::parse_int(v, 0).map_err(bad)?),
            (Kind::Duration, _) => Value::Duration(gofmt::parse_duration(v).map_err(bad)?),
            (Kind::StrSlice, Some(Value::Slice(old, set))) => {
                let mut items = gofmt::csv_fields(v).map_err(bad)?;
                if *set {
                    let mut all = old.clone();
                    all.append(&mut items);
                    items = all;
                }
                Value::Slice(items, true)
            }
            (Kind::StrSlice, _) => Value::Slice(gofmt::csv_fields(v).map_err(bad)?, true),
        };
        self.values.insert(decl.name, value);
        self.changed.insert(decl.name);
        Ok(())
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    pub fn string(&self, name: &str) -> String {
        match self.values.get(name) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.values.get(name) {
            Some(Value::Int(i)) => *i,
            _ => 0,
        }
    }

    pub fn duration(&self, name: &str) -> GoDuration {
        match self.values.get(name) {
            Some(Value::Duration(d)) => *d,
            _ => GoDuration::default(),
        }
    }

    pub fn slice(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(Value::Slice(items, _)) => items.clone(),
            _ => Vec::new(),
        }
    }

    pub fn changed(&self, name: &str) -> bool {
        self.changed.contains(name)
    }
}

/// What the command line asks for.
pub struct Invocation {
    /// The command's path below the root (e.g. `["lease", "grant"]`).
    pub path: Vec<&'static str>,
    /// Its positional arguments.
    pub args: Vec<String>,
    pub flags: Flags,
    /// The whole command line (watch reads it to find `--`).
    pub os_args: Vec<String>,
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The flags a command sees: its own, then its ancestors' persistent ones.
fn visible_flags(chain: &[&Cmd]) -> Flags {
    let mut flags = Flags::default();
    let (last, parents) = chain.split_last().expect("a command");
    for p in parents {
        for f in &p.persistent {
            flags.add(f, true);
        }
    }
    for f in last.persistent.iter().chain(&last.local) {
        flags.add(f, false);
    }
    let help = Flag {
        name: "help",
        short: Some('h'),
        kind: Kind::Bool,
        default: "false",
        usage: "",
    };
    flags.add(&help, false);
    flags
}

/// cobra's `stripFlags`: the words of `args` that are not flags or flag values.
fn strip_flags(args: &[String], flags: &Flags) -> Vec<String> {
    let takes_value_long =
        |name: &str| !flags.decls.get(name).is_some_and(|f| f.kind == Kind::Bool);
    let takes_value_short = |c: char| {
        !flags
            .by_short(c)
            .and_then(|n| flags.decls.get(n))
            .is_some_and(|f| f.kind == Kind::Bool)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        i += 1;
        if s == "--" {
            break;
        }
        let long_with_value = s.starts_with("--") && !s.contains('=') && takes_value_long(&s[2..]);
        let short_with_value = !s.starts_with("--")
            && s.starts_with('-')
            && !s.contains('=')
            && s.chars().count() == 2
            && takes_value_short(s.chars().nth(1).unwrap_or('-'));
        if long_with_value || short_with_value {
            if args.len() - i <= 1 {
                break;
            }
            i += 1;
            continue;
        }
        if !s.is_empty() && !s.starts_with('-') {
            out.push(s.clone());
        }
    }
    out
}

/// The subcommand `name` of `cmd`: exact, or the only one it is a prefix of.
fn find_next<'a>(cmd: &'a Cmd, name: &str) -> Option<&'a Cmd> {
    if let Some(c) = cmd.subs.iter().find(|c| c.name == name) {
        return Some(c);
    }
    let mut matches = cmd.subs.iter().filter(|c| c.name.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

fn suggestions(root: &Cmd, typed: &str) -> String {
    let found: Vec<&str> = root
        .subs
        .iter()
        .filter(|c| !c.no_suggest)
        .filter(|c| {
            levenshtein(typed, c.name) <= 2
                || c.name.to_lowercase().starts_with(&typed.to_lowercase())
        })
        .map(|c| c.name)
        .collect();
    if found.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n\nDid you mean this?\n");
    for f in found {
        s.push('\t');
        s.push_str(f);
        s.push('\n');
    }
    s
}

/// What parsing decided.
pub enum Parsed {
    /// Run this command.
    Run(Invocation),
    /// Help was printed (or is all there is to do): exit 0.
    Done,
}

/// Finds the command and parses its flags, printing help or cobra's errors (and exiting on
/// those) as etcdctl does.
pub fn parse(root: &Cmd, os_args: Vec<String>) -> Parsed {
    let args: Vec<String> = os_args.iter().skip(1).cloned().collect();
    let (chain, rest) = find_command(root, &args);
    let cmd = *chain.last().expect("root");
    if chain.len() == 1 {
        let words = strip_flags(&rest, &visible_flags(&chain));
        if let Some(w) = words.first() {
            let err = format!(
                "unknown command {} for \"etcdctl\"{}",
                gofmt::quote_str(w),
                suggestions(root, w)
            );
            let mut e = std::io::stderr().lock();
            let _ = writeln!(e, "Error: {err}");
            let _ = writeln!(e, "Run 'etcdctl --help' for usage.");
            drop(e);
            exit::with_error(exit::ERROR, &err);
        }
    }
    let mut flags = visible_flags(&chain);
    let positional = match parse_flags(&mut flags, &rest) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: {e}");
            print_usage(&chain, &flags);
            eprintln!();
            exit::with_error(exit::ERROR, &e);
        }
    };
    let path: Vec<&'static str> = chain.iter().skip(1).map(|c| c.name).collect();
    if flags.bool("help") || !cmd.runnable {
        print_usage(&chain, &flags);
        return Parsed::Done;
    }
    if path == ["help"] {
        return help_command(root, &positional);
    }
    Parsed::Run(Invocation {
        path,
        args: positional,
        flags,
        os_args,
    })
}

/// Finds the command `args` name, level by level, as cobra does: the chain from `root` to it,
/// and the arguments left once the command words are taken out.
fn find_command<'a>(root: &'a Cmd, args: &[String]) -> (Vec<&'a Cmd>, Vec<String>) {
    let mut chain: Vec<&Cmd> = vec![root];
    let mut rest = args.to_vec();
    while let Some(&cur) = chain.last() {
        let words = strip_flags(&rest, &visible_flags(&chain));
        let Some(next) = words.first() else { break };
        let Some(sub) = find_next(cur, next) else {
            break;
        };
        if let Some(pos) = rest.iter().position(|a| a == next) {
            rest.remove(pos);
        }
        chain.push(sub);
    }
    (chain, rest)
}

/// Parses `args` against a small tree without global flags: how etcdctl reads the operations
/// of a `txn` (`None` where cobra would fail). A flag error prints cobra's default usage of the
/// command on stderr, as that inner cobra does.
pub fn parse_quiet(root: &Cmd, args: &[String]) -> Option<Invocation> {
    let (chain, rest) = find_command(root, args);
    if chain.len() == 1 {
        return None;
    }
    let mut flags = visible_flags(&chain);
    let Ok(positional) = parse_flags(&mut flags, &rest) else {
        eprintln!("{}", cobra_usage(chain.last()?));
        return None;
    };
    if flags.bool("help") {
        return None;
    }
    Some(Invocation {
        path: chain.iter().skip(1).map(|c| c.name).collect(),
        args: positional,
        flags,
        os_args: args.to_vec(),
    })
}

/// cobra's default usage of a subcommand of a nameless root, with pflag's `FlagUsages`.
fn cobra_usage(cmd: &Cmd) -> String {
    let mut flags: Vec<Flag> = cmd.local.clone();
    flags.push(Flag {
        name: "help",
        short: Some('h'),
        kind: Kind::Bool,
        default: "false",
        usage: "",
    });
    flags.retain(|f| !f.hidden());
    flags.sort_by_key(|f| f.name);
    let mut lines = Vec::new();
    for f in &flags {
        let mut line = match f.short {
            Some(c) => format!("  -{c}, --{}", f.name),
            None => format!("      --{}", f.name),
        };
        let type_name = match f.kind {
            Kind::Bool => "",
            Kind::Str => "string",
            Kind::StrSlice => "strings",
            Kind::Int | Kind::Int64 => "int",
            Kind::Duration => "duration",
        };
        if !type_name.is_empty() {
            line.push(' ');
            line.push_str(type_name);
        }
        let usage = if f.name == "help" {
            format!("help for {}", cmd.name)
        } else {
            f.usage.to_string()
        };
        let zero = match f.kind {
            Kind::Str => f.default.is_empty(),
            Kind::Bool => f.default == "false",
            Kind::Int | Kind::Int64 => f.default == "0",
            Kind::Duration => f.default == "0s",
            Kind::StrSlice => f.default == "[]",
        };
        let default = if zero {
            String::new()
        } else if f.kind == Kind::Str {
            format!(" (default {})", gofmt::quote_str(f.default))
        } else {
            format!(" (default {})", f.default)
        };
        lines.push((line, format!("{usage}{default}")));
    }
    let maxlen = lines.iter().map(|(l, _)| l.len() + 1).max().unwrap_or(0);
    let mut out = format!("Usage:\n   {} [flags]\n\nFlags:\n", cmd.use_);
    for (l, u) in lines {
        out.push_str(&format!("{l} {} {u}\n", " ".repeat(maxlen - l.len())));
    }
    out
}

/// `etcdctl help [command]`.
fn help_command(root: &Cmd, args: &[String]) -> Parsed {
    let mut chain: Vec<&Cmd> = vec![root];
    for a in args {
        match find_next(chain.last().expect("root"), a) {
            Some(c) => chain.push(c),
            None => {
                if chain.len() == 1 {
                    eprintln!("Unknown help topic [`{}`]", args.join(" "));
                    // cobra shows the root's usage before it has given it a help flag.
                    let text = render_usage(&chain, false);
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(text.as_bytes());
                    let _ = out.flush();
                    return Parsed::Done;
                }
                break;
            }
        }
    }
    let flags = visible_flags(&chain);
    print_usage(&chain, &flags);
    Parsed::Done
}

/// Parses `args` against a bare flag set (no help flag): pflag's `FlagSet.Parse`, as
/// `watch -i` uses it per line.
pub fn parse_flag_set(mut flags: Flags, args: &[String]) -> Result<(Vec<String>, Flags), String> {
    let positional = parse_flags(&mut flags, args)?;
    Ok((positional, flags))
}

/// pflag's parse: fills `flags`, returns the positional arguments.
fn parse_flags(flags: &mut Flags, args: &[String]) -> Result<Vec<String>, String> {
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            positional.extend(args[i..].iter().cloned());
            break;
        }
        if a.len() < 2 || !a.starts_with('-') {
            positional.push(a.clone());
            continue;
        }
        if let Some(body) = a.strip_prefix("--") {
            if body.starts_with('-') || body.starts_with('=') {
                return Err(format!("bad flag syntax: {a}"));
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(decl) = flags.decls.get(name).cloned() else {
                return Err(format!("unknown flag: --{name}"));
            };
            let value = match value {
                Some(v) => v,
                None if decl.kind == Kind::Bool => "true".into(),
                None if i < args.len() => {
                    i += 1;
                    args[i - 1].clone()
                }
                None => return Err(format!("flag needs an argument: {a}")),
            };
            flags.set(decl.name, &value)?;
            continue;
        }
        // Shorthands: -abc, -wjson, -w=json, -w json.
        let shorts: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < shorts.len() {
            let c = shorts[j];
            let Some(name) = flags.by_short(c) else {
                return Err(format!("unknown shorthand flag: '{c}' in {a}"));
            };
            let kind = flags.decls.get(name).map(|f| f.kind);
            let rest: String = shorts[j + 1..].iter().collect();
            if kind == Some(Kind::Bool) {
                if let Some(v) = rest.strip_prefix('=') {
                    flags.set(name, v)?;
                    break;
                }
                flags.set(name, "true")?;
                j += 1;
                continue;
            }
            let value = if !rest.is_empty() {
                rest.strip_prefix('=').unwrap_or(&rest).to_string()
            } else if i < args.len() {
                i += 1;
                args[i - 1].clone()
            } else {
                return Err(format!("flag needs an argument: '{c}' in {a}"));
            };
            flags.set(name, &value)?;
            break;
        }
    }
    Ok(positional)
}

/// `cmdName` of etcdctl's help template: the names from below `start` down to `cmd`.
fn cmd_name(chain: &[&Cmd], start: usize) -> String {
    chain[start + 1..]
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// etcdctl's `etcdFlagUsages`.
fn flag_usages(flags: &[&Flag]) -> String {
    let mut sorted: Vec<&&Flag> = flags.iter().filter(|f| !f.hidden()).collect();
    sorted.sort_by_key(|f| f.name);
    let mut out = String::new();
    for f in sorted {
        match f.short {
            Some(c) => out.push_str(&format!("  -{c}, --{}", f.name)),
            None => out.push_str(&format!("      --{}", f.name)),
        }
        let bool_flag = f.kind == Kind::Bool;
        if bool_flag {
            out.push('[');
        }
        if f.kind == Kind::Str {
            out.push('=');
            out.push_str(&gofmt::quote_str(f.default));
        } else {
            out.push('=');
            out.push_str(f.default);
        }
        if bool_flag {
            out.push(']');
        }
        out.push('\t');
        out.push_str(f.usage);
        out.push('\n');
    }
    out
}

fn subcommands<'a>(cmd: &'a Cmd, prefix: &mut Vec<&'a str>, out: &mut Vec<(String, &'a Cmd)>) {
    let mut subs: Vec<&Cmd> = cmd.subs.iter().collect();
    subs.sort_by_key(|c| c.name);
    for s in subs {
        prefix.push(s.name);
        out.push((prefix.join(" "), s));
        subcommands(s, prefix, out);
        prefix.pop();
    }
}

/// The usage text of the last command of `chain`, as etcdctl's template renders it.
pub fn usage_text(chain: &[&Cmd]) -> String {
    render_usage(chain, true)
}

fn render_usage(chain: &[&Cmd], with_help_flag: bool) -> String {
    let cmd = *chain.last().expect("a command");
    let has_parent = chain.len() > 1;
    let mut t = String::new();
    t.push_str("NAME:\n");
    if has_parent {
        t.push_str(&format!("\t{} - {}\n", cmd_name(chain, 0), cmd.short));
    } else {
        t.push_str(&format!("\t{} - {}\n", cmd.name, cmd.short));
    }
    t.push_str("\nUSAGE:\n");
    let parents: Vec<&str> = chain[..chain.len() - 1].iter().map(|c| c.name).collect();
    let use_line = if has_parent {
        format!("{} {}", parents.join(" "), cmd.use_)
    } else {
        cmd.use_.to_string()
    };
    t.push_str(&format!("\t{use_line} [flags]\n"));
    if !has_parent {
        t.push_str(&format!("\nVERSION:\n\t{VERSION}\n"));
    }
    if !cmd.subs.is_empty() {
        t.push_str(&format!("\nAPI VERSION:\n\t{API_VERSION}\n"));
        t.push_str("\n\nCOMMANDS:\n");
        let mut all = Vec::new();
        subcommands(cmd, &mut Vec::new(), &mut all);
        for (name, c) in all {
            if c.runnable {
                t.push_str(&format!("\t{name}\t{}\n", c.short));
            }
        }
    }
    if !cmd.long.is_empty() {
        t.push_str("\nDESCRIPTION:\n");
        for line in cmd
            .long
            .trim_matches(|c| c == '\n' || c == '\t' || c == ' ')
            .split('\n')
        {
            t.push_str(&format!("\t{line}\n"));
        }
    }
    let flags = visible_flags(chain);
    let help_usage = format!("help for {}", cmd.name);
    let mut local: Vec<Flag> = Vec::new();
    let mut inherited: Vec<Flag> = Vec::new();
    for (name, decl) in &flags.decls {
        if *name == "help" && !with_help_flag {
            continue;
        }
        let mut f = decl.clone();
        if *name == "help" {
            f.usage = Box::leak(help_usage.clone().into_boxed_str());
        }
        if flags.inherited.contains(name) {
            inherited.push(f);
        } else {
            local.push(f);
        }
    }
    if !local.is_empty() {
        t.push_str("\nOPTIONS:\n");
        t.push_str(&flag_usages(&local.iter().collect::<Vec<_>>()));
    }
    if !inherited.is_empty() {
        t.push_str("\nGLOBAL OPTIONS:\n");
        t.push_str(&flag_usages(&inherited.iter().collect::<Vec<_>>()));
    }
    t.push('\n');
    tabwriter::align(&t)
}

/// Prints the usage of the command of `chain` on stdout.
fn print_usage(chain: &[&Cmd], _flags: &Flags) {
    let text = usage_text(chain);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        std::iter::once("etcdctl")
            .chain(s.iter().copied())
            .map(String::from)
            .collect()
    }

    fn run(s: &[&str]) -> Invocation {
        match parse(&crate::spec::root(), args(s)) {
            Parsed::Run(inv) => inv,
            Parsed::Done => panic!("help"),
        }
    }

    #[test]
    fn finds_commands_and_flags() {
        let inv = run(&["--endpoints=a:1,b:2", "get", "k", "--prefix", "-w", "json"]);
        assert_eq!(inv.path, ["get"]);
        assert_eq!(inv.args, ["k"]);
        assert!(inv.flags.bool("prefix"));
        assert_eq!(inv.flags.string("write-out"), "json");
        assert_eq!(inv.flags.slice("endpoints"), ["a:1", "b:2"]);

        let inv = run(&["mem", "li", "-wtable"]);
        assert_eq!(inv.path, ["member", "list"]);
        assert_eq!(inv.flags.string("write-out"), "table");

        let inv = run(&["put", "--", "k", "-v"]);
        assert_eq!(inv.args, ["k", "-v"]);

        // A second --endpoints appends.
        let inv = run(&["--endpoints=a:1", "--endpoints", "b:2", "get", "k"]);
        assert_eq!(inv.flags.slice("endpoints"), ["a:1", "b:2"]);

        let inv = run(&["endpoint", "hashkv", "--cluster", "--rev=0x10"]);
        assert!(inv.flags.bool("cluster"));
        assert_eq!(inv.flags.int("rev"), 16);
        assert!(inv.flags.inherited.contains("cluster"));
        assert!(!inv.flags.inherited.contains("rev"));
    }

    #[test]
    fn flag_errors_as_pflag_words_them() {
        let mut f = visible_flags(&[&crate::spec::root(), &crate::spec::get_cmd()]);
        let e = |f: &mut Flags, a: &[&str]| {
            parse_flags(f, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap_err()
        };
        assert_eq!(e(&mut f, &["--bogus"]), "unknown flag: --bogus");
        assert_eq!(e(&mut f, &["-x"]), "unknown shorthand flag: 'x' in -x");
        assert_eq!(e(&mut f, &["--limit"]), "flag needs an argument: --limit");
        assert_eq!(e(&mut f, &["-w"]), "flag needs an argument: 'w' in -w");
        assert_eq!(
            e(&mut f, &["--limit=abc"]),
            "invalid argument \"abc\" for \"--limit\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            e(&mut f, &["--dial-timeout=x"]),
            "invalid argument \"x\" for \"--dial-timeout\" flag: time: invalid duration \"x\""
        );
    }

    #[test]
    fn help_text_matches_etcdctl_layout() {
        let root = crate::spec::root();
        let get = root.subs.iter().find(|c| c.name == "get").expect("get");
        let text = usage_text(&[&root, get]);
        assert!(text.starts_with("NAME:\n\tget - Gets the key or a range of keys\n\nUSAGE:\n\tetcdctl get [options] <key> [range_end] [flags]\n\nOPTIONS:\n      --consistency=\"l\"\t\t\tLinearizable(l) or Serializable(s)\n"), "{text}");
        assert!(
            text.contains("  -h, --help[=false]\t\t\thelp for get\n"),
            "{text}"
        );
        assert!(
            text.contains("GLOBAL OPTIONS:\n      --cacert=\"\"\t\t\t\tverify"),
            "{text}"
        );
        assert!(!text.contains("count-only"));
        assert!(text.ends_with("set the output format (fields, json, protobuf, simple, table)\n\n"));
    }

    #[test]
    fn suggests_like_cobra() {
        let root = crate::spec::root();
        assert_eq!(
            suggestions(&root, "m"),
            "\n\nDid you mean this?\n\tmove-leader\n\tmember\n\tmake-mirror\n\tmigrate\n"
        );
        assert_eq!(suggestions(&root, "foo"), "");
        assert_eq!(
            suggestions(&root, "gett"),
            "\n\nDid you mean this?\n\tget\n"
        );
    }
}
