//! CronJob schedules: `robfig/cron/v3`'s `ParseStandard` (five fields or a `@descriptor`), with
//! its error texts. The API server's validation and the CronJob controller parse with this one
//! parser, so a schedule the API accepts is the schedule the controller runs.

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Five cron fields as bit sets (bit n for value n), with whether the day-of-month and
    /// day-of-week fields were `*` (then both must match, else either).
    Cron {
        /// Minutes 0–59.
        minute: u64,
        /// Hours 0–23.
        hour: u64,
        /// Days of the month 1–31.
        dom: u64,
        /// Months 1–12.
        month: u64,
        /// Days of the week 0–6, Sunday 0.
        dow: u64,
        /// Day of month was `*` or `?` (without a step above 1).
        dom_star: bool,
        /// Day of week was `*` or `?` (without a step above 1).
        dow_star: bool,
    },
    /// `@every <duration>`: a constant delay, in whole seconds (at least 1).
    Every(i64),
}

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Go's `strconv.Atoi` then cron's "negative number" check.
fn must_parse_int(expr: &str) -> Result<u64, String> {
    let syntax = || {
        format!("failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": invalid syntax")
    };
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(syntax());
    }
    match expr.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {expr}")),
        Ok(n) => Ok(n as u64),
        Err(_) => Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": value out of range"
        )),
    }
}

fn parse_int_or_name(expr: &str, b: &Bounds) -> Result<u64, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, v)) = b.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    must_parse_int(expr)
}

/// One range (`*`, `?`, `a`, `a-b`, each with an optional `/step`) as a bit set, and whether it
/// was a star (robfig's `getRange`).
fn range_bits(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let mut star = false;
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        star = true;
        (b.min, b.max)
    } else {
        let start = parse_int_or_name(low_and_high[0], b)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    // The bounds are at most 59, so every value is a bit of a u64.
    let bits = (start..=end)
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .fold(0u64, |bits, v| bits | 1 << v);
    Ok((bits, star))
}

/// One comma-separated field (robfig's `getField`; empty items are skipped, as Go's
/// `FieldsFunc` does).
fn field_bits(field: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let mut bits = 0;
    let mut star = false;
    for expr in field.split(',').filter(|s| !s.is_empty()) {
        let (b, s) = range_bits(expr, b)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

/// Go's `time.ParseDuration`, in nanoseconds (as a float: only whole seconds are kept), with
/// its error texts.
fn go_duration(s: &str) -> Result<f64, String> {
    let quoted = crate::field::go_quote(s);
    let invalid = || format!("time: invalid duration {quoted}");
    let negative = s.starts_with('-');
    let mut rest = s.strip_prefix(['+', '-']).unwrap_or(s);
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        // Digits, then an optional fraction: Go's leadingInt and leadingFraction.
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let mut n = digits(rest);
        if rest[n..].starts_with('.') {
            n += 1 + digits(&rest[n + 1..]);
        }
        let number = &rest[..n];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..u];
        let nanos = match unit {
            "" => return Err(format!("time: missing unit in duration {quoted}")),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {quoted}",
                    crate::field::go_quote(unit)
                ))
            }
        };
        total += value * nanos;
        rest = &rest[u..];
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(if negative { -total } else { total })
}

/// Five fields, each as robfig parses it.
fn cron_fields(spec: &str) -> Result<Schedule, String> {
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let (minute, _) = field_bits(fields[0], &MINUTES)?;
    let (hour, _) = field_bits(fields[1], &HOURS)?;
    let (dom, dom_star) = field_bits(fields[2], &DOM)?;
    let (month, _) = field_bits(fields[3], &MONTHS)?;
    let (dow, dow_star) = field_bits(fields[4], &DOW)?;
    Ok(Schedule::Cron {
        minute,
        hour,
        dom,
        month,
        dow,
        dom_star,
        dow_star,
    })
}

