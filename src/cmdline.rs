//! The kernel command line (`/proc/cmdline`) as typed settings.
//!
//! Splitting follows the kernel's own `next_arg()` (lib/cmdline.c), so a parameter means
//! here exactly what it meant to the kernel: words split at unquoted white space, the first
//! `=` separates key and value, and double quotes group words (`"k=a b"` or `k="a b"`) and
//! are removed. Repeated keys: the last one wins, as for most kernel parameters. Unknown
//! keys are ignored (the kernel line carries many for others); unknown `imprint.*` keys are
//! noted, since they are most likely typos. A bad value for a key we know is an error.

use crate::console::Quoted;
use crate::rescue::Policy;
use alloc::string::String;
use alloc::vec::Vec;

/// One `key[=value]` word of the command line, quotes removed.
pub type Param<'a> = (&'a [u8], Option<&'a [u8]>);

/// Splits a command line into parameters the way the kernel does.
pub fn params(line: &[u8]) -> impl Iterator<Item = Param<'_>> {
    let mut rest = line;
    core::iter::from_fn(move || {
        let skip = rest.iter().take_while(|b| b.is_ascii_whitespace() || **b == 0).count();
        let (param, tail) = next_param(rest.get(skip..).filter(|r| !r.is_empty())?);
        rest = tail;
        Some(param)
    })
}

/// The kernel's next_arg(): one word, honouring quotes; returns it and the rest.
fn next_param(s: &[u8]) -> (Param<'_>, &[u8]) {
    let quoted = s.first() == Some(&b'"');
    let s = s.get(usize::from(quoted)..).unwrap_or_default();
    let mut in_quote = quoted;
    let end = s.iter().position(|&b| {
        in_quote ^= b == b'"';
        b.is_ascii_whitespace() && !in_quote
    });
    let (word, rest) = s.split_at(end.unwrap_or(s.len()));
    // A closing quote at the end of the word is dropped (from the value, or from a
    // wholly quoted parameter).
    let param = match word.iter().position(|&b| b == b'=') {
        None if quoted => (unquote(word), None),
        None => (word, None),
        Some(eq) => {
            let (key, value) = (&word[..eq], &word[eq + 1..]);
            let value = match value.strip_prefix(b"\"") {
                Some(v) => unquote(v),
                None if quoted => unquote(value),
                None => value,
            };
            (key, Some(value))
        }
    };
    (param, rest)
}

/// `w` without one closing quote at its end.
fn unquote(w: &[u8]) -> &[u8] {
    w.strip_suffix(b"\"").unwrap_or(w)
}

/// What the command line asks of imprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `imprint.url=` or BOOTy's `BOOTYURL=`: the provisioning server's base URL.
    pub url: Option<String>,
    /// `ip=`: the kernel's syntax, kept as written (`dhcp` when absent).
    pub ip: Option<String>,
    /// `imprint.iface=`: interface name or MAC.
    pub iface: Option<String>,
    /// `imprint.on_error=`.
    pub on_error: Policy,
    /// `imprint.on_error_delay=` (else [`crate::rescue::DEFAULT_DELAY`]).
    pub on_error_delay: Option<u32>,
    /// `imprint.fault=` (only with the `fault-injection` feature, for tests).
    pub fault: Option<String>,
    /// `imprint.*` keys we do not know: shown in the banner as likely typos.
    pub unknown: Vec<String>,
}

/// The keys imprint reads, matched in `parse` by their position here (0 and 1 are one: the
/// position less one).
const KEYS: &str =
    "imprint.url BOOTYURL ip imprint.iface imprint.on_error imprint.on_error_delay imprint.fault";

/// What the text keys (url, ip, iface) must hold, '|'-separated.
const EXPECTED: &str = "a URL such as http://10.0.0.1/imprint|dhcp or <client>:<server>:<gw>:<netmask>:<host>:<dev>:<autoconf>:<dns0>:<dns1>|an interface name or MAC address";

