//! PID 1's own duties: the early filesystems, the console, the settings, the banner, and
//! the orderly end (sync, unmount, reboot or power off).

use crate::cmdline::{self, Settings};
use crate::rescue::Policy;
use crate::sys::fd::{self, Fd, OpenFlags};
use crate::sys::fs::{self, MS_NODEV, MS_NOEXEC, MS_NOSUID};
use crate::sys::{process, time, Errno};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// The filesystems every boot needs: (type, mount point, flags, options).
const EARLY_MOUNTS: [(&str, &str, u64, &str); 5] = [
    // The kernel does not mount devtmpfs for an initramfs, whatever DEVTMPFS_MOUNT says.
    ("devtmpfs", "/dev", MS_NOSUID, "mode=0755"),
    ("proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""),
    ("sysfs", "/sys", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""),
    ("tmpfs", "/run", MS_NOSUID | MS_NODEV, "mode=0755"),
    ("tmpfs", "/tmp", MS_NOSUID | MS_NODEV, "mode=1777"),
];

/// Mounts /dev, /proc, /sys, /run and /tmp. One already mounted (EBUSY) is fine; any
/// other failure is printed and the boot goes on: later steps say what they miss.
pub fn mount_early_filesystems() {
    for (fstype, target, flags, options) in EARLY_MOUNTS {
        let result = fs::make_dir(target, 0o755)
            .and_then(|_| fs::mount(fstype, target, fstype, flags, options));
        match result {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(e) => sayln!("imprint: warning: cannot mount {fstype} on {target}: {e}"),
        }
    }
}

/// Makes sure fds 0-2 are the console. The kernel opens /dev/console for init only if the
/// initramfs holds that node; otherwise they are closed and every message would be lost.
pub fn attach_console() {
    if (0..3).all(fd::is_open) {
        return;
    }
    // No devtmpfs either: make the node ourselves (character device 5:1; EEXIST is fine).
    let _ = fs::mknod_char("/dev/console", 0o600, 5, 1);
    if let Ok(console) = Fd::open("/dev/console", OpenFlags::READ_WRITE | OpenFlags::NO_CTTY, 0) {
        // It may itself be one of 0-2 (the lowest free number): it stays open for good.
        for n in (0..3).filter(|&n| !fd::is_open(n)) {
            let _ = console.duplicate_to(n);
        }
        core::mem::forget(console);
    }
}

/// Reads and parses /proc/cmdline. Problems come back beside the settings (which then hold
/// defaults where values were bad), so the banner can show both.
pub fn read_settings() -> (Settings, Vec<String>) {
    match fs::read_file("/proc/cmdline", 64 * 1024) {
        Ok(line) => cmdline::parse(&line),
        Err(errno) => (Settings::default(), alloc::vec![text!("reading /proc/cmdline: {errno}")]),
    }
}

/// The banner: who we are and every setting in force.
pub fn print_banner(s: &Settings, problems: &[String]) {
    let delay = s.on_error_delay.unwrap_or(crate::rescue::DEFAULT_DELAY);
    sayln!("\nimprint {} (PID 1): provisioning this machine", crate::VERSION);
    sayln!("  server    {}", s.url.as_deref().unwrap_or("(none: imprint.url= not given)"));
    sayln!("  ip        {}", s.ip.as_deref().unwrap_or("dhcp"));
    sayln!("  iface     {}", s.iface.as_deref().unwrap_or("(first link to get a lease)"));
    match s.on_error {
        Policy::Shell => sayln!("  on error  shell on the console, then reboot"),
        Policy::Reboot => sayln!("  on error  reboot after {delay} s"),
        Policy::Poweroff => sayln!("  on error  power off after {delay} s"),
    }
    for key in &s.unknown {
        sayln!("  note: unknown parameter {key} ignored");
    }
    for problem in problems {
        sayln!("  error: {problem}");
    }
}

/// The last thing PID 1 does: flush, unmount, then reboot or power off. If the kernel
/// refuses, wait forever: returning would panic the kernel.
pub fn shutdown(power_off: bool) -> ! {
    sayln!("imprint: {}", if power_off { "powering off" } else { "rebooting" });
    fs::sync();
    unmount_all();
    fs::sync();
    let errno = process::reboot(power_off);
    sayln!("imprint: the kernel refused to reboot: {errno}; halting here");
    loop {
        time::sleep(Duration::from_secs(3600));
    }
}

/// Unmounts everything in /proc/self/mounts, newest first, without allocating (this runs
/// on the panic path too). A busy mount (our console keeps /dev open) is detached lazily.
fn unmount_all() {
    let mut table = [0u8; 8192];
    let Ok(len) = fs::read_into("/proc/self/mounts", &mut table) else { return };
    for line in table.get(..len).unwrap_or_default().split(|&b| b == b'\n').rev() {
        let mut name = [0u8; 256];
        match mount_point(line, &mut name) {
            None | Some("/") => {}
            Some(target) => {
                if fs::umount(target, false).is_err() {
                    let _ = fs::umount(target, true);
                }
            }
        }
    }
}

/// The mount point (second field) of a /proc/mounts line, with the kernel's octal escapes
/// (`\040` for a space) decoded into `out`.
pub fn mount_point<'a>(line: &[u8], out: &'a mut [u8; 256]) -> Option<&'a str> {
    let mut rest = line.split(|&b| b == b' ').nth(1)?;
    let mut n = 0;
    while let Some((&b, tail)) = rest.split_first() {
        let octal = |d: &u8| (b'0'..=b'7').contains(d);
        (*out.get_mut(n)?, rest) = match tail {
            [x, y, z, tail @ ..] if b == b'\\' && [x, y, z].into_iter().all(octal) => {
                ((x - b'0') << 6 | (y - b'0') << 3 | (z - b'0'), tail)
            }
            _ => (b, tail),
        };
        n += 1;
    }
    core::str::from_utf8(out.get(..n)?).ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_decoded() {
        let mut buf = [0u8; 256];
        assert_eq!(mount_point(b"proc /proc proc rw 0 0", &mut buf), Some("/proc"));
        assert_eq!(mount_point(b"/dev/sda1 /mnt/a\\040b ext4 rw 0 0", &mut buf), Some("/mnt/a b"));
        assert_eq!(mount_point(b"", &mut buf), None);
        assert_eq!(mount_point(b"x", &mut buf), None);
        let long = [b"d /".as_slice(), &[b'a'; 300], b" t o 0 0"].concat();
        assert_eq!(
            mount_point(&long, &mut buf),
            None,
            "too long for the buffer is skipped, not truncated"
        );
    }
}
