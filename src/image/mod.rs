//! Images: gzip or raw, streamed onto a disk ([`write`]), with our own CRC-32 ([`crc32`])
//! and SHA-256 ([`sha256`]) to prove every byte, and the `imprint write` command.

pub mod capture;
pub mod crc32;
pub mod gzip;
pub mod progress;
pub mod sha256;
pub mod write;

use crate::io::Read;
use crate::sys::block;
use crate::sys::fd::{self, Fd, OpenFlags};
use crate::sys::{tty, Errno};
use crate::tool::Args;
use alloc::string::String;
use core::fmt;
use progress::Progress;

/// An image's encoding, told from its first bytes (a plan's `compressed` is only a hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Gzip,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if *self == Format::Gzip { "gzip" } else { "raw" })
    }
}

/// Whether `data` is all zero bytes: eight words at a time, ORed together, so a data
/// block is settled by its first 64 bytes and a zero block costs one pass of plain loads.
pub fn is_zero(data: &[u8]) -> bool {
    let (lines, rest) = data.as_chunks::<64>();
    let zero = |line: &[u8; 64]| {
        line.as_chunks::<8>().0.iter().fold(0, |a, w| a | u64::from_ne_bytes(*w)) == 0
    };
    lines.iter().all(zero) && rest.iter().all(|&b| b == 0)
}

/// An image source in tool mode: a file or standard input (`None`) ([`open_source`]), or
/// a URL's response.
pub enum Source<'c> {
    File(Option<Fd>),
    Http(crate::http::Response<'c>),
}

impl Read for Source<'_> {
    type Error = Interrupted;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Interrupted> {
        match self {
            Source::File(f) => {
                fd::read_raw(f.as_ref().map_or(fd::STDIN, Fd::raw), buf).map_err(|e| text!("{e}"))
            }
            Source::Http(r) => r.read(buf).map_err(Interrupted::from),
        }
    }
}

/// Opens `spec` (a path, or `-` for standard input); returns it and its length if known.
pub fn open_source(spec: &str) -> Result<(Source<'static>, Option<u64>), Errno> {
    if spec == "-" {
        return Ok((Source::File(None), None));
    }
    let kind = block::kind_of(spec)?;
    let file = Fd::open(spec, OpenFlags::READ, 0)?;
    let len = match kind {
        Some(block::Kind::RegularFile) => Some(block::file_len(&file)?),
        _ => None,
    };
    Ok((Source::File(Some(file)), len))
}

/// The progress line: redrawn in place on a terminal, one line per call otherwise.
pub fn show_progress(p: &Progress, on_tty: bool) {
    match on_tty {
        true => say!("\r{p}\x1b[K{}", if p.done { "\n" } else { "" }),
        false => sayln!("{p}"),
    }
}

/// A progress hook: an error stops the transfer.
pub type Hook<'h> = dyn FnMut(&Progress) -> Result<(), String> + 'h;

/// A tool-mode command's arguments were wrong: says why, and the usage; the exit status.
pub fn usage_error(name: &str, why: &str, usage: &str) -> i32 {
    errln!("imprint {name}: {why}; usage: {usage}");
    crate::tool::EXIT_USAGE
}

/// Runs a tool-mode image command with a hook that draws the progress line: its outcome's
/// line goes to standard output, its error to standard error; returns the exit status.
// Not inlined into the tool dispatcher, nor are the commands' bodies (measured: smaller).
#[inline(never)]
pub fn run_command(name: &str, run: &mut dyn FnMut(&mut Hook) -> Result<String, String>) -> i32 {
    let (on_tty, mut drawn) = (tty::is_tty(fd::STDOUT), false);
    let outcome = run(&mut |p| {
        show_progress(p, on_tty);
        drawn = !p.done;
        Ok(())
    });
    match outcome {
        Ok(line) => sayln!("{line}"),
        Err(e) => {
            // End a progress line left open on the terminal first.
            if on_tty && drawn {
                say!("\n");
            }
            errln!("imprint {name}: {e}");
            return 1;
        }
    }
    0
}

