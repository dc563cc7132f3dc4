//! The rescue path: where every error and every panic of PID 1 ends.
//!
//! It shows the failure framed so it stands out on a serial console, together with what
//! imprint was doing, then follows `imprint.on_error`: reboot or power off after a visible
//! countdown (Enter starts a shell instead, if the initramfs has one), or start a shell on
//! the console at once and reboot when it exits. It never returns: PID 1 exiting is a
//! kernel panic.

use crate::console::FixedBuf;
use crate::init;
use crate::sys::fd::{self, Fd, OpenFlags};
use crate::sys::poll::{self, PollFd};
use crate::sys::process::{self, ExitStatus, Forked, RebootCmd};
use crate::sys::{fs, time, tty};
use core::fmt::{self, Display, Write as _};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use core::time::Duration;

/// What to do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Reboot,
    Shell,
    Poweroff,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "reboot" => Some(Policy::Reboot),
            "shell" => Some(Policy::Shell),
            "poweroff" => Some(Policy::Poweroff),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::Reboot => "reboot",
            Policy::Shell => "shell",
            Policy::Poweroff => "poweroff",
        }
    }

    fn from_u8(v: u8) -> Policy {
        match v {
            1 => Policy::Shell,
            2 => Policy::Poweroff,
            _ => Policy::Reboot,
        }
    }
}

/// `imprint.on_error` and `imprint.on_error_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnError {
    pub policy: Policy,
    pub delay_secs: u32,
}

impl Default for OnError {
    fn default() -> Self {
        OnError { policy: Policy::Reboot, delay_secs: 30 }
    }
}

impl Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.policy {
            Policy::Shell => f.write_str("shell on the console, then reboot"),
            Policy::Reboot => write!(f, "reboot after {} s", self.delay_secs),
            Policy::Poweroff => write!(f, "power off after {} s", self.delay_secs),
        }
    }
}

/// The steps of a boot, so a failure (or a panic, which carries no context) can say what
/// imprint was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    Starting,
    ReadingSettings,
    Network,
    Plan,
    SelectingDisk,
    Writing,
    Capturing,
    Finishing,
}

impl Step {
    const ALL: [Step; 8] = [
        Step::Starting,
        Step::ReadingSettings,
        Step::Network,
        Step::Plan,
        Step::SelectingDisk,
        Step::Writing,
        Step::Capturing,
        Step::Finishing,
    ];

    pub fn doing(self) -> &'static str {
        match self {
            Step::Starting => "starting up",
            Step::ReadingSettings => "reading the settings",
            Step::Network => "bringing up the network",
            Step::Plan => "fetching the plan",
            Step::SelectingDisk => "selecting the disk",
            Step::Writing => "writing the image",
            Step::Capturing => "capturing the disk",
            Step::Finishing => "finishing the deployed system",
        }
    }
}

// The rescue path's state lives in statics because a panic arrives with nothing else: the
// panic handler cannot be handed the settings. imprint is single-threaded; atomics are
// just the safe way to have mutable statics.
static POLICY: AtomicU8 = AtomicU8::new(0);
static DELAY: AtomicU32 = AtomicU32::new(30);
static STEP: AtomicU8 = AtomicU8::new(0);
static RESCUING: AtomicBool = AtomicBool::new(false);

/// Sets the policy the rescue path follows (from the command line, later the plan).
pub fn configure(on_error: OnError) {
    POLICY.store(on_error.policy as u8, Ordering::Relaxed);
    DELAY.store(on_error.delay_secs, Ordering::Relaxed);
}

/// The policy in force.
pub fn configured() -> OnError {
    OnError {
        policy: Policy::from_u8(POLICY.load(Ordering::Relaxed)),
        delay_secs: DELAY.load(Ordering::Relaxed),
    }
}

/// Records the step the boot is in.
pub fn enter(step: Step) {
    STEP.store(step as u8, Ordering::Relaxed);
}

pub fn current_step() -> Step {
    Step::ALL[STEP.load(Ordering::Relaxed) as usize % Step::ALL.len()]
}

