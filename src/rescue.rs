//! The rescue path: where every error and every panic of PID 1 ends.
//!
//! It shows the failure framed so it stands out on a serial console, together with what
//! imprint was doing, then follows `imprint.on_error`: reboot or power off after a visible
//! countdown (Enter starts a shell instead, if the initramfs has one), or start a shell on
//! the console at once and reboot when it exits. It never returns: PID 1 exiting is a
//! kernel panic.

use crate::init;
use crate::sys::fd::{self, Fd, OpenFlags};
use crate::sys::poll::{self, PollFd};
use crate::sys::{fs, process, time, tty, Global};
use core::cell::Cell;
use core::fmt::Display;
use core::time::Duration;

/// What to do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    Reboot,
    Shell,
    Poweroff,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        use Policy::*;
        let all = [("reboot", Reboot), ("shell", Shell), ("poweroff", Poweroff)];
        all.into_iter().find(|p| p.0 == s).map(|p| p.1)
    }
}

// The rescue path's state lives in statics because a panic arrives with nothing else: the
// panic handler cannot be handed the settings.
/// Seconds of the countdown unless `imprint.on_error_delay=` says otherwise.
pub const DEFAULT_DELAY: u32 = 30;
/// The policy and the countdown's seconds.
static SETTINGS: Global<(Policy, u32)> = Global(Cell::new((Policy::Reboot, DEFAULT_DELAY)));
/// What the boot is doing, so a failure (or a panic, which carries no context) can say it.
static DOING: Global<&str> = Global(Cell::new("starting up"));
static RESCUING: Global<bool> = Global(Cell::new(false));

/// Sets the policy the rescue path follows (from the command line, later the plan), and
/// the countdown's seconds when given.
pub fn configure(policy: Policy, delay_secs: Option<u32>) {
    SETTINGS.set((policy, delay_secs.unwrap_or(SETTINGS.get().1)));
}

/// Records what the boot is doing, as a failure says it: "FAILED while {doing}".
pub fn enter(doing: &'static str) {
    DOING.set(doing);
}

/// PID 1's answer to an error: show it, then follow the policy. Never returns.
pub fn fail(error: &dyn Display) -> ! {
    RESCUING.set(true);
    // Framed so it stands out among kernel messages on a serial console.
    say!("\n{RULE}\n!! imprint FAILED while {}\n!! {error}\n{RULE}\n", DOING.get());
    let (policy, delay) = SETTINGS.get();
    let power_off = policy == Policy::Poweroff;
    if policy == Policy::Shell || countdown(power_off, delay) {
        run_shell();
    }
    init::shutdown(power_off)
}

/// The `#[panic_handler]` of the binary. Allocates nothing: the panic may be an
/// allocation failure.
pub fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    if process::pid() != 1 {
        // Tool mode: a normal program's internal error, never the host's reboot.
        errln!("imprint: internal error: {} ({file}:{line})", info.message());
        process::exit(70);
    }
    if RESCUING.get() {
        // A panic inside the rescue path itself: do the least that can still work.
        errln!("imprint: panic in the rescue path: {}", info.message());
        init::shutdown(false);
    }
    fail(&format_args!("panic: {} at {file}:{line}", info.message()))
}

const RULE: &str = "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";

const SHELL: &str = "/bin/sh";

/// Counts down on the console; whether Enter stopped it to ask for a shell (when there
/// is one).
fn countdown(power_off: bool, secs: u32) -> bool {
    let verb = if power_off { "powering off" } else { "rebooting" };
    let has_shell = fs::is_executable(SHELL);
    let hint = if has_shell { " (press Enter for a shell)" } else { "" };
    let on_tty = tty::is_tty(fd::STDOUT);
    let mut listen = has_shell && tty::is_tty(fd::STDIN);
    for left in (1..=secs).rev() {
        if on_tty {
            say!("\rimprint: {verb} in {left:>3} s{hint} ");
        } else if left == secs || left % 10 == 0 {
            sayln!("imprint: {verb} in {left} s{hint}");
        }
        let deadline = time::monotonic() + Duration::from_secs(1);
        while let Some(wait) = deadline.checked_sub(time::monotonic()) {
            // Not listening, it polls nothing: a sleep.
            let mut fds = [PollFd::new(fd::STDIN, poll::READABLE)];
            let mut buf = [0u8; 64];
            let n = match poll::poll(&mut fds[..listen as usize], wait) {
                Ok(0) => continue,
                ready => ready.and_then(|_| fd::read_raw(fd::STDIN, &mut buf)).unwrap_or(0),
            };
            // End of input or an error: stop listening, keep counting.
            listen &= n > 0;
            if buf.iter().take(n).any(|&b| b == b'\n' || b == b'\r') {
                sayln!("");
                return true;
            }
        }
    }
    say!("{}", if on_tty { "\n" } else { "" });
    false
}

