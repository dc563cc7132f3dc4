//! `http://host[:port]/path?query` URLs: parsed, checked so that nothing in them can break
//! a request line or header, and joined with a redirect's Location.
//!
//! Percent-encoding is kept exactly as given (servers disagree on what decoding and
//! re-encoding would mean); bytes that cannot appear in a request line are rejected.

use super::response::{equals_ignoring_case, parse_length};
use crate::net::static_ip::parse_ipv4;
use alloc::string::String;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// As given: a name or an IPv4 literal.
    pub host: String,
    pub port: u16,
    /// The request target: path and query, always starting with '/'; no fragment.
    pub target: String,
}

/// Why a URL cannot be fetched, said in one line.
pub type UrlError = &'static str;

impl Url {
    pub fn parse(text: &str) -> Result<Url, UrlError> {
        let (scheme, rest) = cut(text, find(text, b":"));
        let rest = match rest.strip_prefix("://") {
            Some(rest) if equals_ignoring_case(scheme.as_bytes(), b"http") => rest,
            Some(_) if equals_ignoring_case(scheme.as_bytes(), b"https") => {
                return Err("TLS is not supported; use http:// and pin a sha256 instead")
            }
            _ => return Err("only http:// URLs are supported"),
        };
        let (authority, target) = cut(rest, find(rest, b"/?#"));
        if authority.contains('@') {
            return Err("user names and passwords in URLs are not supported");
        }
        if authority.starts_with('[') {
            return Err("IPv6 hosts are not supported");
        }
        let colon = authority.bytes().rposition(|b| b == b':');
        let (host, port) = cut(authority, colon.unwrap_or(authority.len()));
        // After the colon; none: 80.
        let digits = port.as_bytes().get(1..).unwrap_or(b"80");
        let port = parse_length(digits).and_then(|p| u16::try_from(p).ok()).filter(|&p| p > 0);
        let port = port.ok_or("the port is not a number from 1 to 65535")?;
        let valid = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
        if host.is_empty() || !host.bytes().all(valid) {
            return Err("the host is missing or not a valid name");
        }
        // Anything that looks like dotted numbers must be a real address, not a name lookup.
        if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') && parse_ipv4(host).is_none() {
            return Err("the host is not a valid IPv4 address");
        }
        // The request target: fragment dropped, "/" when empty.
        let target = cut(target, find(target, b"#")).0;
        if target.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err("the URL has a space, control or non-ASCII character; percent-encode it");
        }
        let slash = if target.starts_with('/') { "" } else { "/" };
        Ok(Url { host: host.into(), port, target: String::from(slash) + target })
    }

    /// The URL as text, for errors and loop detection (one out-of-line copy of the
    /// building instead of one per call site).
    pub fn text(&self) -> String {
        text!("http://{}{}", self.host_header(), self.target)
    }

    /// The value of the Host header: the port only when it is not 80.
    pub fn host_header(&self) -> String {
        match self.port {
            80 => self.host.clone(),
            // As u32: u16 would bring its own copy of the integer formatting.
            port => text!("{}:{}", self.host, u32::from(port)),
        }
    }

    /// Resolves a Location header against this URL (RFC 3986 section 5.2): absolute,
    /// scheme-relative, absolute-path, query-only and relative-path references. The
    /// absolute URL is built as text and parsed, then its path's dot segments removed.
    #[inline(never)]
    pub fn join(&self, location: &str) -> Result<Url, UrlError> {
        let location = location.trim_ascii();
        let path = find(&self.target, b"?");
        let dir = cut(&self.target, path).0.bytes().rposition(|b| b == b'/').map_or(0, |i| i + 1);
        // What the reference follows, as a prefix of this URL's text: nothing, the scheme,
        // the origin, and of the target the path for "?q", its directory for "x".
        let url = self.text();
        let origin = url.len() - self.target.len();
        let keep = match location.as_bytes() {
            _ if has_scheme(location) => 0,
            [b'/', b'/', ..] => "http:".len(),
            [b'/', ..] => origin,
            [b'?', ..] => origin + path,
            [] | [b'#', ..] => url.len(),
            _ => origin + dir,
        };
        let mut url = Url::parse(&(String::from(cut(&url, keep).0) + location))?;
        let (path, query) = cut(&url.target, find(&url.target, b"?"));
        url.target = remove_dot_segments(path) + query;
        Ok(url)
    }
}

// The searches below look for ASCII bytes, so every index they give is a char boundary;
// `cut` still splits with a checked call: str slicing that could panic would pull
// core's slicing panic message (with its Debug and Unicode tables, ~4 KB) into the init.

/// The index of the first byte of `s` in `set`, or `s.len()`.
fn find(s: &str, set: &[u8]) -> usize {
    s.bytes().position(|b| set.contains(&b)).unwrap_or(s.len())
}

/// `s` split before byte `at`.
fn cut(s: &str, at: usize) -> (&str, &str) {
    s.split_at_checked(at).unwrap_or((s, ""))
}