pub const WRITE_USAGE: &str =
    "imprint write <image> <device> [--sha256 HEX] [--no-sparse] [--size N]";

/// `imprint write`: parses the arguments, writes, prints progress; returns the exit status.
pub fn write_command(args: &[&[u8]]) -> i32 {
    let (source, target, mut options) = match parse_write_args(args) {
        Ok(parsed) => parsed,
        Err(why) => return usage_error("write", &why, WRITE_USAGE),
    };
    run_command("write", &mut |hook| {
        let mut client;
        let mut source = if source.starts_with("http://") || source.starts_with("https://") {
            // Tool mode has no lease: names resolve through /etc/resolv.conf, as for get.
            client =
                crate::http::Client::new(crate::net::dns::system_servers(), Default::default());
            let response = client.get(source).map_err(|e| text!("{e}"))?;
            options.source_size = response.length();
            Source::Http(response)
        } else {
            let (file, len) = open_source(source).map_err(|e| text!("opening {source}: {e}"))?;
            options.source_size = len;
            file
        };
        let summary = write::write_image(&mut source, target, &options, hook);
        summary.map(|s| text!("{target}: wrote {s}")).map_err(|e| text!("{e}"))
    })
}

fn parse_write_args<'a>(raw: &[&'a [u8]]) -> Result<(&'a str, &'a str, write::Options), String> {
    let mut args = Args::new(raw)?;
    let options = write::Options {
        sha256: option(&mut args, "--sha256", "64 hex digits", sha256::parse_hex)?,
        image_size: option(&mut args, "--size", "a byte count", |n| n.parse().ok())?,
        sparse: !args.flag("--no-sparse"),
        source_size: None,
    };
    // positional() returns exactly two arguments or an error.
    let [source, target] =
        <[&str; 2]>::try_from(args.positional(2, "an image and a device")?).unwrap_or_default();
    Ok((source, target, options))
}

/// `name VALUE` taken out of `args` and parsed, or an error saying VALUE is not `what`.
fn option<T>(
    args: &mut Args,
    name: &str,
    what: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, String> {
    let Some(value) = args.value(name)? else { return Ok(None) };
    let bad = || text!("{name} {} is not {what}", crate::console::Quoted(value));
    parse(value).map(Some).ok_or_else(bad)
}

/// Why the stream feeding a write stopped (its source failed, after the HTTP client's
/// retries and Range resumes; or the DHCP lease could not be kept), as one line: the one
/// error type of every write's source and progress hook, so the write path is compiled
/// once.
pub type Interrupted = String;

impl From<crate::http::Error> for Interrupted {
    fn from(e: crate::http::Error) -> Interrupted {
        text!("{e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection_looks_at_every_byte() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 5000]));
        for at in [0, 63, 64, 4999] {
            let mut d = [0u8; 5000];
            d[at] = 1;
            assert!(!is_zero(&d), "{at}");
        }
    }

    #[test]
    fn write_arguments_parse_and_bad_ones_are_refused() {
        let hex = "ab".repeat(32);
        let args: [&[u8]; 7] = [
            b"img.gz",
            b"--sha256",
            hex.as_bytes(),
            b"/dev/sda",
            b"--no-sparse",
            b"--size",
            b"1048577",
        ];
        let (source, target, options) = parse_write_args(&args).unwrap();
        assert_eq!((source, target), ("img.gz", "/dev/sda"));
        assert_eq!(options.sha256, Some([0xab; 32]));
        assert_eq!(options.image_size, Some(1048577));
        assert!(!options.sparse);
        assert!(parse_write_args(&[b"a", b"b"]).unwrap().2.sparse, "sparse by default");
        assert!(parse_write_args(&[b"a"]).unwrap_err().contains("expected an image and a device"));
        assert!(parse_write_args(&[b"a", b"b", b"--sha256", b"xyz"])
            .unwrap_err()
            .contains("64 hex"));
        assert!(parse_write_args(&[b"a", b"b", b"--size", b"-1"])
            .unwrap_err()
            .contains("byte count"));
        assert!(parse_write_args(&[b"a", b"b", b"--fast"]).unwrap_err().contains("--fast"));
    }
}
