//! Tool-mode commands over the client: `imprint get` and `imprint put`, for rescue shells,
//! end-to-end tests and the benchmark.

use super::{parse_seconds, Client, NoDns, Options};
use crate::io::Read;
use crate::sys::fd::{read_raw, write_all_raw, Fd, OpenFlags, STDIN, STDOUT};
use crate::sys::fs::file_size;
use crate::sys::Errno;
use crate::tool::EXIT_USAGE;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// The transfer failed (network, server, status).
pub const EXIT_FAILED: i32 = 1;
/// A local file could not be read or written (sysexits EX_IOERR).
pub const EXIT_IO: i32 = 74;

/// Copy buffer for downloads: large, so that a fast link costs few system calls.
const COPY_BUFFER: usize = 256 * 1024;

/// Options shared by get and put, and the positional arguments left over.
struct Parsed<'a> {
    options: Options,
    output: Option<&'a str>,
    chunked: bool,
    positional: Vec<&'a str>,
}

fn parse<'a>(command: &str, args: &[&'a [u8]]) -> Result<Parsed<'a>, String> {
    let mut parsed = Parsed { options: Options::default(), output: None, chunked: false, positional: Vec::new() };
    let utf8 = |a: &'a [u8]| core::str::from_utf8(a).map_err(|_| String::from("arguments must be UTF-8"));
    let mut i = 0;
    while i < args.len() {
        let arg = utf8(args[i])?;
        i += 1;
        let takes_value =
            matches!(arg, "--connect-timeout" | "--idle-timeout" | "--retries") || arg == "-o" && command == "get";
        if takes_value {
            let value = utf8(args.get(i).ok_or_else(|| text!("{arg} needs a value"))?)?;
            i += 1;
            let seconds = || parse_seconds(value).ok_or_else(|| text!("{arg} takes seconds (e.g. 30 or 0.5), not {value}"));
            match arg {
                "--connect-timeout" => parsed.options.connect_timeout = seconds()?,
                "--idle-timeout" => parsed.options.idle_timeout = seconds()?,
                "--retries" => {
                    parsed.options.retries = value.parse().map_err(|_| text!("--retries takes a count, not {value}"))?
                }
                _ => parsed.output = Some(value),
            }
        } else if arg == "--chunked" && command == "put" {
            parsed.chunked = true;
        } else if arg.starts_with('-') && arg.len() > 1 {
            return Err(text!("unknown option {arg} for {command}"));
        } else {
            parsed.positional.push(arg);
        }
    }
    Ok(parsed)
}

/// `imprint get <url> [-o FILE]`.
pub fn get(args: &[&[u8]]) -> i32 {
    let parsed = match parse("get", args) {
        Ok(p) if p.positional.len() == 1 => p,
        Ok(_) => return usage("get takes one URL"),
        Err(why) => return usage(&why),
    };
    let out = match parsed.output {
        Some(path) => match Fd::open(path, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, 0o644) {
            Ok(fd) => Some(fd),
            Err(e) => return fail(EXIT_IO, format_args!("opening {path}: {e}")),
        },
        None => None,
    };
    let mut client = Client::new(Box::new(NoDns), parsed.options);
    let mut response = match client.get(parsed.positional[0]) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_FAILED, format_args!("{e}")),
    };
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(e) => return fail(EXIT_FAILED, format_args!("{e}")),
        };
        let written = match &out {
            Some(fd) => fd.write_all(&buf[..n]),
            None => write_all_raw(STDOUT, &buf[..n]),
        };
        if let Err(e) = written {
            return fail(EXIT_IO, format_args!("writing {}: {e}", parsed.output.unwrap_or("standard output")));
        }
    }
}

/// `imprint put <file|-> <url> [--chunked]`.
pub fn put(args: &[&[u8]]) -> i32 {
    let parsed = match parse("put", args) {
        Ok(p) if p.positional.len() == 2 => p,
        Ok(_) => return usage("put takes a file (or -) and a URL"),
        Err(why) => return usage(&why),
    };
    let (path, url) = (parsed.positional[0], parsed.positional[1]);
    let (mut source, length) = if path == "-" {
        if parsed.chunked {
            (Source::Stdin, None)
        } else {
            // Content-Length needs the length first: standard input is read into memory.
            let mut all = Vec::new();
            if let Err(e) = read_to_end(&mut Source::Stdin, &mut all) {
                return fail(EXIT_IO, format_args!("reading standard input: {e}"));
            }
            let length = all.len() as u64;
            (Source::Memory(all, 0), Some(length))
        }
    } else {
        let fd = match Fd::open(path, OpenFlags::READ, 0) {
            Ok(fd) => fd,
            Err(e) => return fail(EXIT_IO, format_args!("opening {path}: {e}")),
        };
        let length = match (parsed.chunked, file_size(&fd)) {
            (true, _) => None,
            (false, Ok(n)) => Some(n),
            (false, Err(e)) => return fail(EXIT_IO, format_args!("reading the size of {path}: {e}")),
        };
        (Source::File(fd), length)
    };
    let mut client = Client::new(Box::new(NoDns), parsed.options);
    let result = client.upload("PUT", url, &[], &mut source, length).map(|r| r.status());
    match result {
        Ok(status) => {
            sayln!("{status}");
            0
        }
        Err(e) => fail(EXIT_FAILED, format_args!("{e}")),
    }
}

fn usage(why: &str) -> i32 {
    errln!("imprint: {why}; see imprint --help");
    EXIT_USAGE
}

fn fail(code: i32, why: core::fmt::Arguments<'_>) -> i32 {
    errln!("imprint: {why}");
    code
}

fn read_to_end<R: Read>(source: &mut R, out: &mut Vec<u8>) -> Result<(), R::Error> {
    let mut chunk = [0u8; 4096];
    loop {
        match source.read(&mut chunk)? {
            0 => return Ok(()),
            n => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What `put` sends: one type, so the upload code is compiled once.
enum Source {
    Stdin,
    File(Fd),
    Memory(Vec<u8>, usize),
}

impl Read for Source {
    type Error = Errno;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            Source::Stdin => read_raw(STDIN, buf),
            Source::File(fd) => fd.read(buf),
            Source::Memory(data, at) => {
                let n = (data.len() - *at).min(buf.len());
                buf[..n].copy_from_slice(&data[*at..*at + n]);
                *at += n;
                Ok(n)
            }
        }
    }
}
