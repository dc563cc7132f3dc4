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
    let mut lines = data.chunks_exact(64);
    for line in &mut lines {
        let mut acc = 0u64;
        for word in line.chunks_exact(8) {
            acc |= u64::from_ne_bytes([word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7]]);
        }
        if acc != 0 {
            return false;
        }
    }
    lines.remainder().iter().all(|&b| b == 0)
}

/// An image source in tool mode: a local file or standard input. URLs join when the HTTP
/// client lands: [`open_source`] is the one place that knows the kinds.
pub enum Source {
    File(Fd),
    Stdin,
}

/// A failed read of a tool-mode source.
#[derive(Debug)]
pub struct SourceError(pub Errno);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Errno> for SourceError {
    fn from(e: Errno) -> SourceError {
        SourceError(e)
    }
}

impl Read for Source {
    type Error = Errno;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            Source::File(f) => f.read(buf),
            Source::Stdin => fd::read_raw(fd::STDIN, buf),
        }
    }
}

/// Opens `spec` (a path, or `-` for standard input); returns it and its length if known.
pub fn open_source(spec: &str) -> Result<(Source, Option<u64>), Errno> {
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

pub const WRITE_USAGE: &str = "imprint write <image> <device> [--sha256 HEX] [--no-sparse] [--size N]";

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
struct WriteCommand {
    source: String,
    target: String,
    options: write::Options,
}

fn parse_write_args(args: &[&[u8]]) -> Result<WriteCommand, String> {
    let mut positional = alloc::vec::Vec::new();
    let mut options = write::Options::default();
    let mut rest = args.iter().map(|a| String::from_utf8_lossy(a));
    while let Some(arg) = rest.next() {
        match &*arg {
            "--no-sparse" => options.sparse = false,
            "--sha256" => {
                let hex = rest.next().ok_or("--sha256 needs a value")?;
                options.sha256 = Some(sha256::parse_hex(&hex).ok_or(text!("--sha256 {} is not 64 hex digits", crate::console::Quoted(&hex)))?);
            }
            "--size" => {
                let n = rest.next().ok_or("--size needs a value")?;
                options.image_size = Some(n.parse().map_err(|_| text!("--size {} is not a byte count", crate::console::Quoted(&n)))?);
            }
            flag if flag.starts_with("--") => return Err(text!("unknown option {}", crate::console::Quoted(flag))),
            _ => positional.push(arg.into_owned()),
        }
    }
    match <[String; 2]>::try_from(positional) {
        Ok([source, target]) => Ok(WriteCommand { source, target, options }),
        Err(p) => Err(text!("expected an image and a device, got {} arguments", p.len())),
    }
}

fn run_write(cmd: &WriteCommand) -> i32 {
    let (mut source, source_size) = match open_source(&cmd.source) {
        Ok(s) => s,
        Err(e) => {
            errln!("imprint write: opening {}: {e}", cmd.source);
            return 1;
        }
    };
    let options = write::Options { source_size, ..cmd.options.clone() };
    let on_tty = tty::is_tty(fd::STDOUT);
    let mut show = |p: &progress::Progress| -> Result<(), SourceError> {
        show_progress(p, on_tty);
        Ok(())
    };
    let result = write::write_image(&mut source, &cmd.target, &options, &mut show);
    match result {
        Ok(s) => {
            say!("wrote {} bytes ({}", s.image_len, s.format);
            if s.format == Format::Gzip {
                say!(", {} member{}", s.members, if s.members == 1 { "" } else { "s" });
            }
            say!(") to {}; {} bytes zeroed, not written", cmd.target, s.sparse_bytes);
            if let Some(d) = s.sha256 {
                say!("; sha256 {} verified", sha256::Hex(&d));
            }
            match s.partitions {
                write::PartitionScan::Rescanned(n) => sayln!("; {n} partitions"),
                write::PartitionScan::Busy => sayln!("; partition table NOT re-read: a partition is in use"),
                _ => sayln!(""),
            }
            0
        }
        Err(e) => {
            if on_tty {
                say!("\n");
            }
            errln!("imprint write: {e}");
            1
        }
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
        let args: [&[u8]; 7] =
            [b"img.gz", b"--sha256", hex.as_bytes(), b"/dev/sda", b"--no-sparse", b"--size", b"1048577"];
        let cmd = parse_write_args(&args).unwrap();
        assert_eq!((cmd.source.as_str(), cmd.target.as_str()), ("img.gz", "/dev/sda"));
        assert_eq!(cmd.options.sha256, Some([0xab; 32]));
        assert_eq!(cmd.options.image_size, Some(1048577));
        assert!(!cmd.options.sparse);
        assert!(parse_write_args(&[b"a", b"b"]).unwrap().options.sparse, "sparse by default");
        assert!(parse_write_args(&[b"a"]).unwrap_err().contains("1 arguments"));
        assert!(parse_write_args(&[b"a", b"b", b"--sha256", b"xyz"]).unwrap_err().contains("64 hex"));
        assert!(parse_write_args(&[b"a", b"b", b"--size", b"-1"]).unwrap_err().contains("byte count"));
        assert!(parse_write_args(&[b"a", b"b", b"--fast"]).unwrap_err().contains("--fast"));
    }
}
