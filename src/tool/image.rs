//! Tool mode's image commands: `imprint write` and `imprint capture`, with the progress
//! line drawn as they go.

use super::{number, Args, EXIT_USAGE};
use crate::http::Client;
use crate::image::capture::{self, Options, Summary, DEFAULT_LEVEL};
use crate::image::sha256::{parse_hex, Hex};
use crate::image::{show_progress, write, Hook, Interrupted};
use crate::io::Read;
use crate::sys::block;
use crate::sys::fd::{self, Fd, OpenFlags};
use crate::sys::{tty, Errno};
use alloc::string::String;

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

/// A tool-mode command's arguments were wrong: says why, and the usage; the exit status.
pub fn usage_error(name: &str, why: &str, usage: &str) -> i32 {
    errln!("imprint {name}: {why}; usage: {usage}");
    EXIT_USAGE
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
            client = Client::new(super::net::system_servers(), Default::default());
            let response = client.get(source).map_err(|e| e.message)?;
            options.source_size = response.length();
            Source::Http(response)
        } else {
            let (file, len) = open_source(source).map_err(|e| text!("opening {source}: {e}"))?;
            options.source_size = len;
            file
        };
        let summary = write::write_image(&mut source, target, &options, hook);
        summary.map(|s| text!("{target}: wrote {s}"))
    })
}

fn parse_write_args<'a>(raw: &[&'a [u8]]) -> Result<(&'a str, &'a str, write::Options), String> {
    let mut args = Args::new(raw)?;
    let hex = option(&mut args, "--sha256", "64 hex digits", |v| parse_hex(v).is_some())?;
    let size = option(&mut args, "--size", "a byte count", |v| number(v).is_some())?;
    let (sha256, image_size) = (hex.and_then(parse_hex), size.and_then(number));
    let sparse = !args.flag("--no-sparse");
    let options = write::Options { sha256, image_size, sparse, source_size: None };
    // positional() returns exactly two arguments or an error.
    let [source, target] =
        <[&str; 2]>::try_from(args.positional(2, "an image and a device")?).unwrap_or_default();
    Ok((source, target, options))
}

/// `name VALUE` taken out of `args`, or an error saying VALUE is not `what` unless `ok`.
/// (Not generic: compiled once for every option; the caller parses the checked value.)
fn option<'a>(
    args: &mut Args<'a>,
    name: &str,
    what: &str,
    ok: fn(&str) -> bool,
) -> Result<Option<&'a str>, String> {
    let value = args.value(name)?;
    match value {
        Some(v) if !ok(v) => Err(text!("{name} {} is not {what}", crate::console::Quoted(v))),
        _ => Ok(value),
    }
}

/// What follows the last '/' (no `rsplit`: its reverse searcher costs 600 bytes).
fn base_name(path: &str) -> &str {
    let start = path.bytes().rposition(|b| b == b'/').map_or(0, |i| i + 1);
    path.get(start..).unwrap_or(path)
}

pub const CAPTURE_USAGE: &str =
    "imprint capture <device> <upload-url> [--raw] [--put] [--level N] [--name NAME]";

/// `imprint capture`: reads the device, uploads it, prints progress and the SHA-256;
/// returns the exit status.
pub fn capture_command(args: &[&[u8]]) -> i32 {
    let (path, url, options) = match parse_capture_args(args) {
        Ok(parsed) => parsed,
        Err(why) => return usage_error("capture", &why, CAPTURE_USAGE),
    };
    run_command("capture", &mut |hook| {
        let mut client = Client::new(super::net::system_servers(), Default::default());
        let Summary { disk_len, sent_len, members, zero_bytes, sha256 } =
            capture::capture(&mut client, capture::open(path)?, url, &options, hook)?;
        Ok(text!(
            "captured {disk_len} bytes of {path} to {url}: {sent_len} bytes sent, {members} member(s), {zero_bytes} bytes of zero runs; sha256 {}",
            Hex(&sha256)
        ))
    })
}

fn parse_capture_args<'a>(args: &[&'a [u8]]) -> Result<(&'a str, &'a str, Options), String> {
    let mut args = Args::new(args)?;
    let level = option(&mut args, "--level", "a level from 0 to 10", |n| {
        number(n).is_some_and(|l| l <= 10)
    })?;
    let level = level.and_then(number).map_or(DEFAULT_LEVEL, |l| l as u8);
    let name = args.value("--name")?;
    let compressed = !args.flag("--raw");
    let put = args.flag("--put");
    // positional() returns exactly two arguments or an error.
    let [path, url] = <[&str; 2]>::try_from(args.positional(2, "a device and an upload URL")?)
        .unwrap_or_default();
    // plunder names captures by MAC; a tool run names it after the device by default.
    let form_name = (!put).then(|| String::from(name.unwrap_or_else(|| base_name(path))));
    Ok((path, url, Options { compressed, level, form_name }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

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

    #[test]
    fn capture_arguments_parse_and_bad_ones_are_refused() {
        let (path, url, options) = parse_capture_args(&[b"/dev/vda", b"http://s/image"]).unwrap();
        assert_eq!((path, url), ("/dev/vda", "http://s/image"));
        assert_eq!(
            options,
            Options { compressed: true, level: DEFAULT_LEVEL, form_name: Some("vda".to_string()) }
        );
        let args: [&[u8]; 7] = [b"d", b"--raw", b"u", b"--put", b"--level", b"9", b"--name=x"];
        let (_, _, options) = parse_capture_args(&args).unwrap();
        assert_eq!(options, Options { compressed: false, level: 9, form_name: None });
        let (_, _, named) = parse_capture_args(&[b"d", b"u", b"--name", b"aa:bb"]).unwrap();
        assert_eq!(named.form_name.as_deref(), Some("aa:bb"));
        assert!(parse_capture_args(&[b"d", b"u", b"--level", b"11"])
            .unwrap_err()
            .contains("0 to 10"));
        assert!(parse_capture_args(&[b"d", b"u", b"--level", b"x"]).is_err());
        assert!(parse_capture_args(&[b"d"]).unwrap_err().contains("a device and an upload URL"));
        assert!(parse_capture_args(&[b"d", b"u", b"--fast"]).unwrap_err().contains("--fast"));
    }
}
