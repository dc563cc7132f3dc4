//! The only `unsafe` in imprint: thin, typed wrappers over the C library and the kernel.
//!
//! Every function here returns `Result<_, Errno>` (or cannot fail), takes Rust types
//! (`&str`, slices, owned [`fd::Fd`]s) and keeps raw pointers inside. Each `unsafe` block
//! says why it is sound. Everything above this module is safe Rust.

pub mod alloc;
pub mod block;
pub mod cpu;
pub mod fd;
pub mod fs;
pub mod memcpy;
pub mod netdev;
pub mod packet;
pub mod poll;
pub mod process;
pub mod sha;
pub mod socket;
pub mod time;
pub mod tty;

use core::ffi::{c_char, CStr};
use core::fmt;

/// An error number from a failed system call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Errno(pub i32);

pub type Result<T> = core::result::Result<T, Errno>;

impl Errno {
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    pub const EINTR: Errno = Errno(libc::EINTR);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const ENAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);

    /// The calling thread's errno, read right after a call reported failure.
    pub fn last() -> Errno {
        // SAFETY: __errno_location returns a valid pointer to this thread's errno for the
        // whole life of the thread (musl and glibc both guarantee it).
        Errno(unsafe { *libc::__errno_location() })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // (As u32: errnos are positive, and i32 would bring its own copy of the formatting.)
        // SAFETY: strerror returns a pointer to a NUL-terminated static string for any
        // value (musl: "No error information" for unknown ones); we only read it, and
        // only the main thread calls strerror, so no other call can overwrite it meanwhile.
        let text = unsafe { CStr::from_ptr(libc::strerror(self.0)) };
        write!(f, "{} (errno {})", text.to_str().unwrap_or("error"), self.0 as u32)
    }
}

/// A value PID 1's code shares with its panic handler (the rescue path's policy and step),
/// which is handed nothing else: a `Cell` that may be a `static`.
pub struct Global<T>(pub core::cell::Cell<T>);

// SAFETY: the only threads besides the main one are a DirectRing's I/O threads (sys::block),
// which run nothing but the ring's system calls, so a Global is never touched by two threads
// at once. (Of the host's multi-threaded unit tests, only one touches the rescue path's
// Globals.)
unsafe impl<T> Sync for Global<T> {}

impl<T> core::ops::Deref for Global<T> {
    type Target = core::cell::Cell<T>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Turns a C return value into a `Result`: negative means failure with errno set.
fn check(ret: libc::c_int) -> Result<libc::c_int> {
    check_size(ret as libc::ssize_t).map(|n| n as libc::c_int)
}

fn check_size(ret: libc::ssize_t) -> Result<usize> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret as usize)
    }
}

/// Calls `f` again while it fails with EINTR.
fn retry<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => {}
            done => return done,
        }
    }
}

/// Calls `f` with `s` as a NUL-terminated C string (copied on the stack). Fails with
/// EINVAL if `s` holds a NUL (it would silently name a different file) and ENAMETOOLONG
/// past PATH_MAX.
fn with_cstr<R>(s: &str, f: impl FnOnce(*const c_char) -> R) -> Result<R> {
    let mut buf = [0u8; libc::PATH_MAX as usize];
    Ok(f(copy_cstr(s, &mut buf)?))
}

/// The work of `with_cstr`, compiled once rather than for each of its callers: `s` as a
/// NUL-terminated string in `buf`, which the pointer is valid as long as.
fn copy_cstr(s: &str, buf: &mut [u8; libc::PATH_MAX as usize]) -> Result<*const c_char> {
    let Some((room, [nul, ..])) = buf.split_at_mut_checked(s.len()) else {
        return Err(Errno::ENAMETOOLONG);
    };
    room.copy_from_slice(s.as_bytes());
    *nul = 0;
    (!s.as_bytes().contains(&0)).then_some(buf.as_ptr().cast()).ok_or(Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_displays_the_reason_and_number() {
        let text = std::format!("{}", Errno::ENOENT);
        assert!(text.contains("No such file"), "{text}");
        assert!(text.ends_with("(errno 2)"), "{text}");
    }

    #[test]
    fn cstr_rejects_interior_nul_and_handles_long_paths() {
        assert_eq!(with_cstr("a\0b", |_| ()), Err(Errno::EINVAL));
        let long = "x".repeat(1000);
        let len = with_cstr(&long, unsafe_free_strlen).unwrap();
        assert_eq!(len, 1000);
        let huge = "x".repeat(5000);
        assert_eq!(with_cstr(&huge, |_| ()), Err(Errno::ENAMETOOLONG));
    }

    fn unsafe_free_strlen(p: *const c_char) -> usize {
        // SAFETY: with_cstr hands out a valid NUL-terminated buffer for the call.
        unsafe { CStr::from_ptr(p) }.to_bytes().len()
    }
}
