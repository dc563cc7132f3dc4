//! Tool mode: the same binary run as a normal program (not PID 1), for rescue shells,
//! hosts and tests. Exit status 0 on success; otherwise a one-line reason on stderr.

use alloc::string::String;

pub const USAGE: &str = "\
usage: imprint <command> [arguments]

imprint is the /init of a provisioning initramfs. Run as PID 1 it boots, gets an address,
fetches this machine's plan and writes (or captures) its disk. Run as a program it offers:

  --help, -h       this text
  --version, -V    the version
  dhcp [<iface>] [--release] [--timeout S] [--hold S]
                   get a DHCP lease on <iface> (a name or MAC; default: every
                   Ethernet link at once, the first lease wins), apply it (address,
                   netmask, MTU, routes) and print it; --timeout bounds the wait
                   (default 60 s), --hold keeps and renews the lease for S seconds,
                   --release gives it back before exiting

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
        Some("--version" | "-V") => {
            sayln!("imprint {}", crate::VERSION);
            0
        }
        Some("dhcp") => crate::net::dhcp_command(&args[2..]),
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
