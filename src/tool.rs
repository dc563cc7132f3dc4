//! Tool mode: the same binary run as a normal program (not PID 1), for rescue shells,
//! hosts and tests. Exit status 0 on success; otherwise a one-line reason on stderr.

use alloc::string::String;

pub const USAGE: &str = "\
usage: imprint <command> [arguments]

imprint is the /init of a provisioning initramfs. Run as PID 1 it boots, gets an address,
fetches this machine's plan and writes (or captures) its disk. Run as a program it offers:

  --help, -h       this text
  --version, -V    the version
  write <image> <device> [--sha256 HEX] [--no-sparse] [--size N]
                   write a gzip or raw image (a file, or - for standard input) onto a
                   block device or regular file: exclusive O_DIRECT, verified, first MiB
                   last; --sha256 checks the raw image, --size is its length in bytes,
                   --no-sparse writes zero blocks instead of zeroing them
  get <url> [-o FILE]
                   GET url (following redirects, retrying, resuming with Range);
                   the body goes to standard output or FILE
  put <file|-> <url> [--chunked]
                   PUT a file (or standard input) to url and print the status;
                   Content-Length unless --chunked (standard input without
                   --chunked is read into memory first)
    get and put take --connect-timeout SECONDS (default 10), --idle-timeout
    SECONDS (30: no byte moved for that long), --retries N (5); SECONDS may
    have a fraction (0.5). Host names need DNS, which this build lacks: use
    IPv4 addresses.

Kernel command line keys (PID 1): imprint.url= (or BOOTYURL=), ip=, imprint.iface=,
imprint.on_error=reboot|shell|poweroff, imprint.on_error_delay=<seconds>. See README.md.
";

/// Exit statuses, as sysexits(3) has them.
pub const EXIT_USAGE: i32 = 64;

/// Runs one tool-mode command; returns the exit status.
pub fn main(args: &[&[u8]]) -> i32 {
    let command = args.get(1).map(|a| String::from_utf8_lossy(a));
    match command.as_deref() {
        Some("--help" | "-h" | "help") => {
            say!("{USAGE}");
            0
        }
        Some("get") => crate::http::cli::get(&args[2..]),
        Some("put") => crate::http::cli::put(&args[2..]),
        Some("--version" | "-V") => {
            sayln!("imprint {}", crate::VERSION);
            0
        }
        Some("write") => crate::image::write_command(&args[2..]),
        None => {
            errln!("imprint: no command given (this is not PID 1); see imprint --help");
            EXIT_USAGE
        }
        Some(other) => {
            errln!("imprint: unknown command {other:?}; see imprint --help");
            EXIT_USAGE
        }
    }
}
