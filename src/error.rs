//! The errors a boot can end with. Each displays as one line that says what was being
//! done and what went wrong; the rescue path adds which step of the boot it was.

use crate::cmdline::CmdlineError;
use crate::net::NetError;
use crate::provision::RunError;
use crate::sys::Errno;
use core::fmt;

#[derive(Debug)]
pub enum Error {
    /// A system call failed; `doing` says what for ("mounting /proc").
    Sys { doing: &'static str, errno: Errno },
    /// A kernel command-line parameter imprint knows has a value it cannot use.
    Cmdline(CmdlineError),
    /// Neither `imprint.url=` nor `BOOTYURL=` is on the kernel command line.
    NoServer,
    /// The settings ask for something this build of imprint cannot do yet.
    Unsupported(&'static str),
    /// Bringing up the network failed (links, carrier, DHCP, addresses, routes).
    Network(NetError),
    /// The plan, the disk or the action failed.
    Run(RunError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys { doing, errno } => write!(f, "{doing}: {errno}"),
            Error::Cmdline(e) => e.fmt(f),
            Error::NoServer => f.write_str(
                "no server configured: add imprint.url=http://<server>/<path> (or BOOTYURL=) to the kernel command line",
            ),
            Error::Unsupported(what) => write!(f, "{what} is not supported by this build of imprint"),
            Error::Network(e) => e.fmt(f),
            Error::Run(e) => e.fmt(f),
        }
    }
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Error {
        Error::Run(e)
    }
}

impl From<NetError> for Error {
    fn from(e: NetError) -> Error {
        Error::Network(e)
    }
}

impl From<CmdlineError> for Error {
    fn from(e: CmdlineError) -> Error {
        Error::Cmdline(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn errors_are_one_line() {
        let all = [
            Error::Sys { doing: "mounting /proc", errno: Errno::ENOENT },
            Error::NoServer,
            Error::Unsupported("network bring-up"),
            Error::Cmdline(CmdlineError { key: "ip".into(), value: "".into(), expected: "dhcp" }),
            Error::Network(NetError::NoLinks),
            Error::Network(NetError::NoCarrier { links: "eth0, eth1".into(), waited_secs: 60 }),
            Error::Network(NetError::Dhcp(crate::net::DhcpError::NoLease {
                links: "eth0".into(),
                waited_secs: 60,
                replies: 4,
                naks: 2,
                ignored: 2,
            })),
        ];
        for e in all {
            let text = e.to_string();
            assert!(!text.contains('\n') && !text.is_empty(), "{text}");
        }
        assert_eq!(
            Error::Sys { doing: "mounting /proc", errno: Errno::ENOENT }.to_string(),
            "mounting /proc: No such file or directory (errno 2)"
        );
    }
}
