//! Processes: our pid, fork, exec, wait, sessions, exit, reboot.

use super::{check, retry, Errno, Result};
use alloc::vec::Vec;
use core::ffi::CStr;

pub fn pid() -> i32 {
    // SAFETY: getpid cannot fail and takes no pointers.
    unsafe { libc::getpid() }
}

/// fork(2): 0 in the child, the child's pid in the parent. imprint is single-threaded, so
/// the child may do anything the parent could.
pub fn fork() -> Result<i32> {
    // SAFETY: no other threads exist, so no lock can be held by a thread that vanishes in
    // the child; the child only calls async-signal-safe wrappers before exec.
    check(unsafe { libc::fork() })
}

/// Replaces this process with `path`; returns only on failure.
pub fn exec(path: &CStr, argv: &[&CStr], envp: &[&CStr]) -> Errno {
    // Collected then pushed: a chained iterator's collect costs more code.
    let pointers = |items: &[&CStr]| {
        let mut v: Vec<*const libc::c_char> = items.iter().map(|s| s.as_ptr()).collect();
        v.push(core::ptr::null());
        v
    };
    let (args, envs) = (pointers(argv), pointers(envp));
    // SAFETY: path and every argv/envp string are NUL-terminated CStrs, and both pointer
    // arrays NULL-terminated; all stay alive until execve returns.
    unsafe { libc::execve(path.as_ptr(), args.as_ptr(), envs.as_ptr()) };
    Errno::last()
}

/// Waits for any child; returns which one ended and how: `Ok(exit status)` or
/// `Err(signal)`.
pub fn wait_any() -> Result<(i32, core::result::Result<i32, i32>)> {
    let mut status: libc::c_int = 0;
    // SAFETY: status is a valid writable c_int for the duration of each call.
    let pid = retry(|| check(unsafe { libc::waitpid(-1, &mut status, 0) }))?;
    let exited = libc::WIFEXITED(status);
    Ok((pid, if exited { Ok(libc::WEXITSTATUS(status)) } else { Err(libc::WTERMSIG(status)) }))
}

/// Starts a new session (so the child can take a controlling terminal).
pub fn new_session() -> Result<()> {
    // SAFETY: setsid takes no arguments.
    check(unsafe { libc::setsid() }).map(|_| ())
}

/// Ends this process at once (no destructors, no atexit): for children after a failed exec
/// and for a panic in tool mode.
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and takes an integer.
    unsafe { libc::_exit(code) }
}

/// reboot(2): restart, or power off. Returns only on failure (not PID 1 / no CAP_SYS_BOOT).
pub fn reboot(power_off: bool) -> Errno {
    let how = if power_off { libc::RB_POWER_OFF } else { libc::RB_AUTOBOOT };
    // SAFETY: reboot takes an integer command; the caller synced and unmounted first.
    unsafe { libc::reboot(how) };
    Errno::last()
}
