//! The string formats of apimachinery's `util/validation` package, with its messages:
//! DNS labels, qualified names, label values, port names, config keys, percentages, ...

use crate::meta;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const HTTP_HEADER_MSG: &str = "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')";
const RELAXED_ENV_MSG: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| lower_alnum(c) || c == '-')
        && s.starts_with(lower_alnum)
        && s.ends_with(lower_alnum)
}

/// `IsDNS1123Label`: a valid subdomain that is not a label gets "must not contain dots".
pub(crate) fn dns1123_label(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !is_label_chars(s) {
        if !s.is_empty() && s.split('.').all(is_label_chars) {
            out.push("must not contain dots".to_string());
        } else {
            out.push(DNS1123_LABEL_MSG.to_string());
        }
    }
    out
}

/// `IsDNS1123Subdomain`.
pub(crate) fn dns1123_subdomain(s: &str) -> Vec<String> {
    meta::dns1123_subdomain_errors(s)
}

/// `NameIsDNSSubdomain(name, prefix)`: with `prefix`, a trailing dash is allowed.
pub(crate) fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix && name.len() > 1 && name.ends_with('-') {
        let masked = format!("{}a", &name[..name.len() - 1]);
        return dns1123_subdomain(&masked);
    }
    dns1123_subdomain(name)
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// `IsQualifiedName`: `[prefix/]name`.
pub(crate) fn qualified_name(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_string());
            } else {
                for m in dns1123_subdomain(prefix) {
                    out.push(format!("prefix part {m}"));
                }
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )]
        }
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".to_string());
    }
    if !is_name_part(name) {
        out.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    out
}

/// `IsValidLabelValue`.
pub(crate) fn label_value(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !v.is_empty() && !is_name_part(v) {
        out.push(LABEL_VALUE_MSG.to_string());
    }
    out
}

/// `IsValidPortName` (IANA service names).
pub(crate) fn port_name(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    if p.len() > 15 {
        out.push("must be no more than 15 characters".to_string());
    }
    if p.is_empty()
        || !p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        out.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !p.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".to_string());
    }
    if p.contains("--") {
        out.push("must not contain consecutive hyphens".to_string());
    }
    if p.starts_with('-') || p.ends_with('-') {
        out.push("must not begin or end with a hyphen".to_string());
    }
    out
}

/// `IsValidPortNum` as a message list.
pub(crate) fn port_num(p: i64) -> Vec<String> {
    if (1..=65535).contains(&p) {
        Vec::new()
    } else {
        vec![inclusive_range(1, 65535)]
    }
}

/// `InclusiveRangeError`.
pub(crate) fn inclusive_range(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// `IsRelaxedEnvVarName` (the RelaxedEnvironmentVariableValidation rule, on by default).
pub(crate) fn relaxed_env_var_name(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    if v.is_empty() {
        out.push("environment variable name must be non-empty".to_string());
    }
    if v.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        out.push(RELAXED_ENV_MSG.to_string());
    }
    out
}

fn chdir_prefix(v: &str) -> Option<&'static str> {
    match v {
        "." => Some("must not be '.'"),
        ".." => Some("must not be '..'"),
        _ if v.starts_with("..") => Some("must not start with '..'"),
        _ => None,
    }
}

/// `IsConfigMapKey`: the keys of ConfigMaps, Secrets and key selectors.
pub(crate) fn config_map_key(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    if v.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        out.push(CONFIG_KEY_MSG.to_string());
    }
    if let Some(m) = chdir_prefix(v) {
        out.push(m.to_string());
    }
    out
}

/// `IsValidPercent`.
pub(crate) fn percent(v: &str) -> Vec<String> {
    let ok = v
        .strip_suffix('%')
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Vec::new()
    } else {
        vec![PERCENT_MSG.to_string()]
    }
}

/// `IsHTTPHeaderName`.
pub(crate) fn http_header_name(v: &str) -> Vec<String> {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Vec::new()
    } else {
        vec![HTTP_HEADER_MSG.to_string()]
    }
}

/// `IsValidIP` (loose form): the value parses as an IPv4 or IPv6 address.
pub(crate) fn ip(v: &str) -> Vec<String> {
    if v.parse::<std::net::IpAddr>().is_ok() {
        Vec::new()
    } else {
        vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string()]
    }
}

/// `IsValidCIDR` (loose form).
pub(crate) fn cidr(v: &str) -> Vec<String> {
    let ok = v.split_once('/').is_some_and(|(addr, bits)| {
        match (addr.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
            (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32 && !bits.starts_with('+'),
            (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128 && !bits.starts_with('+'),
            _ => false,
        }
    });
    if ok {
        Vec::new()
    } else {
        vec!["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".to_string()]
    }
}
