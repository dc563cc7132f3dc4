//! Tool-mode commands over the client: `imprint get` and `imprint put`, for rescue shells,
//! end-to-end tests and the benchmark.

use super::{Args, EXIT_USAGE};
use crate::http::response::{self, parse_length};
use crate::http::{Client, Options};
use crate::io::Read;
use crate::sys::fd::{write_all_raw, Fd, OpenFlags, STDOUT};

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Display;
use core::time::Duration;

/// The transfer failed (network, server, status).
pub const EXIT_FAILED: i32 = 1;
/// A local file could not be read or written (sysexits EX_IOERR).
pub const EXIT_IO: i32 = 74;

/// Copy buffer for downloads: large, so that a fast link costs few system calls.
const COPY_BUFFER: usize = 256 * 1024;

/// The options get and put share, taken out of `args`: the client they configure.
fn client(args: &mut Args<'_>) -> Result<Client, String> {
    let mut options = Options::default();
    for (i, name) in ["--connect-timeout", "--idle-timeout", "--retries"].into_iter().enumerate() {
        let Some(value) = args.value(name)? else { continue };
        let set = match i {
            0 => parse_seconds(value).map(|d| options.connect_timeout = d),
            1 => parse_seconds(value).map(|d| options.idle_timeout = d),
            _ => parse_length(value.as_bytes())
                .and_then(|n| n.try_into().ok())
                .map(|n| options.retries = n),
        };
        let wanted = if i < 2 { "seconds (e.g. 30 or 0.5)" } else { "a count" };
        let Some(()) = set else { return Err(text!("{name} takes {wanted}, not {value}")) };
    }
    Ok(Client::new(super::net::system_servers(), options))
}

/// Parses seconds as the tool's flags give them: "30", "0.5", "1.25" (millisecond
/// precision).
#[inline(never)]
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let mut parts = response::pieces(text.as_bytes(), b'.');
    let (whole, frac) = (parts.next()?, parts.next().unwrap_or(b""));
    // "1.25" is 125 hundredths: the digits without the dot, scaled to milliseconds.
    let scale = [1000, 100, 10, 1].get(frac.len()).filter(|_| parts.next().is_none())?;
    parse_length(&[whole, frac].concat())?.checked_mul(*scale).map(Duration::from_millis)
}

fn usage(why: String) -> i32 {
    errln!("imprint: {why}; see imprint --help");
    EXIT_USAGE
}

fn failed(error: crate::http::Error) -> i32 {
    errln!("imprint: {error}");
    EXIT_FAILED
}

fn io_failed(doing: &str, what: &str, why: &dyn Display) -> i32 {
    errln!("imprint: {doing} {what}: {why}");
    EXIT_IO
}

/// `imprint get <url> [-o FILE]`; Err: the exit status.
pub fn get(raw: &[&[u8]]) -> Result<(), i32> {
    let mut args = Args::new(raw).map_err(usage)?;
    let output = args.value("-o").map_err(usage)?;
    let mut client = client(&mut args).map_err(usage)?;
    let url = args.positional(1, "one URL").map_err(usage)?[0];
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let open = |path| Fd::open(path, flags, 0o644).map_err(|e| io_failed("opening", path, &e));
    let file = output.map(open).transpose()?;
    let out = file.as_ref().map_or(STDOUT, Fd::raw);
    let mut response = client.get(url).map_err(failed)?;
    let mut buf = alloc::vec![0u8; COPY_BUFFER];
    loop {
        let n = response.read(&mut buf).map_err(failed)?;
        if n == 0 {
            return Ok(());
        }
        write_all_raw(out, buf.get(..n).unwrap_or_default())
            .map_err(|e| io_failed("writing", output.unwrap_or("standard output"), &e))?;
    }
}

/// `imprint put <file|-> <url> [--chunked]`; Err: the exit status.
pub fn put(raw: &[&[u8]]) -> Result<(), i32> {
    let mut args = Args::new(raw).map_err(usage)?;
    let chunked = args.flag("--chunked");
    let mut client = client(&mut args).map_err(usage)?;
    let positional = args.positional(2, "a file (or -) and a URL").map_err(usage)?;
    let (path, url) = (positional[0], positional[1]);
    let (mut source, length) =
        super::image::open_source(path).map_err(|e| io_failed("opening", path, &e))?;
    let status = match length {
        _ if chunked => client.upload("PUT", url, &[], &mut source, None),
        Some(length) => client.upload("PUT", url, &[], &mut source, Some(length)),
        None => {
            // Content-Length needs the length first: standard input (or a device) is read
            // into memory.
            let (mut memory, mut chunk) = (Vec::new(), [0u8; 4096]);
            let what = if path == "-" { "standard input" } else { path };
            let mut read =
                |buf: &mut [u8]| source.read(buf).map_err(|e| io_failed("reading", what, &e));
            while let n @ 1.. = read(&mut chunk)? {
                memory.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            client.upload("PUT", url, &[], &mut memory.as_slice(), Some(memory.len() as u64))
        }
    };
    // As u32: u16 would bring its own copy of the integer formatting.
    sayln!("{}", u32::from(status.map_err(failed)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds("1.25"), Some(Duration::from_millis(1250)));
        assert_eq!(parse_seconds(".3"), Some(Duration::from_millis(300)));
        assert_eq!(parse_seconds("99999999999999999999"), None, "overflow");
        for bad in ["", ".", "1.2345", "-1", "1e3", "x", "1.2.3"] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
    }
}
