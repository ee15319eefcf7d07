//! The bits of Go's standard library whose exact output etcdctl shows: `strconv.Quote` (`%q`),
//! `strconv.ParseInt`/`ParseBool` and their error texts, `time.Duration` parsing and printing,
//! `encoding/json` string escaping, go-humanize's `Bytes`, and `%v` of a string slice.

use std::fmt::Write as _;
use std::time::Duration;

/// Whether Go's `unicode.IsPrint` holds, closely enough: every char but controls, spaces
/// other than U+0020, and the invisible format characters that show up in practice.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// Go's `strconv.Quote` of raw bytes (what `%q` prints for a string or `[]byte`): printable
/// UTF-8 as is, the usual backslash escapes, `\xNN` for bytes that are not UTF-8.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, None),
            Err(e) => {
                let (ok, tail) = rest.split_at(e.valid_up_to());
                // Safe: the prefix was just validated.
                let s = std::str::from_utf8(ok).unwrap_or_default();
                let bad_len = e.error_len().unwrap_or(tail.len()).max(1);
                (s, Some(&tail[..bad_len.min(tail.len())]))
            }
        };
        for c in valid.chars() {
            match c {
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                c if is_print(c) => out.push(c),
                c if (c as u32) < 0x80 => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if (c as u32) < 0x10000 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
        }
        let consumed = valid.len();
        match bad {
            Some(b) => {
                for byte in b {
                    let _ = write!(out, "\\x{byte:02x}");
                }
                rest = &rest[consumed + b.len()..];
            }
            None => rest = &rest[consumed..],
        }
    }
    out.push('"');
    out
}

/// [`quote`] of a string.
pub fn quote_str(s: &str) -> String {
    quote(s.as_bytes())
}

/// Go's `%v` of a `[]string`: `[a b c]`.
pub fn string_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// A `strconv` error: `strconv.ParseInt: parsing "x": invalid syntax`.
fn num_error(func: &str, input: &str, why: &str) -> String {
    format!("strconv.{func}: parsing {}: {why}", quote_str(input))
}

/// Go's `strconv.ParseInt(s, base, 64)`, with its error text. Base 0 reads a `0x`, `0o`,
/// `0b` or `0` prefix as Go does.
pub fn parse_int(s: &str, base: u32) -> Result<i64, String> {
    let syntax = || num_error("ParseInt", s, "invalid syntax");
    let range = || num_error("ParseInt", s, "value out of range");
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude =
        parse_digits(digits, base).map_err(|over| if over { range() } else { syntax() })?;
    if neg {
        if magnitude > (i64::MAX as u64) + 1 {
            return Err(range());
        }
        Ok((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).map_err(|_| range())
    }
}

/// Go's `strconv.ParseUint(s, base, 64)`, with its error text.
pub fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    parse_digits(s, base).map_err(|over| {
        num_error(
            "ParseUint",
            s,
            if over {
                "value out of range"
            } else {
                "invalid syntax"
            },
        )
    })
}

/// Digits (with Go's base prefixes when `base` is 0) to a number; `Err(true)` when it
/// overflows, `Err(false)` for bad syntax.
fn parse_digits(s: &str, base: u32) -> Result<u64, bool> {
    if s.is_empty() {
        return Err(false);
    }
    let (base, digits, prefixed) = if base == 0 {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("0x") {
            (16, &s[2..], true)
        } else if lower.starts_with("0o") {
            (8, &s[2..], true)
        } else if lower.starts_with("0b") {
            (2, &s[2..], true)
        } else if s.len() > 1 && s.starts_with('0') {
            (8, &s[1..], true)
        } else {
            (10, s, false)
        }
    } else {
        (base, s, false)
    };
    let mut n: u64 = 0;
    let mut any = false;
    let mut overflow = false;
    for c in digits.chars() {
        // Go accepts underscores between digits only after a base prefix.
        if c == '_' && prefixed {
            continue;
        }
        let d = c.to_digit(base).ok_or(false)?;
        any = true;
        match n
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => n = v,
            None => overflow = true,
        }
    }
    if !any {
        // "0x" alone (a lone "0" was read as decimal above).
        return Err(false);
    }
    if overflow {
        return Err(true);
    }
    Ok(n)
}

/// Go's `strconv.ParseBool`, with its error text.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(num_error("ParseBool", s, "invalid syntax")),
    }
}

/// A Go `time.Duration`: nanoseconds, signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration(pub i64);

impl GoDuration {
    /// As a std duration (negative ones become zero).
    pub fn std(self) -> Duration {
        Duration::from_nanos(self.0.max(0) as u64)
    }