/// PID 1's answer to an error: show it, then follow the policy. Never returns.
pub fn fail(error: &dyn Display) -> ! {
    show_failure(current_step(), error);
    act()
}

/// The `#[panic_handler]` of the binary. Allocates nothing: the panic may be an
/// allocation failure.
pub fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if process::pid() != 1 {
        // Tool mode: a normal program's internal error, never the host's reboot.
        let mut msg = FixedBuf::<512>::new();
        let _ = write!(msg, "{}", info.message());
        errln!("imprint: internal error: {} ({})", msg.as_str(), Location(info));
        process::exit(70);
    }
    if RESCUING.swap(true, Ordering::Relaxed) {
        // A panic inside the rescue path itself: do the least that can still work.
        errln!("imprint: panic in the rescue path: {}", info.message());
        init::shutdown(RebootCmd::Restart);
    }
    let mut msg = FixedBuf::<512>::new();
    let _ = write!(msg, "panic: {} at {}", info.message(), Location(info));
    show_failure(current_step(), &msg.as_str());
    act()
}

struct Location<'a, 'b>(&'a core::panic::PanicInfo<'b>);

impl Display for Location<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.location() {
            Some(l) => write!(f, "{}:{}", l.file(), l.line()),
            None => f.write_str("unknown location"),
        }
    }
}

const RULE: &str = "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";

/// The failure, framed so it stands out among kernel messages on a serial console.
pub fn frame(out: &mut dyn fmt::Write, step: Step, error: &dyn Display) -> fmt::Result {
    write!(out, "\n{RULE}\n!! imprint FAILED while {}\n!! {}\n{RULE}\n", step.doing(), error)
}

fn show_failure(step: Step, error: &dyn Display) {
    RESCUING.store(true, Ordering::Relaxed);
    let _ = frame(&mut crate::console::stdout(), step, error);
}

const SHELL: &str = "/bin/sh";

fn act() -> ! {
    let policy = configured();
    let cmd = match policy.policy {
        Policy::Shell => {
            run_shell();
            RebootCmd::Restart
        }
        Policy::Reboot => RebootCmd::Restart,
        Policy::Poweroff => RebootCmd::PowerOff,
    };
    if policy.policy != Policy::Shell && countdown(cmd, policy.delay_secs) == Interrupted::ForShell
    {
        run_shell();
    }
    init::shutdown(cmd)
}

#[derive(PartialEq, Eq)]
enum Interrupted {
    No,
    ForShell,
}

/// Counts down on the console; Enter stops it and asks for a shell (when there is one).
fn countdown(cmd: RebootCmd, secs: u32) -> Interrupted {
    let verb = match cmd {
        RebootCmd::Restart => "rebooting",
        RebootCmd::PowerOff => "powering off",
    };
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
        loop {
            let now = time::monotonic();
            if now >= deadline {
                break;
            }
            if !listen {
                time::sleep(deadline - now);
                break;
            }
            let mut fds = [PollFd::new(fd::STDIN, poll::READABLE)];
            match poll::poll(&mut fds, deadline - now) {
                Ok(n) if n > 0 => match enter_pressed() {
                    Some(true) => {
                        sayln!();
                        return Interrupted::ForShell;
                    }
                    Some(false) => {}
                    // End of input or an error: stop listening, keep counting.
                    None => listen = false,
                },
                Ok(_) => {}
                Err(_) => listen = false,
            }
        }
    }
    if on_tty {
        sayln!();
    }
    Interrupted::No
}

/// Reads what is waiting on standard input: Some(true) if it holds a newline.
fn enter_pressed() -> Option<bool> {
    let mut buf = [0u8; 64];
    match fd::read_raw(fd::STDIN, &mut buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(buf[..n].iter().any(|&b| b == b'\n' || b == b'\r')),
    }
}