/// Runs /bin/sh on the active console and waits for it to exit.
pub fn run_shell() {
    if !fs::is_executable(SHELL) {
        sayln!("imprint: no {SHELL} in this initramfs (build it with SHELL_BINARY=...); cannot start a shell");
        return;
    }
    // The console the kernel writes to: the last entry of /sys/class/tty/console/active
    // (e.g. "tty0 ttyS0"). /dev/console itself cannot be a controlling terminal, so
    // without this the shell has no job control.
    let active = fs::read_file("/sys/class/tty/console/active", 4096).unwrap_or_default();
    let console = text!("/dev/{}", last_word(&active).unwrap_or("console"));
    sayln!("imprint: starting a shell on {console}; exit it to reboot");
    match process::fork() {
        Ok(0) => exec_shell(&console),
        Ok(child) => wait_for(child),
        Err(e) => sayln!("imprint: cannot start a shell: fork: {e}"),
    }
}

/// The last white-space separated word of `text`, if it is a plausible device name.
pub fn last_word(text: &[u8]) -> Option<&str> {
    let word = text.split(|b| b.is_ascii_whitespace()).rfind(|w| !w.is_empty())?;
    let plausible = |b: &u8| b.is_ascii_alphanumeric() || b"._-".contains(b);
    core::str::from_utf8(word).ok().filter(|_| word.iter().all(plausible))
}

/// In the child: a new session, the console as controlling terminal and fds 0-2, exec.
fn exec_shell(console: &str) -> ! {
    let _ = process::new_session();
    if let Ok(tty) = Fd::open(console, OpenFlags::READ_WRITE, 0) {
        let _ = tty::take_controlling(&tty);
        for target in 0..3 {
            let _ = tty.duplicate_to(target);
        }
    }
    let env = [c"PATH=/bin:/sbin:/usr/bin:/usr/sbin", c"HOME=/", c"TERM=linux"];
    let err = process::exec(c"/bin/sh", &[c"sh"], &env);
    errln!("imprint: cannot start {SHELL}: {err}");
    process::exit(127)
}

/// Waits for the shell, reaping any other child that ends meanwhile (PID 1 inherits
/// every orphan).
fn wait_for(shell: i32) {
    while let Ok((pid, how)) = process::wait_any() {
        match how {
            _ if pid != shell => {}
            Ok(code) => return sayln!("imprint: shell exited with status {}", code as u32),
            Err(signal) => return sayln!("imprint: shell killed by signal {}", signal as u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_round_trips_through_the_statics() {
        for (name, policy) in
            [("shell", Policy::Shell), ("poweroff", Policy::Poweroff), ("reboot", Policy::Reboot)]
        {
            assert_eq!(Policy::parse(name), Some(policy));
            configure(policy, Some(7));
            assert_eq!(SETTINGS.get(), (policy, 7));
        }
        configure(Policy::Shell, None);
        assert_eq!(SETTINGS.get(), (Policy::Shell, 7));
        assert_eq!(Policy::parse("halt"), None);
        configure(Policy::Reboot, Some(30));
    }

    #[test]
    fn active_console_is_the_last_entry() {
        assert_eq!(last_word(b"tty0 ttyS0\n"), Some("ttyS0"));
        assert_eq!(last_word(b"ttyS1\n"), Some("ttyS1"));
        assert_eq!(last_word(b"\n"), None);
        assert_eq!(last_word(b"tty0 ../x"), None);
    }
}
