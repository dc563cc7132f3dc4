//! Loop devices over files of the tests' own (`losetup --direct-io=on`), for the
//! commands that read and write block devices (`imprint write`, `imprint capture`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const MIB: usize = 1 << 20;
/// What a fresh test device holds everywhere: anything but zeros, so that zeroing shows.
pub const JUNK: u8 = 0xA5;

/// A loop device over a file of our own, detached and removed on drop (also on failure).
pub struct Loop {
    pub dev: String,
    pub dir: PathBuf,
}

impl Loop {
    /// `size` bytes of JUNK behind /dev/loopN with `sector`-byte logical blocks;
    /// `partitions` adds -P (partition scanning).
    pub fn attach(name: &str, size: usize, sector: u32, partitions: bool) -> Loop {
        let dir = scratch(name);
        let backing = dir.join("disk");
        fs::write(&backing, vec![JUNK; size]).unwrap();
        let mut cmd = Command::new("losetup");
        cmd.args(["--find", "--show", "--direct-io=on", "--sector-size", &sector.to_string()]);
        if partitions {
            cmd.arg("--partscan");
        }
        let out = cmd.arg(&backing).output().expect("run losetup (util-linux)");
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Loop { dev, dir }
    }

    pub fn read(&self) -> Vec<u8> {
        fs::read(&self.dev).unwrap()
    }

    /// Asserts that the first and last MiB are zero.
    pub fn assert_ends_zeroed(&self, context: &str) {
        let data = self.read();
        let n = data.len();
        assert!(data[..MIB].iter().all(|&b| b == 0), "{context}: first MiB not zeroed");
        assert!(data[n - MIB..].iter().all(|&b| b == 0), "{context}: last MiB not zeroed");
    }

    pub fn assert_untouched(&self, context: &str) {
        assert!(self.read().iter().all(|&b| b == JUNK), "{context}: the device was written to");
    }

    /// `cmp` of the device's first bytes with `image`.
    pub fn assert_holds(&self, image: &Path) {
        let len = fs::metadata(image).unwrap().len().to_string();
        let status = Command::new("cmp").args(["-n", &len]).arg(image).arg(&self.dev).status().unwrap();
        assert!(status.success(), "{} differs from {}", self.dev, image.display());
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imi-loop-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
