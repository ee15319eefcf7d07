//! Label and field selectors: the query-string grammar kubectl sends (`-l`, `--field-selector`),
//! `metav1.LabelSelector` objects (a Deployment's `spec.selector`), and matching both against
//! objects.

use serde_json::Value;

use crate::error::ApiError;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value`, `key==value`.
    Equals(String, String),
    /// `key!=value` (true also when the key is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (true also when the key is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
    /// `key>n`.
    Gt(String, i64),
    /// `key<n`.
    Lt(String, i64),
}

/// A parsed label selector: every requirement must hold. Empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector(pub Vec<Requirement>);

fn bad_label(sel: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "unable to parse requirement: {why} (in label selector {sel:?})"
    ))
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && crate::meta::qualified_name_errors(k).is_empty()
}

fn valid_value(v: &str) -> bool {
    crate::meta::label_value_errors(v).is_empty()
}

impl LabelSelector {
    /// Parses kubectl's `labelSelector` query value.
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut reqs = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            // Split off one requirement: up to a comma that is not inside parentheses.
            let mut depth = 0i32;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let part = rest[..end].trim();
            rest = if end < rest.len() {
                rest[end + 1..].trim()
            } else {
                ""
            };
            if part.is_empty() {
                return Err(bad_label(s, "found '', expected: identifier"));
            }
            reqs.push(Self::parse_one(s, part)?);
        }
        Ok(LabelSelector(reqs))
    }

    fn parse_one(whole: &str, part: &str) -> Result<Requirement, ApiError> {
        let check_key = |k: &str| -> Result<String, ApiError> {
            if valid_key(k) {
                Ok(k.to_string())
            } else {
                Err(bad_label(whole, &format!("invalid label key {k:?}")))
            }
        };
        let check_value = |v: &str| -> Result<String, ApiError> {
            if valid_value(v) {
                Ok(v.to_string())
            } else {
                Err(bad_label(whole, &format!("invalid label value: {v:?}")))
            }
        };
        if let Some(k) = part.strip_prefix('!') {
            return Ok(Requirement::DoesNotExist(check_key(k.trim())?));
        }
        for (op, make) in [("!=", 0u8), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
            if let Some((k, v)) = part.split_once(op) {
                let k = check_key(k.trim())?;
                let v = v.trim();
                return match make {
                    0 => Ok(Requirement::NotEquals(k, check_value(v)?)),
                    1 => Ok(Requirement::Equals(k, check_value(v)?)),
                    n => {
                        let num: i64 = v.parse().map_err(|_| {
                            bad_label(
                                whole,
                                "for 'Gt', 'Lt' operators, the value must be an integer",
                            )
                        })?;
                        Ok(if n == 2 {
                            Requirement::Gt(k, num)
                        } else {
                            Requirement::Lt(k, num)
                        })
                    }
                };
            }
        }
        let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
        if words.len() == 2 {
            let k = check_key(words[0])?;
            let rest = words[1].trim();
            let (op, list) = if let Some(l) = rest.strip_prefix("notin") {
                ("notin", l)
            } else if let Some(l) = rest.strip_prefix("in") {
                ("in", l)
            } else {
                return Err(bad_label(
                    whole,
                    &format!("found '{rest}', expected: in, notin, =, ==, !=, gt, lt"),
                ));
            };
            let list = list.trim();
            let inner = list
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(|| bad_label(whole, "found '', expected: '('"))?;
            let values = inner
                .split(',')
                .map(|v| check_value(v.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if op == "in" {
                Requirement::In(k, values)
            } else {
                Requirement::NotIn(k, values)
            });
        }
        Ok(Requirement::Exists(check_key(part)?))
    }

    /// Builds a selector from a `metav1.LabelSelector` object (`matchLabels` and
    /// `matchExpressions`). `None` (or `null`) selects nothing, `{}` everything, as
    /// Kubernetes' `LabelSelectorAsSelector`.
    pub fn from_object(sel: &Value) -> Option<LabelSelector> {
        let obj = sel.as_object()?;
        let mut reqs = Vec::new();
        if let Some(m) = obj.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Requirement::Equals(
                    k.clone(),
                    v.as_str().unwrap_or("").to_string(),
                ));
            }
        }
        if let Some(exprs) = obj.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or("").to_string();
                let values: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(match e["operator"].as_str().unwrap_or("") {
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    "DoesNotExist" => Requirement::DoesNotExist(key),
                    _ => return None,
                });
            }
        }
        Some(LabelSelector(reqs))
    }

    /// Whether the labels match.
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
            Requirement::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }

    /// Whether an object's `metadata.labels` match.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&obj["metadata"]["labels"])
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Renders a `metav1.LabelSelector` object as the string form (`app=web,tier in (a,b)`), as
/// the Scale subresource's `status.selector` carries it.
pub fn format_label_selector(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or("");
            let mut values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort_unstable();
            parts.push(match e["operator"].as_str().unwrap_or("") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            });
        }
    }
    parts.join(",")
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// The field (`spec.nodeName`).
    pub field: String,
    /// `=`/`==` (true) or `!=` (false).
    pub equals: bool,
    /// The value.
    pub value: String,
}

/// A parsed field selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector(pub Vec<FieldTerm>);

/// The fields each kind can be selected by, beyond `metadata.name` and `metadata.namespace`
/// (kube-apiserver's field label conversion functions).
fn selectable_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "Secret" => &["type"],
        "ReplicaSet" => &["status.replicas"],
        "Job" => &["status.successful"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses a `fieldSelector` for objects of `kind`. An unknown field is a 400 with
    /// kube-apiserver's `field label not supported: <field>`.
    pub fn parse(kind: &str, s: &str) -> Result<FieldSelector, ApiError> {
        let mut terms = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equals, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !selectable_fields(kind).contains(&field)
            {
                return Err(ApiError::BadRequest(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push(FieldTerm {
                field: field.to_string(),
                equals,
                value: value.trim().to_string(),
            });
        }
        Ok(FieldSelector(terms))
    }

    /// The value a field selector term sees for `field` of `obj` (absent fields read as `""`,
    /// booleans as `true`/`false`, numbers as decimal text).
    pub fn field_value(obj: &Value, field: &str) -> String {
        let v = if field == "source" {
            // Events: `source` is the reporting component.
            let s = &obj["source"]["component"];
            if s.is_null() {
                &obj["reportingComponent"]
            } else {
                s
            }
        } else {
            let mut v = obj;
            for seg in field.split('.') {
                v = &v[seg];
            }
            v
        };
        match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null if field == "spec.unschedulable" || field == "spec.hostNetwork" => {
                "false".to_string()
            }
            _ => String::new(),
        }
    }

    /// Whether `obj` satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|t| (Self::field_value(obj, &t.field) == t.value) == t.equals)
    }

    /// The value of an equality term on `field`, if there is one (`metadata.name=x`).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|t| t.equals && t.field == field)
            .map(|t| t.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_parse_and_match() {
        let labels = json!({"app":"web","tier":"front","n":"5"});
        let ok = [
            "app=web",
            "app==web,tier=front",
            "app!=db",
            "tier in (front, back)",
            "tier notin (back)",
            "app",
            "!missing",
            "n>3",
            "n<6",
            "",
        ];
        for s in ok {
            let sel = LabelSelector::parse(s).expect(s);
            assert!(sel.matches(&labels), "{s}");
        }
        for s in [
            "app=db",
            "missing",
            "!app",
            "tier in (back)",
            "n>5",
            "app!=web",
        ] {
            assert!(!LabelSelector::parse(s).expect(s).matches(&labels), "{s}");
        }
        for s in ["app=web!", "a b c", "tier in front", "=x", ","] {
            assert_eq!(LabelSelector::parse(s).unwrap_err().code(), 400, "{s}");
        }
    }

    #[test]
    fn label_selector_objects_match_as_kubernetes() {
        let sel = json!({"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["b","a"]}]});
        let s = LabelSelector::from_object(&sel).expect("valid");
        assert!(s.matches(&json!({"app":"web","tier":"a"})));
        assert!(!s.matches(&json!({"app":"web"})));
        assert_eq!(format_label_selector(&sel), "app=web,tier in (a,b)");
        assert!(LabelSelector::from_object(&Value::Null).is_none());
        assert!(LabelSelector::from_object(&json!({}))
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn field_selectors_parse_and_match() {
        let pod = json!({"metadata":{"name":"p","namespace":"demo"},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}});
        let sel = FieldSelector::parse(
            "Pod",
            "spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed",
        )
        .expect("parses");
        assert!(sel.matches(&pod));
        assert!(!FieldSelector::parse("Pod", "metadata.name=q")
            .expect("p")
            .matches(&pod));
        assert_eq!(
            FieldSelector::parse("Pod", "spec.foo=x")
                .unwrap_err()
                .to_string(),
            "field label not supported: spec.foo"
        );
        let ev = json!({"involvedObject":{"kind":"Node","name":"n1","namespace":""}});
        let sel = FieldSelector::parse(
            "Event",
            "involvedObject.name=n1,involvedObject.namespace=,involvedObject.kind=Node",
        )
        .expect("parses");
        assert!(sel.matches(&ev));
        let node = json!({"spec":{}});
        assert!(FieldSelector::parse("Node", "spec.unschedulable=false")
            .expect("p")
            .matches(&node));
    }
}
