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
use alloc::string::String;
use core::fmt;

/// An image's encoding, told from its first bytes (a plan's `compressed` is only a hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Gzip,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Raw => "raw",
            Format::Gzip => "gzip",
        })
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

/// An image source in tool mode: a file or standard input ([`open_source`]), or a URL's
/// response.
pub enum Source<'c> {
    File(Fd),
    Stdin,
    Http(crate::http::Response<'c>),
}

impl Read for Source<'_> {
    type Error = Interrupted;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Interrupted> {
        let local = match self {
            Source::File(f) => f.read(buf),
            Source::Stdin => fd::read_raw(fd::STDIN, buf),
            Source::Http(r) => return r.read(buf).map_err(Interrupted::from),
        };
        local.map_err(|e| text!("{e}"))
    }
}

/// Opens `spec` (a path, or `-` for standard input); returns it and its length if known.
pub fn open_source(spec: &str) -> Result<(Source<'static>, Option<u64>), Errno> {
    if spec == "-" {
        return Ok((Source::Stdin, None));
    }
    let kind = block::kind_of(spec)?;
    let file = Fd::open(spec, OpenFlags::READ, 0)?;
    let len = match kind {
        Some(block::Kind::RegularFile) => Some(block::file_len(&file)?),
        _ => None,
    };
    Ok((Source::File(file), len))
}

/// The progress line: redrawn in place on a terminal, one line per call otherwise.
pub fn show_progress(p: &progress::Progress, on_tty: bool) {
    match (on_tty, p.done) {
        (true, false) => say!("\r{p}\x1b[K"),
        (true, true) => say!("\r{p}\x1b[K\n"),
        (false, _) => sayln!("{p}"),
    }
}

/// The end of a tool-mode command: its outcome's line on standard output, or its error on
/// standard error (after ending the progress line on a terminal); the exit status.
pub fn finish_command(command: &str, on_tty: bool, outcome: Result<String, String>) -> i32 {
    match outcome {
        Ok(line) => {
            sayln!("{line}");
            0
        }
        Err(e) => {
            if on_tty {
                say!("\n");
            }
            errln!("imprint {command}: {e}");
            1
        }
    }
}

pub const WRITE_USAGE: &str =
    "imprint write <image> <device> [--sha256 HEX] [--no-sparse] [--size N]";

/// `imprint write`: parses the arguments, writes, prints progress; returns the exit status.
pub fn write_command(args: &[&[u8]]) -> i32 {
    match parse_write_args(args) {
        Ok(cmd) => run_write(&cmd),
        Err(why) => {
            errln!("imprint write: {why}; usage: {WRITE_USAGE}");
            crate::tool::EXIT_USAGE
        }
    }
}

#[derive(Debug)]
struct WriteCommand<'a> {
    source: &'a str,
    target: &'a str,
    options: write::Options,
}

fn parse_write_args<'a>(raw: &[&'a [u8]]) -> Result<WriteCommand<'a>, String> {
    let mut args = crate::tool::Args::new(raw)?;
    let sha256 = args.value("--sha256")?;
    let size = args.value("--size")?;
    let options = write::Options {
        sparse: !args.flag("--no-sparse"),
        sha256: sha256
            .map(|hex| {
                sha256::parse_hex(hex).ok_or_else(|| bad_value("--sha256", hex, "64 hex digits"))
            })
            .transpose()?,
        image_size: size
            .map(|n| n.parse().map_err(|_| bad_value("--size", n, "a byte count")))
            .transpose()?,
        source_size: None,
    };
    // positional() returns exactly two arguments or an error.
    let [source, target] =
        <[&str; 2]>::try_from(args.positional(2, "an image and a device")?).unwrap_or_default();
    Ok(WriteCommand { source, target, options })
}

fn bad_value(name: &str, value: &str, what: &str) -> String {
    text!("{name} {} is not {what}", crate::console::Quoted(value))
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

// Not inlined into the tool dispatcher (measured: smaller).
#[inline(never)]
fn run_write(cmd: &WriteCommand) -> i32 {
    let on_tty = tty::is_tty(fd::STDOUT);
    let mut show = |p: &progress::Progress| -> Result<(), Interrupted> {
        show_progress(p, on_tty);
        Ok(())
    };
    let mut client;
    let opened = if cmd.source.starts_with("http://") || cmd.source.starts_with("https://") {
        // Tool mode has no lease: names resolve through /etc/resolv.conf, as for get.
        client = crate::http::Client::new(crate::net::dns::system_servers(), Default::default());
        client.get(cmd.source).map(|r| (r.length(), Source::Http(r))).map_err(|e| text!("{e}"))
    } else {
        let opened = open_source(cmd.source).map(|(source, len)| (len, source));
        opened.map_err(|e| text!("opening {}: {e}", cmd.source))
    };
    let (source_size, mut source) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            errln!("imprint write: {e}");
            return 1;
        }
    };
    let options = write::Options { source_size, ..cmd.options.clone() };
    let written = write::write_image(&mut source, cmd.target, &options, &mut show);
    let outcome = written.map(|s| text!("{}: wrote {s}", cmd.target)).map_err(|e| text!("{e}"));
    finish_command("write", on_tty, outcome)
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
        let cmd = parse_write_args(&args).unwrap();
        assert_eq!((cmd.source, cmd.target), ("img.gz", "/dev/sda"));
        assert_eq!(cmd.options.sha256, Some([0xab; 32]));
        assert_eq!(cmd.options.image_size, Some(1048577));
        assert!(!cmd.options.sparse);
        assert!(parse_write_args(&[b"a", b"b"]).unwrap().options.sparse, "sparse by default");
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