/// Runs /bin/sh on the active console and waits for it to exit.
pub fn run_shell() {
    if !fs::is_executable(SHELL) {
        sayln!("imprint: no {SHELL} in this initramfs (build it with SHELL_BINARY=...); cannot start a shell");
        return;
    }
    let mut console = FixedBuf::<64>::new();
    active_console(&mut console);
    sayln!("imprint: starting a shell on {}; exit it to reboot", console.as_str());
    match process::fork() {
        Ok(Forked::Child) => exec_shell(console.as_str()),
        Ok(Forked::Parent { child }) => wait_for(child),
        Err(e) => sayln!("imprint: cannot start a shell: fork: {e}"),
    }
}

/// The device of the console the kernel writes to: the last entry of
/// /sys/class/tty/console/active (e.g. "tty0 ttyS0" → /dev/ttyS0). /dev/console itself
/// cannot be a controlling terminal, so without this the shell has no job control.
fn active_console(out: &mut FixedBuf<64>) {
    let mut buf = [0u8; 128];
    let name = match fs::read_into("/sys/class/tty/console/active", &mut buf) {
        Ok(n) => last_word(&buf[..n]),
        Err(_) => None,
    };
    let _ = match name {
        Some(name) => write!(out, "/dev/{name}"),
        None => write!(out, "/dev/console"),
    };
}

/// The last white-space separated word of `text`, if it is a plausible device name.
pub fn last_word(text: &[u8]) -> Option<&str> {
    let word = text.split(|b| b.is_ascii_whitespace()).rfind(|w| !w.is_empty())?;
    let word = core::str::from_utf8(word).ok()?;
    let plausible =
        word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    plausible.then_some(word)
}

/// In the child: a new session, the console as controlling terminal and fds 0-2, exec.
fn exec_shell(console: &str) -> ! {
    let _ = process::new_session();
    if let Ok(tty) = Fd::open(console, OpenFlags::READ_WRITE, 0) {
        let _ = tty::take_controlling(&tty);
        for target in [fd::STDIN, fd::STDOUT, fd::STDERR] {
            let _ = tty.duplicate_to(target);
        }
    }
    let env = ["PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/", "TERM=linux"];
    let err = process::exec(SHELL, &["sh"], &env);
    errln!("imprint: cannot start {SHELL}: {err}");
    process::exit(127)
}

/// Waits for the shell, reaping any other child that ends meanwhile (PID 1 inherits
/// every orphan).
fn wait_for(shell: i32) {
    loop {
        match process::wait(-1) {
            Ok((pid, how)) if pid == shell => {
                match how {
                    ExitStatus::Exited(code) => sayln!("imprint: shell exited with status {code}"),
                    ExitStatus::Signaled(sig) => sayln!("imprint: shell killed by signal {sig}"),
                }
                return;
            }
            Ok(_) => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn frame_names_the_step_and_error() {
        let mut out = String::new();
        frame(&mut out, Step::Network, &"no carrier on eth0").unwrap();
        let lines: std::vec::Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], RULE);
        assert_eq!(lines[2], "!! imprint FAILED while bringing up the network");
        assert_eq!(lines[3], "!! no carrier on eth0");
        assert_eq!(lines[4], RULE);
    }

    #[test]
    fn policy_round_trips_through_the_statics() {
        for policy in [Policy::Shell, Policy::Poweroff, Policy::Reboot] {
            configure(OnError { policy, delay_secs: 7 });
            assert_eq!(configured(), OnError { policy, delay_secs: 7 });
            assert_eq!(Policy::parse(policy.name()), Some(policy));
        }
        enter(Step::Writing);
        assert_eq!(current_step(), Step::Writing);
        enter(Step::Starting);
    }

    #[test]
    fn active_console_is_the_last_entry() {
        assert_eq!(last_word(b"tty0 ttyS0\n"), Some("ttyS0"));
        assert_eq!(last_word(b"ttyS1\n"), Some("ttyS1"));
        assert_eq!(last_word(b"\n"), None);
        assert_eq!(last_word(b"tty0 ../x"), None);
    }
}
