//! Where the `concord` binary's logs go and how they look: etcd's `--log-level` and
//! `--log-outputs`, and `--log-format` (`console`, Concord's default, or `json`: one JSON object
//! per line, with etcd's (zap's) keys `level`, `ts`, `caller` and `msg`, then the event's
//! fields).
//!
//! Colours only reach a terminal: each output gets ANSI escapes only if it is one, so files and
//! pipes get plain text.

use std::fmt::{self, Write as _};
use std::fs::OpenOptions;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// A logging flag that does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("--log-level: {0:?} is not a level (debug, info, warn, error, panic, fatal) or a filter: {1}")]
    Level(String, String),
    #[error("--log-format: {0:?} is not 'console' or 'json'")]
    Format(String),
    #[error("--logger: {0:?} is not supported (only 'zap', etcd's structured logger)")]
    Logger(String),
    #[error("--log-outputs: no output given")]
    NoOutput,
    #[error("--log-outputs: opening {0}: {1}")]
    Open(PathBuf, io::Error),
    #[error("a logger is already installed")]
    Installed,
}

/// How lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// tracing's human-readable lines.
    Console,
    /// One JSON object per line.
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, LogError> {
        match s {
            "console" | "text" => Ok(Format::Console),
            "json" => Ok(Format::Json),
            other => Err(LogError::Format(other.to_string())),
        }
    }
}

/// Checks `--logger`: etcd 3.5 accepts only `zap`.
pub fn check_logger(logger: &str) -> Result<(), LogError> {
    if logger == "zap" {
        Ok(())
    } else {
        Err(LogError::Logger(logger.to_string()))
    }
}

/// The filter for `--log-level`: etcd's level names (`panic` and `fatal` log errors only), or
/// any tracing filter (`info,concord_server::raft=debug`).
pub fn filter(level: &str) -> Result<EnvFilter, LogError> {
    let directive = match level {
        "debug" | "info" | "warn" | "error" | "trace" => level,
        "panic" | "fatal" => "error",
        other => other,
    };
    EnvFilter::try_new(directive).map_err(|e| LogError::Level(level.to_string(), e.to_string()))
}

/// One place lines go.
#[derive(Clone, Debug)]
pub enum Output {
    Stderr,
    Stdout,
    File(PathBuf),
}

/// `--log-outputs`: comma-separated `stderr`, `stdout`, `default` (stderr, as etcd outside
/// systemd) or file paths (appended to), each once.
pub fn parse_outputs(list: &str) -> Result<Vec<Output>, LogError> {
    let mut out: Vec<Output> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let o = match item {
            "default" | "stderr" => Output::Stderr,
            "stdout" => Output::Stdout,
            path => Output::File(PathBuf::from(path)),
        };
        let dup = out.iter().any(|x| match (x, &o) {
            (Output::Stderr, Output::Stderr) | (Output::Stdout, Output::Stdout) => true,
            (Output::File(a), Output::File(b)) => a == b,
            _ => false,
        });
        if !dup {
            out.push(o);
        }
    }
    if out.is_empty() {
        return Err(LogError::NoOutput);
    }
    Ok(out)
}

/// Installs the process's logger. `RUST_LOG`, when set, overrides `level`.
pub fn init(level: &str, format: Format, outputs: &[Output]) -> Result<(), LogError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => filter(&env)?,
        _ => filter(level)?,
    };
    let mut layers: Vec<Box<dyn Layer<_> + Send + Sync>> = Vec::new();
    for o in outputs {
        layers.push(match o {
            Output::Stderr => layer(io::stderr, io::stderr().is_terminal(), format),
            Output::Stdout => layer(io::stdout, io::stdout().is_terminal(), format),
            Output::File(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| LogError::Open(path.clone(), e))?;
                let tty = file.is_terminal();
                layer(Arc::new(file), tty, format)
            }
        });
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .try_init()
        .map_err(|_| LogError::Installed)
}

fn layer<S, W>(writer: W, ansi: bool, format: Format) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        Format::Console => fmt.with_ansi(ansi).boxed(),
        Format::Json => fmt.with_ansi(false).event_format(JsonLines).boxed(),
    }
}

