//! QEMU end-to-end: our kernel boots our initramfs; imprint runs as PID 1, and every way a
//! boot can fail ends in the rescue path, never in a kernel panic.

use imprint_e2e::{Boot, Guest};
use std::time::Duration;

const RELEASE: &str = "build/initramfs.cpio.gz";
const WITH_SHELL: &str = "build/test/initramfs-shell.cpio.gz";
const WITH_FAULTS: &str = "build/test/initramfs-faults.cpio.gz";
const BOOT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(20);

fn assert_no_kernel_panic(guest: &Guest) {
    let t = guest.transcript();
    assert!(!t.contains("Kernel panic"), "the kernel panicked:\n{t}");
    assert!(!t.contains("Attempted to kill init"), "PID 1 exited:\n{t}");
}

#[test]
#[ignore = "needs QEMU and the build artifacts: run `make test`"]
fn no_server_shows_banner_error_countdown_then_reboots() {
    let mut guest = Guest::boot(Boot::new(RELEASE, "imprint.on_error_delay=2"));
    let at = guest.expect("imprint 0.1.0 (PID 1)", BOOT);
    let at = guest.expect_from(at, "on error  reboot after 2 s", STEP);
    let at = guest.expect_from(at, "!! imprint FAILED while", STEP);
    let at = guest.expect_from(at, "!! no server configured: add imprint.url=", STEP);
    let at = guest.expect_from(at, "rebooting in   2 s", STEP);
    let at = guest.expect_from(at, "rebooting in   1 s", STEP);
    guest.expect_from(at, "imprint: rebooting\r\n", STEP);
    let status = guest.wait_exit(STEP);
    assert!(status.success(), "QEMU ended with {status}");
    assert_no_kernel_panic(&guest);
}

#[test]
#[ignore = "needs QEMU and the build artifacts: run `make test`"]
fn shell_policy_gives_a_shell_with_job_control_then_reboots() {
    let mut guest = Guest::boot(Boot::new(WITH_SHELL, "imprint.on_error=shell"));
    let at = guest.expect("on error  shell on the console, then reboot", BOOT);
    let at = guest.expect_from(at, "imprint: starting a shell on /dev/ttyS0", STEP);
    guest.send("echo imprint-$((6*7))-ok; echo pid1=$(cat /proc/1/comm)\n");
    let at = guest.expect_from(at, "imprint-42-ok", STEP);
    let at = guest.expect_from(at, "pid1=init", STEP);
    guest.send("exit\n");
    let at = guest.expect_from(at, "imprint: shell exited with status 0", STEP);
    guest.expect_from(at, "imprint: rebooting", STEP);
    assert!(guest.wait_exit(STEP).success());
    // TIOCSCTTY worked: busybox sh complains when it has no controlling terminal.
    assert!(!guest.transcript().contains("job control turned off"), "{}", guest.transcript());
    assert_no_kernel_panic(&guest);
}

#[test]
#[ignore = "needs QEMU and the build artifacts: run `make test`"]
fn enter_during_the_countdown_starts_a_shell() {
    let mut guest = Guest::boot(Boot::new(WITH_SHELL, "imprint.on_error_delay=60"));
    let at = guest.expect("(press Enter for a shell)", BOOT);
    guest.send("\n");
    let at = guest.expect_from(at, "imprint: starting a shell on /dev/ttyS0", STEP);
    guest.send("exit 3\n");
    let at = guest.expect_from(at, "imprint: shell exited with status 3", STEP);
    guest.expect_from(at, "imprint: rebooting", STEP);
    assert!(guest.wait_exit(STEP).success());
    assert_no_kernel_panic(&guest);
}

#[test]
#[ignore = "needs QEMU and the build artifacts: run `make test`"]
fn a_panic_reaches_the_rescue_path() {
    let mut guest = Guest::boot(Boot::new(WITH_FAULTS, "imprint.fault=panic imprint.on_error_delay=1"));
    let at = guest.expect("!! imprint FAILED while", BOOT);
    let at = guest.expect_from(at, "!! panic: fault injected by imprint.fault=panic at src/main.rs:", STEP);
    guest.expect_from(at, "imprint: rebooting", STEP);
    assert!(guest.wait_exit(STEP).success());
    assert_no_kernel_panic(&guest);
}

#[test]
#[ignore = "needs QEMU and the build artifacts: run `make test`"]
fn release_builds_have_no_fault_injection() {
    let mut guest = Guest::boot(Boot::new(RELEASE, "imprint.fault=panic imprint.on_error_delay=0"));
    let at = guest.expect("note: unknown parameter imprint.fault ignored", BOOT);
    guest.expect_from(at, "!! no server configured", STEP);
    assert!(guest.wait_exit(STEP).success());
    assert!(!guest.transcript().contains("panic: fault injected"));
}

#[test]
#[ignore = "needs QEMU and the build artifacts: run `make test`"]
fn a_bad_setting_is_an_error_and_poweroff_powers_off() {
    let mut guest = Guest::boot(Boot::new(RELEASE, "imprint.on_error=poweroff imprint.on_error_delay=1 imprint.iface="));
    let at = guest.expect("on error  power off after 1 s", BOOT);
    let at = guest.expect_from(at, "!! kernel command line: imprint.iface=\"\": expected an interface name or MAC", STEP);
    let at = guest.expect_from(at, "powering off in   1 s", STEP);
    guest.expect_from(at, "imprint: powering off", STEP);
    assert!(guest.wait_exit(STEP).success());
    assert!(guest.transcript().contains("reboot: Power down"), "{}", guest.transcript());
    assert_no_kernel_panic(&guest);
}

#[test]
#[ignore = "needs QEMU and the build artifacts: run `make test`"]
fn the_demo_os_image_boots_from_its_disk() {
    // The image the demo and the provisioning tests write: it must boot on its own (BIOS,
    // gptmbr, extlinux from /boot, ext4 root) and say so.
    let image = imprint_e2e::artifact("build/demo/os.img");
    let mut guest = Guest::boot_disk(&image);
    let at = guest.expect("Loading /bzImage... ok", BOOT);
    guest.expect_from(at, "imprint-demo: booted from the provisioned disk: host imprint-demo", BOOT);
    assert!(guest.wait_exit(STEP).success());
    assert_no_kernel_panic(&guest);
}
