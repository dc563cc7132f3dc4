//! The kernel command line (`/proc/cmdline`) as typed settings.
//!
//! Splitting follows the kernel's own `next_arg()` (lib/cmdline.c), so a parameter means
//! here exactly what it meant to the kernel: words split at unquoted white space, the first
//! `=` separates key and value, and double quotes group words (`"k=a b"` or `k="a b"`) and
//! are removed. Repeated keys: the last one wins, as for most kernel parameters. Unknown
//! keys are ignored (the kernel line carries many for others); unknown `imprint.*` keys are
//! noted, since they are most likely typos. A bad value for a key we know is an error.

use crate::console::Quoted;
use crate::rescue::{OnError, Policy};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// One `key[=value]` word of the command line, quotes removed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Param<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Splits a command line into parameters the way the kernel does.
pub fn params(line: &[u8]) -> Vec<Param<'_>> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        rest = trim_start(rest);
        if rest.is_empty() {
            return out;
        }
        let (param, tail) = next_param(rest);
        out.push(param);
        rest = tail;
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let skip = s.iter().take_while(|b| b.is_ascii_whitespace() || **b == 0).count();
    &s[skip..]
}

/// The kernel's next_arg(): one word, honouring quotes; returns it and the rest.
fn next_param(s: &[u8]) -> (Param<'_>, &[u8]) {
    let (quoted, s) = match s.first() {
        Some(b'"') => (true, &s[1..]),
        _ => (false, s),
    };
    let mut in_quote = quoted;
    let mut equals = None;
    let mut end = 0;
    while end < s.len() {
        let b = s[end];
        if b.is_ascii_whitespace() && !in_quote {
            break;
        }
        if equals.is_none() && b == b'=' {
            equals = Some(end);
        }
        if b == b'"' {
            in_quote = !in_quote;
        }
        end += 1;
    }
    let word = &s[..end];
    let rest = &s[end..];
    // A closing quote at the end of the word is dropped (from the value, or from a
    // wholly quoted parameter).
    let strip_last_quote = |w: &'_ [u8]| -> usize {
        if w.last() == Some(&b'"') {
            w.len() - 1
        } else {
            w.len()
        }
    };
    let param = match equals {
        None => {
            let len = if quoted { strip_last_quote(word) } else { word.len() };
            Param { key: &word[..len], value: None }
        }
        Some(eq) => {
            let mut value = &word[eq + 1..];
            if value.first() == Some(&b'"') {
                value = &value[1..];
                value = &value[..strip_last_quote(value)];
            } else if quoted {
                value = &value[..strip_last_quote(value)];
            }
            Param { key: &word[..eq], value: Some(value) }
        }
    };
    (param, rest)
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
    /// `imprint.on_error=` and `imprint.on_error_delay=`.
    pub on_error: OnError,
    /// `imprint.fault=` (only with the `fault-injection` feature, for tests).
    pub fault: Option<String>,
    /// `imprint.*` keys we do not know: shown in the banner as likely typos.
    pub unknown: Vec<String>,
}

/// A parameter imprint knows, with a value it cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdlineError {
    pub key: String,
    pub value: String,
    pub expected: &'static str,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel command line: {}={}: expected {}",
            self.key,
            Quoted(&self.value),
            self.expected
        )
    }
}

/// Longest delay imprint accepts before acting on an error: one day.
pub const MAX_ERROR_DELAY: u32 = 86_400;

