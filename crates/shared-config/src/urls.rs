//! URL rules both services share: what counts as a loopback host (RFC 8252 section 8.3), and
//! when one URL lies under another (RFC 8707 resources at the authorization server, token
//! audiences at the resource server).

use url::{Host, Url};

/// Whether a host is a loopback name: `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_host(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether `url` is `base` or a URL under it (same scheme and port, a path under the base's on
/// a segment boundary). Loopback names count as one host, so that `http://localhost:5001/mcp/v1`
/// lies under `http://127.0.0.1:5001`.
pub fn is_under(url: &Url, base: &Url) -> bool {
    if url.scheme() != base.scheme() || url.port_or_known_default() != base.port_or_known_default()
    {
        return false;
    }
    let same_host = url.host() == base.host()
        || (is_loopback_host(url.host()) && is_loopback_host(base.host()));
    if !same_host {
        return false;
    }
    let base_path = base.path().trim_end_matches('/');
    let path = url.path();
    path.trim_end_matches('/') == base_path || path.starts_with(&format!("{base_path}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_under_a_base_with_loopback_aliases() {
        let base = Url::parse("http://127.0.0.1:5001").unwrap();
        let under = |s: &str| is_under(&Url::parse(s).unwrap(), &base);
        assert!(under("http://127.0.0.1:5001"));
        assert!(under("http://localhost:5001/mcp/v1"));
        assert!(under("http://[::1]:5001/"));
        assert!(!under("http://127.0.0.1:5002/mcp/v1"));
        assert!(!under("https://127.0.0.1:5001"));
        assert!(!under("http://evil.example:5001"));
        let nested = Url::parse("https://api.example.com/mcp").unwrap();
        assert!(is_under(
            &Url::parse("https://api.example.com/mcp/v1").unwrap(),
            &nested
        ));
        assert!(!is_under(
            &Url::parse("https://api.example.com/mcpx").unwrap(),
            &nested
        ));
    }
}
