//! imprint: provisions a machine from an OS image, as the `/init` of a tiny initramfs.
//!
//! This library holds all of imprint's logic and is unit-tested on the host; the binary
//! (`main.rs`) is only the boot story and the tool-mode entry. Read in this order:
//! `main.rs`, then [`sys`] (the only `unsafe`), then [`init`], [`cmdline`], [`rescue`].
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[macro_use]
pub mod console;
pub mod cmdline;
pub mod deploy;
pub mod disk;
pub mod error;
pub mod http;
pub mod image;
pub mod init;
pub mod io;
pub mod net;
pub mod plan;
pub mod provision;
pub mod rescue;
pub mod sys;
pub mod tool;

/// imprint's version, shown in the banner and by `imprint --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
