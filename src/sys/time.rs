//! Clocks and sleeping.

use core::time::Duration;

/// Time since an arbitrary point (boot), never going backwards.
pub fn monotonic() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid writable timespec; CLOCK_MONOTONIC always exists on Linux, so
    // the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Sleeps for `d`, resuming after signals until the whole time has passed.
pub fn sleep(d: Duration) {
    let mut ts = libc::timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ };
    let ts: *mut libc::timespec = &mut ts;
    // SAFETY: ts points to a valid timespec for each call; the kernel reads the request
    // before it writes what remains of it back, so one timespec serves as both.
    while unsafe { libc::nanosleep(ts, ts) } != 0 {}
}