/// Parses the whole command line. Every bad value is reported, one line each; the
/// settings hold the defaults in its place, so the rescue path still has a policy to follow.
pub fn parse(line: &[u8]) -> (Settings, Vec<String>) {
    let mut s = Settings::default();
    let mut errors = Vec::new();
    for (key, value) in params(line) {
        if !(key.starts_with(b"imprint.") || key == b"BOOTYURL" || key == b"ip") {
            continue;
        }
        let raw = value.unwrap_or_default();
        let mut bad = |expected: &str| {
            let (key, value) = (Quoted(key), Quoted(raw));
            errors.push(text!("kernel command line: {key:#}={value}: expected {expected}"));
        };
        // A value we keep must be text; a key given without `=` is treated as empty.
        let Ok(text) = core::str::from_utf8(raw) else {
            bad("UTF-8 text");
            continue;
        };
        let value = (!text.is_empty()).then(|| String::from(text));
        // The text keys: where each goes, and what it must be when it is empty.
        let texts = [&mut s.url, &mut s.ip, &mut s.iface];
        match KEYS.split(' ').position(|k| k.as_bytes() == key).map(|i| i.saturating_sub(1)) {
            Some(i @ 0..=2) if value.is_some() => *texts[i] = value,
            Some(i @ 0..=2) => bad(EXPECTED.split('|').nth(i).unwrap_or_default()),
            Some(3) => match Policy::parse(text) {
                Some(p) => s.on_error = p,
                None => bad("reboot, shell or poweroff"),
            },
            Some(4) => match crate::http::response::parse_length(raw) {
                Some(secs) if secs <= 86_400 => s.on_error_delay = Some(secs as u32),
                _ => bad("a number of seconds from 0 to 86400"),
            },
            #[cfg(feature = "fault-injection")]
            Some(5) => s.fault = value,
            _ => s.unknown.push(text!("{:#}", Quoted(key))),
        }
    }
    (s, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(line: &str) -> Vec<(String, Option<String>)> {
        params(line.as_bytes())
            .map(|p| {
                (
                    String::from_utf8(p.0.to_vec()).unwrap(),
                    p.1.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                )
            })
            .collect()
    }

    fn some(k: &str, v: &str) -> (String, Option<String>) {
        (k.to_string(), Some(v.to_string()))
    }

    #[test]
    fn splits_like_the_kernel() {
        assert_eq!(
            kv("  console=ttyS0,115200  quiet imprint.url=http://10.0.0.1/x\n"),
            vec![
                some("console", "ttyS0,115200"),
                ("quiet".to_string(), None),
                some("imprint.url", "http://10.0.0.1/x")
            ]
        );
    }

    #[test]
    fn quotes_group_words_and_are_removed() {
        assert_eq!(kv(r#"a="b c" d"#), vec![some("a", "b c"), ("d".to_string(), None)]);
        assert_eq!(kv(r#""a=b c" d"#), vec![some("a", "b c"), ("d".to_string(), None)]);
        assert_eq!(kv(r#""lone word""#), vec![("lone word".to_string(), None)]);
        // An unterminated quote runs to the end of the line, as in the kernel.
        assert_eq!(kv(r#"a="b c d"#), vec![some("a", "b c d")]);
        // Only the first '=' separates key and value.
        assert_eq!(kv("a=b=c"), vec![some("a", "b=c")]);
        assert_eq!(kv("a="), vec![some("a", "")]);
    }

    #[test]
    fn defaults_when_nothing_is_given() {
        let (s, errors) = parse(b"console=ttyS0 quiet");
        assert!(errors.is_empty());
        assert_eq!(s, Settings::default());
        assert_eq!((s.on_error, s.on_error_delay), (Policy::Reboot, None));
    }

    #[test]
    fn reads_every_key() {
        let (s, errors) = parse(
            b"imprint.url=http://h:8080/p ip=dhcp imprint.iface=52:54:00:12:34:56 \
              imprint.on_error=shell imprint.on_error_delay=5",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.url.as_deref(), Some("http://h:8080/p"));
        assert_eq!(s.ip.as_deref(), Some("dhcp"));
        assert_eq!(s.iface.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!((s.on_error, s.on_error_delay), (Policy::Shell, Some(5)));
    }

    #[test]
    fn bootyurl_is_the_same_key_and_the_last_wins() {
        let (s, _) = parse(b"BOOTYURL=http://a/ imprint.url=http://b/");
        assert_eq!(s.url.as_deref(), Some("http://b/"));
        let (s, _) = parse(b"imprint.url=http://b/ BOOTYURL=http://a/");
        assert_eq!(s.url.as_deref(), Some("http://a/"));
        let (s, _) = parse(b"imprint.on_error=shell imprint.on_error=poweroff");
        assert_eq!(s.on_error, Policy::Poweroff);
    }

    #[test]
    fn unknown_keys_are_ignored_and_ours_noted() {
        let (s, errors) = parse(b"foo=bar imprint.urll=http://x/ rd.break");
        assert!(errors.is_empty());
        assert_eq!(s.url, None);
        assert_eq!(s.unknown, vec!["imprint.urll".to_string()]);
    }

    #[test]
    fn garbage_values_are_errors_naming_the_key() {
        let (s, errors) =
            parse(b"imprint.on_error=maybe imprint.on_error_delay=-1 imprint.url= ip");
        let keys: Vec<&str> = errors.iter().map(|e| e.split('=').next().unwrap()).collect();
        let keys: Vec<&str> =
            keys.iter().map(|k| k.trim_start_matches("kernel command line: ")).collect();
        assert_eq!(keys, vec!["imprint.on_error", "imprint.on_error_delay", "imprint.url", "ip"]);
        // The defaults stay in force, so the rescue path still knows what to do.
        assert_eq!((s.on_error, s.on_error_delay), (Policy::Reboot, None));
        let line = &errors[0];
        assert!(
            line.contains("imprint.on_error=\"maybe\"")
                && line.contains("reboot, shell or poweroff"),
            "{line}"
        );
        let (_, errors) = parse(b"imprint.on_error_delay=86401");
        assert_eq!(errors.len(), 1);
        let (s, errors) = parse(b"imprint.on_error_delay=0");
        assert!(errors.is_empty());
        assert_eq!(s.on_error_delay, Some(0));
    }

    #[test]
    fn binary_garbage_neither_panics_nor_is_trusted() {
        let (s, errors) = parse(b"imprint.url=\xff\xfe \x00\x01\x02 \"\"\" ===");
        assert_eq!(s.url, None);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0],
            "kernel command line: imprint.url=\"\\xff\\xfe\": expected UTF-8 text"
        );
        // Every byte sequence splits without panicking.
        for len in 0..64usize {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let _ = parse(&junk);
        }
    }
}