/// Writes an event as one JSON object on one line (zap's production encoding, as etcd logs):
/// `{"level":"info","ts":"2024-05-01T12:00:00.123Z","caller":"src/raft/raft_loop.rs:616",
/// "msg":"leader elected","leader":"8e9e05c52164694d","term":2}`, then the fields of the spans
/// the event is in. Numbers and booleans stay numbers and booleans; everything else is a
/// string.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "debug",
        };
        let mut line = String::with_capacity(256);
        line.push_str("{\"level\":\"");
        line.push_str(level);
        line.push_str("\",\"ts\":\"");
        write_utc_now(&mut line);
        line.push('"');
        if let (Some(file), Some(n)) = (meta.file(), meta.line()) {
            line.push_str(",\"caller\":");
            json_string(&mut line, &format!("{file}:{n}"));
        }
        let mut fields = JsonFields {
            message: None,
            rest: String::new(),
        };
        event.record(&mut fields);
        line.push_str(",\"msg\":");
        json_string(&mut line, fields.message.as_deref().unwrap_or(""));
        if meta.target() != "concord_server" && !meta.target().starts_with("concord_server::") {
            line.push_str(",\"logger\":");
            json_string(&mut line, meta.target());
        }
        line.push_str(&fields.rest);
        line.push('}');
        writeln!(writer, "{line}")
    }
}

struct JsonFields {
    message: Option<String>,
    rest: String,
}

impl JsonFields {
    fn key(&mut self, field: &Field) {
        self.rest.push(',');
        json_string(&mut self.rest, field.name());
        self.rest.push(':');
    }
}

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
            return;
        }
        self.key(field);
        json_string(&mut self.rest, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.record_str(field, &text);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.rest, "{value}");
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.rest, "{value}");
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        let _ = write!(self.rest, "{value}");
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.key(field);
            let _ = write!(self.rest, "{value}");
        } else {
            self.record_str(field, &value.to_string());
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_str(field, &value.to_string());
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Now, as `2024-05-01T12:00:00.123Z` (zap's ISO 8601 time, in UTC).
fn write_utc_now(out: &mut String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    write_utc(out, now.as_secs(), now.subsec_millis());
}

fn write_utc(out: &mut String, secs: u64, millis: u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_levels_and_filters_are_accepted() {
        for l in [
            "debug",
            "info",
            "warn",
            "error",
            "panic",
            "fatal",
            "concord_server=debug",
        ] {
            assert!(filter(l).is_ok(), "{l}");
        }
        assert!(filter("loud=[").is_err());
    }

    #[test]
    fn outputs_parse_as_etcd_names_them() {
        let o = parse_outputs("default,stderr,stdout,/tmp/a.log,/tmp/a.log").unwrap();
        assert_eq!(o.len(), 3);
        assert!(matches!(o[0], Output::Stderr));
        assert!(matches!(o[1], Output::Stdout));
        assert!(matches!(&o[2], Output::File(p) if p == std::path::Path::new("/tmp/a.log")));
        assert!(parse_outputs(" , ").is_err());
        assert!(Format::parse("yaml").is_err());
        assert!(check_logger("capnslog").is_err());
        assert!(check_logger("zap").is_ok());
    }

    #[test]
    fn times_print_as_zap_prints_them() {
        let mut s = String::new();
        write_utc(&mut s, 0, 0);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        s.clear();
        write_utc(&mut s, 1_709_210_096, 7); // a leap day
        assert_eq!(s, "2024-02-29T12:34:56.007Z");
    }

    #[test]
    fn json_lines_are_json() {
        use std::io::Write;
        use tracing_subscriber::fmt::MakeWriter;
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Buf {
            type Writer = Buf;
            fn make_writer(&'a self) -> Buf {
                self.clone()
            }
        }
        let buf = Buf::default();
        let subscriber =
            tracing_subscriber::registry().with(layer(buf.clone(), true, Format::Json));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(took_ms = 12u64, ok = true, peer = %"a\"b", "slow \"apply\"");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains('\u{1b}'), "{text}");
        let line = text.trim_end();
        assert!(!line.contains('\n'));
        assert!(line.starts_with("{\"level\":\"warn\",\"ts\":\""), "{line}");
        assert!(
            line.ends_with(
                ",\"msg\":\"slow \\\"apply\\\"\",\"took_ms\":12,\"ok\":true,\"peer\":\"a\\\"b\"}"
            ),
            "{line}"
        );
    }
}
