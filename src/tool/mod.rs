//! Tool mode: the same binary run as a normal program (not PID 1), for rescue shells,
//! hosts and tests. Exit status 0 on success; otherwise a one-line reason on stderr.
//!
//! Everything here, and only what tool mode uses, is outside the boot path: the boot never
//! runs it, so `make audit` counts it apart from the boot path's line budget (and fails
//! when boot-path code refers to it). It builds on the boot path's modules, never the
//! other way round.

pub mod http;
pub mod image;
pub mod net;

use crate::console::Quoted;
use alloc::string::String;
use alloc::vec::Vec;

/// `imprint --help`: text, kept beside this file (src/tool/usage.txt).
pub const USAGE: &str = include_str!("usage.txt");

/// The arguments of one tool-mode command, taken out as they are recognized, so every
/// command parses the same way: `--name VALUE` or `--name=VALUE`, switches, then the
/// positional arguments; an option nobody asked for is an error.
pub struct Args<'a> {
    rest: Vec<&'a str>,
}

impl<'a> Args<'a> {
    /// The arguments after the command name; they must be UTF-8.
    pub fn new(raw: &[&'a [u8]]) -> Result<Args<'a>, String> {
        let rest = raw.iter().map(|arg| core::str::from_utf8(arg));
        Ok(Args { rest: rest.collect::<Result<_, _>>().map_err(|_| "arguments must be UTF-8")? })
    }

    /// Takes `name VALUE` or `name=VALUE` out; the last one given wins.
    pub fn value(&mut self, name: &str) -> Result<Option<&'a str>, String> {
        let mut found = None;
        let mut i = 0;
        while let Some(arg) = self.rest.get(i) {
            found = Some(match arg.strip_prefix(name).map(|v| (v, v.strip_prefix('='))) {
                Some(("", _)) if i + 1 < self.rest.len() => self.rest.remove(i + 1),
                Some(("", _)) => return Err(text!("{name} needs a value")),
                Some((_, Some(value))) => value,
                _ => {
                    i += 1;
                    continue;
                }
            });
            self.rest.remove(i);
        }
        Ok(found)
    }

    /// Takes a switch out; whether it was given.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.rest.len();
        self.rest.retain(|a| *a != name);
        self.rest.len() != before
    }

    /// What is left: exactly `count` positional arguments, no unknown options.
    pub fn positional(self, count: usize, what: &str) -> Result<Vec<&'a str>, String> {
        if let Some(option) = self.rest.iter().find(|a| a.len() > 1 && a.starts_with('-')) {
            return Err(text!("unknown option {}", Quoted(option)));
        }
        if self.rest.len() != count {
            return Err(text!("expected {what}"));
        }
        Ok(self.rest)
    }
}

/// A whole number as Rust's `parse` reads it (an optional '+', then decimal digits),
/// without its generic code.
pub fn number(v: &str) -> Option<u64> {
    crate::http::response::parse_length(v.strip_prefix('+').unwrap_or(v).as_bytes())
}

/// Exit statuses, as sysexits(3) has them.
pub const EXIT_USAGE: i32 = 64;

/// Runs one tool-mode command; returns the exit status.
pub fn main(args: &[&[u8]]) -> i32 {
    let rest = args.get(2..).unwrap_or_default();
    match args.get(1).copied() {
        Some(b"--help" | b"-h" | b"help") => say!("{USAGE}"),
        Some(b"--version" | b"-V") => sayln!("imprint {}", crate::VERSION),
        Some(b"get") => return http::get(rest).err().unwrap_or(0),
        Some(b"put") => return http::put(rest).err().unwrap_or(0),
        Some(b"write") => return image::write_command(rest),
        Some(b"capture") => return image::capture_command(rest),
        Some(b"dhcp") => return net::dhcp_command(rest),
        other => {
            let what = other.map_or("no command given (this is not PID 1)".into(), |other| {
                text!("unknown command {}", Quoted(other))
            });
            errln!("imprint: {what}; see imprint --help");
            return EXIT_USAGE;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args<'a>(words: &'a [&'a str]) -> Args<'a> {
        let raw: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        Args::new(&raw).unwrap()
    }

    #[test]
    fn values_switches_and_positionals() {
        let mut a = args(&["img.gz", "--sha256", "ab", "/dev/vda", "--no-sparse", "--size=42"]);
        assert_eq!(a.value("--sha256"), Ok(Some("ab")));
        assert_eq!(a.value("--size"), Ok(Some("42")));
        assert_eq!(a.value("--level"), Ok(None));
        assert!(a.flag("--no-sparse"));
        assert!(!a.flag("--raw"));
        assert_eq!(a.positional(2, "<image> <device>"), Ok(vec!["img.gz", "/dev/vda"]));
    }

    #[test]
    fn usage_errors_are_one_line() {
        assert_eq!(args(&["--size"]).value("--size"), Err("--size needs a value".into()));
        assert_eq!(
            args(&["a", "--bogus"]).positional(1, "<url>"),
            Err("unknown option \"--bogus\"".into())
        );
        assert_eq!(args(&["a", "b"]).positional(1, "one <url>"), Err("expected one <url>".into()));
        // A lone "-" is standard input, not an option.
        assert_eq!(args(&["-", "x"]).positional(2, "two"), Ok(vec!["-", "x"]));
        assert!(Args::new(&[b"\xff".as_slice()]).is_err());
    }
}
