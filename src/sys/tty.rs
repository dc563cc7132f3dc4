//! Terminals: is this a tty, and taking one as the controlling terminal.

use super::fd::Fd;
use super::{check, Result};

pub fn is_tty(fd: libc::c_int) -> bool {
    // SAFETY: isatty takes an integer; it returns 0 for anything that is not a terminal.
    unsafe { libc::isatty(fd) == 1 }
}

/// Makes `tty` the controlling terminal of this (new) session, so the shell gets job
/// control and Ctrl-C. Requires a session leader without a terminal.
pub fn take_controlling(tty: &Fd) -> Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal from another session).
    check(unsafe { libc::ioctl(tty.raw(), libc::TIOCSCTTY as _, 0) }).map(|_| ())
}