    /// From a std duration (saturating).
    pub fn from_std(d: Duration) -> GoDuration {
        GoDuration(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// Go's `time.ParseDuration`, with its error texts.
pub fn parse_duration(orig: &str) -> Result<GoDuration, String> {
    let invalid = || format!("time: invalid duration {}", quote_str(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(GoDuration(0));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        // The number: digits, optionally a fraction.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..n];
            s = &rest[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let scale: u64 = match unit {
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    quote_str(orig)
                ))
            }
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote_str(other),
                    quote_str(orig)
                ))
            }
        };
        let int: u64 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut v = int.checked_mul(scale).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            // The fraction, scaled, as Go does it (in floating point).
            let f: f64 = format!("0.{frac_part}").parse().map_err(|_| invalid())?;
            v = v
                .checked_add((f * scale as f64) as u64)
                .ok_or_else(invalid)?;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > (1u64 << 63) - 1 && !(neg && total == 1u64 << 63) {
            return Err(invalid());
        }
    }
    let v = if neg {
        (total as i64).wrapping_neg()
    } else {
        total as i64
    };
    Ok(GoDuration(v))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn format_duration(d: GoDuration) -> String {
    let neg = d.0 < 0;
    let u = d.0.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Below a second: the largest sub-second unit.
        let (unit, div) = if u == 0 {
            return "0s".into();
        } else if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, div));
        out.push_str(unit);
    } else {
        let secs_total = u / 1_000_000_000;
        let nanos = u % 1_000_000_000;
        let h = secs_total / 3600;
        let m = (secs_total / 60) % 60;
        let s = secs_total % 60;
        if h > 0 {
            let _ = write!(out, "{h}h");
        }
        if h > 0 || m > 0 {
            let _ = write!(out, "{m}m");
        }
        out.push_str(&fraction(s * 1_000_000_000 + nanos, 1_000_000_000));
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `v / div` with the fraction's trailing zeros dropped (no point when it is whole).
fn fraction(v: u64, div: u64) -> String {
    let whole = v / div;
    let frac = v % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// go-humanize's `Bytes`: SI units, one decimal below 10 (`20 kB`, `1.5 MB`, `7 B`).
pub fn humanize_bytes(s: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let base = 1000f64;
    let e = ((s as f64).ln() / base.ln()).floor();
    let suffix = SIZES[(e as usize).min(SIZES.len() - 1)];
    let val = ((s as f64) / base.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe escapes, `\u00XX` for other
/// controls, U+FFFD for bytes that are not UTF-8).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `encoding/csv` read of one line, as pflag's string slices parse their value:
/// comma-separated, with double quotes around a field that holds commas.
pub fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' => {
                return Err(format!(
                    "parse error on line 1, column {}: bare \" in non-quoted-field",
                    field.len() + 1
                ))
            }
            ',' => {
                out.push(std::mem::take(&mut field));
                at_start = true;
            }
            '\n' | '\r' => {}
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("parse error on line 1: extraneous or missing \" in quoted-field".into());
    }
    out.push(field);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote(b"foo"), "\"foo\"");
        assert_eq!(quote(b"a\"b\\c\n\t"), "\"a\\\"b\\\\c\\n\\t\"");
        assert_eq!(quote(b"\x00\x7f"), "\"\\x00\\x7f\"");
        assert_eq!(quote(b"\xff\xfeok"), "\"\\xff\\xfeok\"");
        assert_eq!(quote("héllo ✓".as_bytes()), "\"héllo ✓\"");
        assert_eq!(quote("\u{a0}".as_bytes()), "\"\\u00a0\"");
    }

    #[test]
    fn parses_ints_like_go() {
        assert_eq!(parse_int("16", 0), Ok(16));
        assert_eq!(parse_int("0x10", 0), Ok(16));
        assert_eq!(parse_int("010", 0), Ok(8));
        assert_eq!(parse_int("0", 0), Ok(0));
        assert_eq!(parse_int("-5", 10), Ok(-5));
        assert_eq!(parse_int("ff", 16), Ok(255));
        assert_eq!(parse_int("-8000000000000000", 16), Ok(i64::MIN));
        assert_eq!(
            parse_int("abc", 0),
            Err("strconv.ParseInt: parsing \"abc\": invalid syntax".into())
        );
        assert_eq!(
            parse_int("99999999999999999999", 0),
            Err("strconv.ParseInt: parsing \"99999999999999999999\": value out of range".into())
        );
        assert_eq!(
            parse_int("", 10),
            Err("strconv.ParseInt: parsing \"\": invalid syntax".into())
        );
        assert_eq!(parse_uint("ffffffffffffffff", 16), Ok(u64::MAX));
        assert_eq!(
            parse_uint("-1", 16),
            Err("strconv.ParseUint: parsing \"-1\": invalid syntax".into())
        );
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("5s"), Ok(GoDuration(5_000_000_000)));
        assert_eq!(parse_duration("1m30s"), Ok(GoDuration(90_000_000_000)));
        assert_eq!(parse_duration("1.5h"), Ok(GoDuration(5_400_000_000_000)));
        assert_eq!(parse_duration("300ms"), Ok(GoDuration(300_000_000)));
        assert_eq!(parse_duration("0"), Ok(GoDuration(0)));
        assert_eq!(
            parse_duration("x"),
            Err("time: invalid duration \"x\"".into())
        );
        assert_eq!(
            parse_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            parse_duration("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".into())
        );
        for (ns, s) in [
            (0, "0s"),
            (5_000_000_000, "5s"),
            (3_648_437, "3.648437ms"),
            (1_500, "1.5µs"),
            (12, "12ns"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_000_000_001, "1.000000001s"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(format_duration(GoDuration(ns)), s);
        }
    }

    #[test]
    fn humanizes_like_go() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(9), "9 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(1500), "1.5 kB");
        assert_eq!(humanize_bytes(999), "999 B");
        assert_eq!(humanize_bytes(1_000_000), "1.0 MB");
        assert_eq!(humanize_bytes(25_165_824), "25 MB");
    }

    #[test]
    fn json_escapes_like_go() {
        assert_eq!(
            json_string("a<b>&\"\\\n\u{1}"),
            "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001\""
        );
    }

    #[test]
    fn csv_like_go() {
        assert_eq!(csv_fields("a,b"), Ok(vec!["a".into(), "b".into()]));
        assert_eq!(csv_fields("\"a,b\",c"), Ok(vec!["a,b".into(), "c".into()]));
        assert_eq!(csv_fields(""), Ok(vec![]));
    }
}
