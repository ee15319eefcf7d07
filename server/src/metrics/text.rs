//! The Prometheus text exposition format, version 0.0.4: one `# HELP` and `# TYPE` line per
//! family, then its samples; families sorted by name, as Prometheus' Go client writes them.

use std::fmt::Write as _;

/// The content type of the page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A page being written: one text per family, sorted by name at the end.
#[derive(Default)]
pub struct Text {
    families: Vec<(String, String)>,
}

impl Text {
    /// Starts a family; the samples written next belong to it.
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(s, "# TYPE {name} {kind}");
        self.families.push((name.to_string(), s));
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], value: std::fmt::Arguments<'_>) {
        let Some((_, s)) = self.families.last_mut() else {
            return;
        };
        s.push_str(name);
        if !labels.is_empty() {
            s.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{k}=\"{}\"", escape_label(v));
            }
            s.push('}');
        }
        let _ = writeln!(s, " {value}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.line(name, labels, format_args!("{value}"));
    }

    pub fn sample_signed(&mut self, name: &str, labels: &[(&str, &str)], value: i64) {
        self.line(name, labels, format_args!("{value}"));
    }

    pub fn sample_float(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.line(name, labels, format_args!("{}", float(value)));
    }

    /// The page.
    pub fn finish(mut self) -> String {
        self.families.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::with_capacity(self.families.iter().map(|f| f.1.len()).sum());
        for (_, s) in self.families {
            out.push_str(&s);
        }
        out
    }
}

/// A float as Prometheus reads it (`+Inf`, `-Inf`, `NaN`, else the shortest decimal that
/// reads back the same).
pub fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
