//! poll(2): waiting for descriptors with a timeout (no blind sleeps).

use super::{check, Errno, Result};
use core::time::Duration;

pub const READABLE: i16 = libc::POLLIN;
pub const WRITABLE: i16 = libc::POLLOUT;

/// One descriptor to wait on, laid out exactly as the kernel's `struct pollfd`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct PollFd(libc::pollfd);

impl PollFd {
    pub fn new(fd: libc::c_int, events: i16) -> PollFd {
        PollFd(libc::pollfd { fd, events, revents: 0 })
    }
}

/// Waits until one of `fds` is ready or `timeout` passes; returns how many are ready.
/// An interrupted wait returns 0 (the caller's loop re-checks its deadline).
pub fn poll(fds: &mut [PollFd], timeout: Duration) -> Result<usize> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: PollFd is repr(transparent) over pollfd, so the slice is a valid array of
    // fds.len() pollfd structs that the kernel may write revents into.
    let ret = unsafe { libc::poll(fds.as_mut_ptr().cast(), fds.len() as libc::nfds_t, ms) };
    match check(ret) {
        Ok(n) => Ok(n as usize),
        Err(Errno::EINTR) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Waits until `fd` is ready for `events`; ETIMEDOUT after `timeout`. Signals wake poll
/// early, so the wait resumes until the deadline.
pub fn wait(fd: libc::c_int, events: i16, timeout: Duration) -> Result<()> {
    let deadline = super::time::monotonic() + timeout;
    loop {
        let now = super::time::monotonic();
        if now >= deadline {
            return Err(Errno(libc::ETIMEDOUT));
        }
        // One descriptor: poll counts it when it is ready for `events` (or failed or hung
        // up, which the following read or write then reports).
        if poll(&mut [PollFd::new(fd, events)], deadline - now)? > 0 {
            return Ok(());
        }
    }
}
