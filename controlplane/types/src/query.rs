//! URL query strings as the API server and the agents' log servers read them: `a=b&c=d`, with
//! `%XX` escapes and `+` (a space) decoded, as Go's `url.ParseQuery`.

use std::collections::HashMap;

/// The parameters of a query string. A parameter given twice keeps its first value, as Go's
/// `url.Values.Get` and apimachinery's query conversion do (`?limit=1&limit=2` is limit 1).
pub fn parse_query(q: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(percent_decode(k))
            .or_insert_with(|| percent_decode(v));
    }
    out
}

/// Decodes `%XX` escapes and `+` (as a space) in a query component. A `%` not followed by two
/// hex digits stays as it is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match bytes.get(i + 1..i + 3).and_then(hex_byte) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Two hex digits as a byte (`u8::from_str_radix` alone would also take a sign: `+5`).
fn hex_byte(h: &[u8]) -> Option<u8> {
    if !h.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::{parse_query, percent_decode};

    #[test]
    fn queries_are_percent_decoded() {
        let q = parse_query("labelSelector=app%3Dweb&fieldSelector=a%3D%2Cb&limit=500&x=%zz+y");
        assert_eq!(q["labelSelector"], "app=web");
        assert_eq!(q["fieldSelector"], "a=,b");
        assert_eq!(q["x"], "%zz y");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn a_percent_needs_two_hex_digits() {
        assert_eq!(percent_decode("%+5"), "% 5");
        assert_eq!(percent_decode("%-1"), "%-1");
        assert_eq!(percent_decode("%4a%4A"), "JJ");
    }

    #[test]
    fn a_repeated_parameter_keeps_its_first_value() {
        let q = parse_query("limit=1&watch=true&limit=2&watch=false&flag");
        assert_eq!(q["limit"], "1");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["flag"], "");
    }
}