/// Parses the whole command line. Every bad value is reported; the settings hold the
/// defaults in its place, so the rescue path still has a policy to follow.
pub fn parse(line: &[u8]) -> (Settings, Vec<CmdlineError>) {
    let mut settings = Settings::default();
    let mut errors = Vec::new();
    for Param { key, value } in params(line) {
        let key_text = String::from_utf8_lossy(key);
        let value_text = value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
        let mut bad = |expected: &'static str| {
            errors.push(CmdlineError {
                key: key_text.to_string(),
                value: value_text.clone(),
                expected,
            })
        };
        // A value we keep must be text; a key given without `=` is treated as empty.
        let text = match value.map(core::str::from_utf8) {
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                if is_ours(key) {
                    bad("UTF-8 text");
                }
                continue;
            }
            None => "",
        };
        match key {
            b"imprint.url" | b"BOOTYURL" => match text {
                "" => bad("a URL such as http://10.0.0.1/imprint"),
                url => settings.url = Some(url.to_string()),
            },
            b"ip" => match text {
                "" => bad("dhcp or <client>:<server>:<gw>:<netmask>:<host>:<dev>:<autoconf>:<dns0>:<dns1>"),
                ip => settings.ip = Some(ip.to_string()),
            },
            b"imprint.iface" => match text {
                "" => bad("an interface name or MAC address"),
                iface => settings.iface = Some(iface.to_string()),
            },
            b"imprint.on_error" => match Policy::parse(text) {
                Some(p) => settings.on_error.policy = p,
                None => bad("reboot, shell or poweroff"),
            },
            b"imprint.on_error_delay" => match text.parse::<u32>() {
                Ok(secs) if secs <= MAX_ERROR_DELAY => settings.on_error.delay_secs = secs,
                _ => bad("a number of seconds from 0 to 86400"),
            },
            #[cfg(feature = "fault-injection")]
            b"imprint.fault" => settings.fault = Some(text.to_string()),
            _ if key.starts_with(b"imprint.") => settings.unknown.push(key_text.into_owned()),
            _ => {}
        }
    }
    (settings, errors)
}

fn is_ours(key: &[u8]) -> bool {
    key.starts_with(b"imprint.") || key == b"BOOTYURL" || key == b"ip"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(line: &str) -> Vec<(String, Option<String>)> {
        params(line.as_bytes())
            .into_iter()
            .map(|p| {
                (
                    String::from_utf8(p.key.to_vec()).unwrap(),
                    p.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
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
        assert_eq!(s.on_error.policy, Policy::Reboot);
        assert_eq!(s.on_error.delay_secs, 30);
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
        assert_eq!(s.on_error, OnError { policy: Policy::Shell, delay_secs: 5 });
    }

    #[test]
    fn bootyurl_is_the_same_key_and_the_last_wins() {
        let (s, _) = parse(b"BOOTYURL=http://a/ imprint.url=http://b/");
        assert_eq!(s.url.as_deref(), Some("http://b/"));
        let (s, _) = parse(b"imprint.url=http://b/ BOOTYURL=http://a/");
        assert_eq!(s.url.as_deref(), Some("http://a/"));
        let (s, _) = parse(b"imprint.on_error=shell imprint.on_error=poweroff");
        assert_eq!(s.on_error.policy, Policy::Poweroff);
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
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, vec!["imprint.on_error", "imprint.on_error_delay", "imprint.url", "ip"]);
        // The defaults stay in force, so the rescue path still knows what to do.
        assert_eq!(s.on_error, OnError::default());
        let line = errors[0].to_string();
        assert!(
            line.contains("imprint.on_error=\"maybe\"")
                && line.contains("reboot, shell or poweroff"),
            "{line}"
        );
        let (_, errors) = parse(b"imprint.on_error_delay=86401");
        assert_eq!(errors.len(), 1);
        let (s, errors) = parse(b"imprint.on_error_delay=0");
        assert!(errors.is_empty());
        assert_eq!(s.on_error.delay_secs, 0);
    }

    #[test]
    fn binary_garbage_neither_panics_nor_is_trusted() {
        let (s, errors) = parse(b"imprint.url=\xff\xfe \x00\x01\x02 \"\"\" ===");
        assert_eq!(s.url, None);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].expected, "UTF-8 text");
        // Every byte sequence splits without panicking.
        for len in 0..64usize {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let _ = parse(&junk);
        }
    }
}
