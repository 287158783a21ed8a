//! Which webhook URLs the service will call.
//!
//! Why so strict (SSRF): the service makes the request from inside its own network, to a URL a
//! customer chose. Without limits an upload could make it POST to the cloud metadata endpoint
//! (169.254.169.254), to `localhost` admin ports or to internal services no customer can
//! reach. So:
//! - only `http` and `https`, with a host, no user name or password in the URL, bounded length;
//! - a URL given with an upload must name a host and port on the operator's allow-list
//!   (`webhook_allowed_hosts`; exact name or address, or `*.example.com` for its sub-domains,
//!   each with `:PORT` for one port or `:*` for any). An entry without a port allows only the
//!   scheme's default port: an allowed host may also run services (a cache on 6379, an admin
//!   port) that a customer must not reach. With an empty list uploads cannot name a webhook at
//!   all. The list is matched on the URL's host text; the operator lists names whose DNS they
//!   trust;
//! - webhooks configured by the operator (server-wide or per tenant) are trusted as written;
//! - redirects are never followed (a 3xx is a failed attempt), so an allowed host cannot
//!   bounce the request elsewhere; the answer's body is not read.

use url::Url;

/// Longest accepted webhook URL.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("webhook_url is not a valid absolute URL")]
    Parse,
    #[error("webhook_url must be longer than nothing and at most {MAX_URL_LEN} characters")]
    Length,
    #[error("webhook_url must use http or https")]
    Scheme,
    #[error("webhook_url must name a host")]
    NoHost,
    #[error("webhook_url must not carry a user name or password")]
    Credentials,
    #[error("webhook_url host and port {0:?} are not on this server's webhook allow-list")]
    NotAllowed(String),
}

/// Parses and checks the shape of a webhook URL (any source).
pub fn parse(text: &str) -> Result<Url, UrlError> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_URL_LEN {
        return Err(UrlError::Length);
    }
    let url = Url::parse(text).map_err(|_| UrlError::Parse)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if matches!(url.host_str(), None | Some("")) {
        return Err(UrlError::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    Ok(url)
}

/// Whether `host` (lower-case, as in the URL) with `port` (the URL's, or its scheme's default)
/// is on the allow-list; `default_port` is the scheme's.
pub fn host_allowed(host: &str, port: u16, default_port: u16, allowed: &[String]) -> bool {
    let host = host.trim_end_matches('.');
    allowed.iter().any(|entry| {
        let (pattern, ports) = split_port(entry);
        let port_ok = match ports {
            None => port == default_port,
            Some("*") => true,
            Some(p) => p.parse::<u16>().is_ok_and(|p| p == port),
        };
        let host_ok = match pattern.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            None => host == pattern.trim_end_matches('.'),
        };
        port_ok && host_ok
    })
}

/// An allow-list entry's host pattern and port text: `host`, `host:PORT`, `host:*`,
/// `[v6]:PORT`. A bare IPv6 address (several colons, no brackets) has no port.
fn split_port(entry: &str) -> (&str, Option<&str>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((addr, tail)) => (addr, tail.strip_prefix(':')),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (entry, None),
    }
}

/// Checks a URL given with an upload: shape, then the allow-list. Returns the URL as stored.
pub fn check_upload_url(text: &str, allowed: &[String]) -> Result<String, UrlError> {
    let url = parse(text)?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    // `parse` allows only these two schemes.
    let default_port = if url.scheme() == "https" { 443 } else { 80 };
    let port = url.port().unwrap_or(default_port);
    if !host_allowed(host, port, default_port, allowed) {
        return Err(UrlError::NotAllowed(format!("{host}:{port}")));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shapes() {
        assert!(parse("https://hooks.example.com/x?y=1").is_ok());
        assert_eq!(parse("ftp://h/x"), Err(UrlError::Scheme));
        assert_eq!(parse("file:///etc/passwd"), Err(UrlError::Scheme));
        assert_eq!(parse("http://user:pw@h/x"), Err(UrlError::Credentials));
        assert_eq!(parse("/relative"), Err(UrlError::Parse));
        assert_eq!(parse(""), Err(UrlError::Length));
        assert_eq!(
            parse(&format!("http://h/{}", "a".repeat(3000))),
            Err(UrlError::Length)
        );
    }

    #[test]
    fn allow_list() {
        let a = list(&[
            "127.0.0.1:9999",
            "*.example.com",
            "hooks.acme.org",
            "ci.acme.org:*",
            "[::1]:8080",
        ]);
        assert!(check_upload_url("http://127.0.0.1:9999/hook", &a).is_ok());
        assert!(check_upload_url("https://a.b.example.com/", &a).is_ok());
        assert!(check_upload_url("https://a.example.com:443/", &a).is_ok());
        assert!(check_upload_url("https://HOOKS.ACME.ORG/", &a).is_ok());
        assert!(check_upload_url("http://hooks.acme.org/", &a).is_ok());
        assert!(check_upload_url("http://ci.acme.org:8123/", &a).is_ok());
        assert!(check_upload_url("http://[::1]:8080/", &a).is_ok());
        for bad in [
            // An allowed host on a port the list does not name.
            "http://a.example.com:6379/",
            "https://hooks.acme.org:8443/",
            "http://127.0.0.1/",
            "http://127.0.0.1:6379/",
            "http://[::1]/",
            "https://example.com/",
            "https://evilexample.com/",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost/",
            "http://127.0.0.2/",
            "https://hooks.acme.org.evil.net/",
        ] {
            assert!(
                matches!(check_upload_url(bad, &a), Err(UrlError::NotAllowed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            check_upload_url("http://127.0.0.1/", &[]),
            Err(UrlError::NotAllowed(_))
        ));
    }
}