/// `cron.ParseStandard(spec)`: the schedule, and the zone a `TZ=` / `CRON_TZ=` prefix names
/// (checked by the caller, which has the zone database); `Err` carries the library's message.
/// A prefix with nothing after it is an empty spec (robfig itself panics on it).
pub fn parse(spec: &str) -> Result<(Schedule, Option<String>), String> {
    if spec.is_empty() {
        return Err("empty spec string".to_string());
    }
    let mut spec = spec;
    let mut zone = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let (tz, rest) = spec.split_once(' ').unwrap_or((spec, ""));
        zone = tz.split_once('=').map(|(_, z)| z.to_string());
        spec = rest.trim();
        if spec.is_empty() {
            return Err("empty spec string".to_string());
        }
    }
    let schedule = match spec {
        "@yearly" | "@annually" => cron_fields("0 0 1 1 *"),
        "@monthly" => cron_fields("0 0 1 * *"),
        "@weekly" => cron_fields("0 0 * * 0"),
        "@daily" | "@midnight" => cron_fields("0 0 * * *"),
        "@hourly" => cron_fields("0 * * * *"),
        _ if spec.starts_with('@') => match spec.strip_prefix("@every ") {
            // robfig's `Every`: below a second is a second; otherwise truncated to seconds.
            Some(d) => go_duration(d)
                .map(|nanos| Schedule::Every(((nanos / 1e9) as i64).max(1)))
                .map_err(|e| format!("failed to parse duration {spec}: {e}")),
            None => Err(format!("unrecognized descriptor: {spec}")),
        },
        _ => cron_fields(spec),
    }?;
    Ok((schedule, zone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(s: &str) -> Schedule {
        parse(s).expect("schedule").0
    }

    #[test]
    fn fields_descriptors_and_steps() {
        assert_eq!(sched("@hourly"), sched("0 * * * *"));
        assert_eq!(sched("@daily"), sched("0 0 * * *"));
        let Schedule::Cron {
            minute,
            dow,
            dom_star,
            dow_star,
            month,
            ..
        } = sched("*/15 * * jan-mar mon,fri")
        else {
            panic!("cron");
        };
        assert_eq!(minute, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(dow, 1 << 1 | 1 << 5);
        assert_eq!(month, 0b1110);
        assert!(dom_star && !dow_star);
        assert_eq!(sched("5/20 * * * *"), sched("5,25,45 * * * *"));
        assert_eq!(sched("0 0 1,,15 * *"), sched("0 0 1,15 * *"));
        // A step above 1 makes a star a plain set (robfig's starBit).
        let Schedule::Cron { dom_star, .. } = sched("0 0 */2 * 1") else {
            panic!("cron");
        };
        assert!(!dom_star);
        assert_eq!(sched("@every 1h30m"), Schedule::Every(5400));
        assert_eq!(sched("@every 1500ms"), Schedule::Every(1));
        assert_eq!(sched("@every 10ms"), Schedule::Every(1));
        let (_, tz) = parse("CRON_TZ=Europe/Berlin 0 9 * * *").expect("tz");
        assert_eq!(tz.as_deref(), Some("Europe/Berlin"));
    }

    #[test]
    fn errors_are_robfigs() {
        for (spec, error) in [
            ("", "empty spec string"),
            ("TZ=UTC", "empty spec string"),
            (" ", "expected exactly 5 fields, found 0: []"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            (
                "-1 * * * *",
                "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax",
            ),
            ("*/-1 * * * *", "negative number (-1) not allowed: -1"),
            (
                "@every 1.2.3s",
                "failed to parse duration @every 1.2.3s: time: missing unit in duration \"1.2.3s\"",
            ),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            (
                "@every 5",
                "failed to parse duration @every 5: time: missing unit in duration \"5\"",
            ),
        ] {
            assert_eq!(parse(spec).err().as_deref(), Some(error), "{spec:?}");
        }
    }
}