/// A scheme (`letter *( letter / digit / "+" / "-" / "." )`) followed by ':'.
fn has_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    let len = b.iter().position(|&c| !(c.is_ascii_alphanumeric() || b"+-.".contains(&c)));
    b.first().is_some_and(u8::is_ascii_alphabetic) && b.get(len.unwrap_or(b.len())) == Some(&b':')
}

/// RFC 3986 section 5.2.4 for an absolute path: "." and ".." segments resolved, never
/// climbing above the root.
#[inline(never)]
fn remove_dot_segments(path: &str) -> String {
    let mut out = String::new();
    let mut last = "";
    for segment in path.strip_prefix('/').unwrap_or(path).split('/') {
        match segment {
            ".." => out.truncate(out.bytes().rposition(|b| b == b'/').unwrap_or(0)),
            "." => {}
            _ => {
                out.push('/');
                out.push_str(segment);
            }
        }
        last = segment;
    }
    // "a/." and "a/.." name a directory: keep the trailing slash.
    if out.is_empty() || matches!(last, "." | "..") {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn parses_hosts_ports_and_targets() {
        let u = url("http://10.0.0.1:8080/images/a%20b.img?x=1#frag");
        assert_eq!(u.host, "10.0.0.1");
        assert_eq!(u.port, 8080);
        assert_eq!(u.target, "/images/a%20b.img?x=1", "percent-encoding kept, fragment dropped");
        assert_eq!(u.host_header(), "10.0.0.1:8080");
        assert_eq!(u.text(), "http://10.0.0.1:8080/images/a%20b.img?x=1");
        let u = url("HTTP://boot.example");
        assert_eq!((u.host.as_str(), u.port, u.target.as_str()), ("boot.example", 80, "/"));
        assert_eq!(u.host_header(), "boot.example");
        assert_eq!(url("http://h?q=1").target, "/?q=1");
    }

    #[test]
    fn rejects_what_it_cannot_fetch_with_the_reason() {
        assert_eq!(
            Url::parse("https://h/x"),
            Err("TLS is not supported; use http:// and pin a sha256 instead")
        );
        assert_eq!(Url::parse("ftp://h/x"), Err("only http:// URLs are supported"));
        assert_eq!(Url::parse("h/x"), Err("only http:// URLs are supported"));
        assert_eq!(Url::parse("http:///x"), Err("the host is missing or not a valid name"));
        assert_eq!(Url::parse("http://a b/x"), Err("the host is missing or not a valid name"));
        assert_eq!(
            Url::parse("http://u:p@h/x"),
            Err("user names and passwords in URLs are not supported")
        );
        assert_eq!(Url::parse("http://[::1]/x"), Err("IPv6 hosts are not supported"));
        assert_eq!(Url::parse("http://h:0/"), Err("the port is not a number from 1 to 65535"));
        assert_eq!(Url::parse("http://h:65536/"), Err("the port is not a number from 1 to 65535"));
        assert_eq!(Url::parse("http://h:/"), Err("the port is not a number from 1 to 65535"));
        assert_eq!(Url::parse("http://h:8x/"), Err("the port is not a number from 1 to 65535"));
        assert_eq!(Url::parse("http://300.1.1.1/"), Err("the host is not a valid IPv4 address"));
        assert_eq!(Url::parse("http://1.2.3/"), Err("the host is not a valid IPv4 address"));
        assert_eq!(
            Url::parse("http://h/a b"),
            Err("the URL has a space, control or non-ASCII character; percent-encode it")
        );
        assert_eq!(
            Url::parse("http://h/a\r\nX: y"),
            Err("the URL has a space, control or non-ASCII character; percent-encode it")
        );
        assert_eq!(
            Url::parse("http://h/é"),
            Err("the URL has a space, control or non-ASCII character; percent-encode it")
        );
    }

    #[test]
    fn joins_every_kind_of_location() {
        let base = url("http://10.0.0.1:8080/a/b/c.img?old=1");
        let join = |l: &str| base.join(l).unwrap().text();
        assert_eq!(join("http://other/x"), "http://other/x");
        assert_eq!(join("//other:81/y"), "http://other:81/y");
        assert_eq!(join("/root?q"), "http://10.0.0.1:8080/root?q");
        assert_eq!(join("d.img"), "http://10.0.0.1:8080/a/b/d.img");
        assert_eq!(join("../d.img"), "http://10.0.0.1:8080/a/d.img");
        assert_eq!(join("../../../../d"), "http://10.0.0.1:8080/d");
        assert_eq!(join("./x/./y/.."), "http://10.0.0.1:8080/a/b/x/");
        assert_eq!(join("?new=2"), "http://10.0.0.1:8080/a/b/c.img?new=2");
        assert_eq!(join(""), "http://10.0.0.1:8080/a/b/c.img?old=1");
        assert_eq!(
            base.join("https://x/"),
            Err("TLS is not supported; use http:// and pin a sha256 instead")
        );
        assert_eq!(
            base.join("a b"),
            Err("the URL has a space, control or non-ASCII character; percent-encode it")
        );
    }
}
