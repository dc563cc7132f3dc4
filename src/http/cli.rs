//! Tool-mode commands over the client: `imprint get` and `imprint put`, for rescue shells,
//! end-to-end tests and the benchmark.

use super::response::parse_length;
use super::{parse_seconds, Client, Options};
use crate::io::Read;
use crate::sys::fd::{write_all_raw, Fd, OpenFlags, STDOUT};
use crate::tool::{Args, EXIT_USAGE};

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

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
                .and_then(|n| u32::try_from(n).ok())
                .map(|n| options.retries = n),
        };
        if set.is_none() {
            let wanted = if i < 2 { "seconds (e.g. 30 or 0.5)" } else { "a count" };
            return Err(text!("{name} takes {wanted}, not {value}"));
        }
    }
    Ok(Client::new(crate::provision::tool_dns(), options))
}

/// `imprint get <url> [-o FILE]`.
pub fn get(raw: &[&[u8]]) -> i32 {
    let parsed = Args::new(raw).and_then(|mut args| {
        let output = args.value("-o")?;
        let client = client(&mut args)?;
        Ok((client, output, args.positional(1, "one URL")?[0]))
    });
    let (mut client, output, url) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => return usage(&why),
    };
    let mut file = None;
    if let Some(path) = output {
        match Fd::open(path, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, 0o644) {
            Ok(fd) => file = Some(fd),
            Err(e) => return io_failed("opening", path, &e),
        }
    }
    let out = file.as_ref().map_or(STDOUT, Fd::raw);
    let mut response = match client.get(url) {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        match response.read(&mut buf) {
            Ok(0) => return 0,
            Ok(n) => {
                if let Err(e) = write_all_raw(out, &buf[..n]) {
                    return io_failed("writing", output.unwrap_or("standard output"), &e);
                }
            }
            Err(e) => return failed(&e),
        }
    }
}

/// `imprint put <file|-> <url> [--chunked]`.
pub fn put(raw: &[&[u8]]) -> i32 {
    let parsed = Args::new(raw).and_then(|mut args| {
        let chunked = args.flag("--chunked");
        let client = client(&mut args)?;
        let positional = args.positional(2, "a file (or -) and a URL")?;
        Ok((client, chunked, positional[0], positional[1]))
    });
    let (mut client, chunked, path, url) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => return usage(&why),
    };
    let (mut source, mut length) = match crate::image::open_source(path) {
        Ok(opened) => opened,
        Err(e) => return io_failed("opening", path, &e),
    };
    let mut memory = Vec::new();
    if chunked {
        length = None;
    } else if length.is_none() {
        // Content-Length needs the length first: standard input is read into memory.
        let mut chunk = [0u8; 4096];
        loop {
            match source.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => memory.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    return io_failed(
                        "reading",
                        if path == "-" { "standard input" } else { path },
                        &e,
                    )
                }
            }
        }
        length = Some(memory.len() as u64);
    }
    let response = match memory.is_empty() {
        true => client.upload("PUT", url, &[], &mut source, length),
        false => client.upload("PUT", url, &[], &mut memory.as_slice(), length),
    };
    match response {
        Ok(status) => {
            // As u32: u16 would bring its own copy of the integer formatting.
            sayln!("{}", u32::from(status));
            0
        }
        Err(e) => failed(&e),
    }
}

fn usage(why: &str) -> i32 {
    errln!("imprint: {why}; see imprint --help");
    EXIT_USAGE
}

fn failed(error: &super::Error) -> i32 {
    errln!("imprint: {error}");
    EXIT_FAILED
}

fn io_failed(doing: &str, what: &str, why: &dyn core::fmt::Display) -> i32 {
    errln!("imprint: {doing} {what}: {why}");
    EXIT_IO
}
