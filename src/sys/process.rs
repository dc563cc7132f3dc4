//! Processes: our pid, fork, exec, wait, sessions, exit, reboot.

use super::{check, with_cstr, Errno, Result};
use alloc::vec::Vec;

pub fn pid() -> i32 {
    // SAFETY: getpid cannot fail and takes no pointers.
    unsafe { libc::getpid() }
}

/// Which side of a fork we are on.
pub enum Forked {
    Child,
    Parent { child: i32 },
}

/// fork(2). imprint is single-threaded, so the child may do anything the parent could.
pub fn fork() -> Result<Forked> {
    // SAFETY: no other threads exist, so no lock can be held by a thread that vanishes in
    // the child; the child only calls async-signal-safe wrappers before exec.
    match check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent { child }),
    }
}

/// Replaces this process with `path`; returns only on failure.
pub fn exec(path: &str, argv: &[&str], envp: &[&str]) -> Errno {
    // Build NUL-terminated copies and the two NULL-terminated pointer arrays.
    let own = |items: &[&str]| -> Option<Vec<Vec<u8>>> {
        items
            .iter()
            .map(|s| {
                if s.as_bytes().contains(&0) {
                    return None;
                }
                let mut v = Vec::with_capacity(s.len() + 1);
                v.extend_from_slice(s.as_bytes());
                v.push(0);
                Some(v)
            })
            .collect()
    };
    let (Some(args), Some(envs)) = (own(argv), own(envp)) else {
        return Errno::EINVAL;
    };
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
    arg_ptrs.push(core::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = envs.iter().map(|e| e.as_ptr().cast()).collect();
    env_ptrs.push(core::ptr::null());
    // SAFETY: path, every argv/envp string and both pointer arrays are NUL-terminated and
    // NULL-terminated respectively, and stay alive (owned above) until execve returns.
    match with_cstr(path, |p| unsafe { libc::execve(p, arg_ptrs.as_ptr(), env_ptrs.as_ptr()) }) {
        Ok(_) => Errno::last(),
        Err(e) => e,
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

/// Waits for `pid` (or any child with -1); returns which one ended and how.
pub fn wait(pid: i32) -> Result<(i32, ExitStatus)> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: status is a valid writable c_int for the duration of the call.
        match check(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Ok(who) => {
                let how = if libc::WIFEXITED(status) {
                    ExitStatus::Exited(libc::WEXITSTATUS(status))
                } else {
                    ExitStatus::Signaled(libc::WTERMSIG(status))
                };
                return Ok((who, how));
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Starts a new session (so the child can take a controlling terminal).
pub fn new_session() -> Result<()> {
    // SAFETY: setsid takes no arguments.
    check(unsafe { libc::setsid() }).map(|_| ())
}

/// Ends this process at once (no destructors, no atexit): for children after a failed exec
/// and for tool mode's exit status.
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
