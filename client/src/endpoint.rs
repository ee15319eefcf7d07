//! Endpoint parsing: `http://host:port` or `host:port`.

use tonic::transport::{Endpoint, Uri};

use crate::Error;

/// A parsed endpoint: its canonical text (`http://host:port`) and tonic's endpoint for it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) endpoint: Endpoint,
}

/// Parses one endpoint. The scheme is optional and must be `http` (TLS is not supported); a
/// host and a port are required; a path, query or user info is refused.
pub(crate) fn parse(s: &str) -> Result<Target, Error> {
    let invalid = |why: &str| Error::InvalidEndpoint(format!("{s:?}: {why}"));
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty"));
    }
    let url = match trimmed.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => format!("http://{rest}"),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(invalid("https (TLS) is not supported; use http://"))
        }
        Some((scheme, _)) => return Err(invalid(&format!("unsupported scheme {scheme:?}"))),
        None => format!("http://{trimmed}"),
    };
    let uri: Uri = url.parse().map_err(|e| invalid(&format!("{e}")))?;
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.host().is_empty() {
        return Err(invalid("no host"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("user info is not supported"));
    }
    if authority.port_u16().is_none() {
        return Err(invalid("no port (etcd's client port is usually 2379)"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("a path or query is not supported"));
    }
    let url = format!("http://{authority}");
    let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| invalid(&e.to_string()))?;
    Ok(Target { url, endpoint })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> String {
        match parse(s) {
            Ok(t) => t.url,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(url("http://127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(url("127.0.0.1:22379"), "http://127.0.0.1:22379");
        assert_eq!(url("  localhost:2379/ "), "http://localhost:2379");
        assert_eq!(url("HTTP://node1:2379"), "http://node1:2379");
        assert_eq!(url("[::1]:2379"), "http://[::1]:2379");
        assert_eq!(url("http://[::1]:2379/"), "http://[::1]:2379");
        let t = parse("127.0.0.1:2379").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.endpoint.uri().port_u16(), Some(2379));
        assert_eq!(t.endpoint.uri().host(), Some("127.0.0.1"));
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "",
            "   ",
            "https://127.0.0.1:2379",
            "unix:///tmp/etcd.sock",
            "127.0.0.1",
            "http://127.0.0.1",
            "http://:2379",
            "http://127.0.0.1:2379/v3",
            "http://127.0.0.1:2379?x=1",
            "http://user@127.0.0.1:2379",
            "127.0.0.1:99999",
            "not a host:1",
        ] {
            match parse(bad) {
                Err(Error::InvalidEndpoint(msg)) => {
                    assert!(msg.contains(&format!("{bad:?}")), "{msg}")
                }
                Err(e) => panic!("{bad:?}: wrong error {e:?}"),
                Ok(t) => panic!("{bad:?} accepted as {}", t.url),
            }
        }
    }
}
