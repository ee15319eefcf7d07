//! Field paths and field errors as kube-apiserver's `field` package builds and renders them,
//! and the rendering of Go values inside `Invalid value: ...` (Go's `%q` and `%#v`) and of
//! OS errors in the texts Go would give.

use crate::FieldError;
use serde_json::{Map, Value};

/// A field path: `spec.containers[0].name`, `data[key]`. Built lazily: a path is a chain of
/// shared nodes and is only rendered to text when an error is reported, so checking a valid
/// object costs no formatting.
#[derive(Debug, Clone)]
pub(crate) struct Path(std::rc::Rc<Node>);

#[derive(Debug)]
enum Node {
    Root(String),
    Child(Path, String),
    Index(Path, usize),
    Key(Path, String),
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Path {}

impl Path {
    /// A root path (`spec`, `metadata`).
    pub(crate) fn new(root: &str) -> Path {
        Path(std::rc::Rc::new(Node::Root(root.to_string())))
    }

    /// `field.NewPath("")`: the whole object, rendered `[]`.
    pub(crate) fn whole() -> Path {
        Path::new("[]")
    }

    /// `p.name`.
    pub(crate) fn child(&self, name: &str) -> Path {
        Path(std::rc::Rc::new(Node::Child(
            self.clone(),
            name.to_string(),
        )))
    }

    /// `p[i]`.
    pub(crate) fn index(&self, i: usize) -> Path {
        Path(std::rc::Rc::new(Node::Index(self.clone(), i)))
    }

    /// `p[key]` (keys are not quoted).
    pub(crate) fn key(&self, k: &str) -> Path {
        Path(std::rc::Rc::new(Node::Key(self.clone(), k.to_string())))
    }

    fn render(&self, out: &mut String) {
        match &*self.0 {
            Node::Root(r) => out.push_str(r),
            Node::Child(parent, name) => {
                parent.render(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Node::Index(parent, i) => {
                parent.render(out);
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
            Node::Key(parent, k) => {
                parent.render(out);
                out.push('[');
                out.push_str(k);
                out.push(']');
            }
        }
    }

    /// The rendered path.
    pub(crate) fn as_str(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// `Required value[: detail]`.
pub(crate) fn required(p: &Path, detail: &str) -> FieldError {
    FieldError::required(p.as_str(), detail)
}

/// `Forbidden: detail`.
pub(crate) fn forbidden(p: &Path, detail: &str) -> FieldError {
    FieldError::forbidden(p.as_str(), detail)
}

/// `Invalid value: <shown>: detail`, `shown` already rendered as Go would.
pub(crate) fn invalid(p: &Path, shown: &str, detail: &str) -> FieldError {
    let body = if detail.is_empty() {
        format!("Invalid value: {shown}")
    } else {
        format!("Invalid value: {shown}: {detail}")
    };
    FieldError {
        reason: "FieldValueInvalid",
        field: p.as_str().to_string(),
        detail: body,
    }
}

/// `Invalid value: "s": detail`.
pub(crate) fn invalid_str(p: &Path, s: &str, detail: &str) -> FieldError {
    invalid(p, &go_quote(s), detail)
}

/// `Invalid value: n: detail`.
pub(crate) fn invalid_num(p: &Path, n: i64, detail: &str) -> FieldError {
    invalid(p, &n.to_string(), detail)
}

/// `Unsupported value: <shown>: supported values: "a", "b"`.
pub(crate) fn not_supported(p: &Path, shown: &str, supported: &[&str]) -> FieldError {
    let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    let detail = if list.is_empty() {
        format!("Unsupported value: {shown}")
    } else {
        format!(
            "Unsupported value: {shown}: supported values: {}",
            list.join(", ")
        )
    };
    FieldError {
        reason: "FieldValueNotSupported",
        field: p.as_str().to_string(),
        detail,
    }
}

/// `Unsupported value: "s": supported values: ...` for a string value.
pub(crate) fn not_supported_str(p: &Path, s: &str, supported: &[&str]) -> FieldError {
    not_supported(p, &go_quote(s), supported)
}

/// `Duplicate value: <shown>`.
pub(crate) fn duplicate(p: &Path, shown: &str) -> FieldError {
    FieldError {
        reason: "FieldValueDuplicate",
        field: p.as_str().to_string(),
        detail: format!("Duplicate value: {shown}"),
    }
}

/// `Not found: <shown>`.
pub(crate) fn not_found(p: &Path, shown: &str) -> FieldError {
    FieldError {
        reason: "FieldValueNotFound",
        field: p.as_str().to_string(),
        detail: format!("Not found: {shown}"),
    }
}

/// `Too long: must have at most N bytes`.
pub(crate) fn too_long(p: &Path, max: usize) -> FieldError {
    FieldError {
        reason: "FieldValueTooLong",
        field: p.as_str().to_string(),
        detail: format!("Too long: must have at most {max} bytes"),
    }
}

/// `Too many: N: must have at most M items`.
pub(crate) fn too_many(p: &Path, actual: usize, max: usize) -> FieldError {
    FieldError {
        reason: "FieldValueTooMany",
        field: p.as_str().to_string(),
        detail: format!("Too many: {actual}: must have at most {max} items"),
    }
}

/// An OS error as Go prints it: `no such file or directory`, not `No such file or directory
/// (os error 2)`.
pub fn go_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Go's `%q` (and `%#v` of a string): a double-quoted string with Go's escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value's string, or `""` (absent fields are Go zero values).
pub(crate) fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Go's `%#v` of a `map[string]string` held in JSON (`None`: a nil map).
pub(crate) fn go_string_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(str_of(v))))
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string` held in JSON (`None`: a nil slice).
pub(crate) fn go_string_slice(v: Option<&Vec<Value>>) -> String {
    match v {
        None => "[]string(nil)".to_string(),
        Some(items) => {
            let items: Vec<String> = items.iter().map(|s| go_quote(str_of(s))).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`.
pub(crate) fn go_label_selector(sel: &Value) -> String {
    let labels = go_string_map(sel.get("matchLabels").and_then(Value::as_object));
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(str_of(&e["key"])),
                        go_quote(str_of(&e["operator"])),
                        go_string_slice(e.get("values").and_then(Value::as_array))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

/// Go's `%#v` of an `intstr.IntOrString` held in JSON (a number or a string).
pub(crate) fn go_int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            go_quote(s)
        ),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

/// The value of an int field, or 0 when absent (Go's zero value).
pub(crate) fn int_of(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or(0)
}

/// An array field, or an empty slice.
pub(crate) fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A JSON value as Go's `%v` of a scalar would print it (for list rendering).
pub(crate) fn shown_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}
