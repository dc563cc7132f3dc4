//! The C entry point of the binary (included by main.rs, never by the library: the
//! library's test harness has a `main` of its own).
//!
//! musl's start code calls `main(argc, argv)`; we turn argv into safe byte slices and
//! hand over to `crate::start`.

extern crate alloc;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, CStr};

// The binary is no_std: link the C library (musl, static) ourselves.
#[link(name = "c")]
extern "C" {}

#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // SAFETY: the C runtime guarantees argv holds argc valid pointers to NUL-terminated
    // strings that live, unmodified by us, until the process ends, hence 'static.
    let arg = |i| unsafe { CStr::from_ptr(*argv.add(i)) }.to_bytes();
    let mut args: Vec<&'static [u8]> = Vec::with_capacity(argc.max(0) as usize);
    args.extend((0..argc.max(0) as usize).map(arg));
    crate::start(&args)
}
