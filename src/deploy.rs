//! After the image is written and verified: the plan's host name and files go into the
//! deployed system. Its root filesystem is found among the disk's partitions (the first
//! ext4 or xfs one with an /etc), mounted under /run/imprint/root, written, synced and
//! unmounted.

use crate::disk::select::Disk;
use crate::plan::{FileSpec, Plan};
use crate::sys::fd::{Fd, OpenFlags};
use crate::sys::{block, fs, Errno};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

const MOUNT_POINT: &str = "/run/imprint/root";

#[derive(Debug)]
pub enum DeployError {
    /// No partition of the disk holds a root filesystem imprint can mount.
    NoRoot { disk: String },
    Sys { doing: &'static str, path: String, errno: Errno },
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployError::NoRoot { disk } => {
                write!(f, "writing the plan's files: no partition of {disk} holds an ext4 or xfs filesystem with /etc")
            }
            DeployError::Sys { doing, path, errno } => write!(f, "{doing} {path}: {errno}"),
        }
    }
}

/// Writes the plan's `hostname` (as /etc/hostname) and `files` into the deployed system.
pub fn write_files(disk: &Disk, plan: &Plan) -> Result<(), DeployError> {
    if plan.hostname.is_none() && plan.files.is_empty() {
        return Ok(());
    }
    let partition = mount_root(disk)?;
    sayln!("imprint: writing files into the deployed system on /dev/{partition}");
    let hostname = plan.hostname.as_ref().map(|name| FileSpec {
        path: String::from("/etc/hostname"),
        content: text!("{name}\n").into_bytes(),
        mode: 0o644,
    });
    let result = hostname.iter().chain(&plan.files).try_for_each(write_file);
    // Unmount even after a failure: a mounted filesystem would make the reboot unclean.
    fs::sync();
    let unmounted = fs::umount(MOUNT_POINT, false);
    result?;
    unmounted.map_err(sys("unmounting", MOUNT_POINT))
}

fn sys<'a>(doing: &'static str, path: &'a str) -> impl FnOnce(Errno) -> DeployError + 'a {
    move |errno| DeployError::Sys { doing, path: String::from(path), errno }
}

/// Mounts the first partition with an ext4 or xfs filesystem holding /etc; its name.
fn mount_root(disk: &Disk) -> Result<String, DeployError> {
    fs::make_dir("/run/imprint", 0o755).map_err(sys("creating", "/run/imprint"))?;
    fs::make_dir(MOUNT_POINT, 0o755).map_err(sys("creating", MOUNT_POINT))?;
    for partition in partitions(&disk.name) {
        let device = text!("/dev/{partition}");
        for fstype in ["ext4", "xfs"] {
            // Probe read-only: mounting writable changes a filesystem (mount count, times)
            // even when nothing is written to it, and only the root is ours to change.
            if fs::mount(&device, MOUNT_POINT, fstype, fs::MS_RDONLY, "").is_err() {
                continue;
            }
            let is_root = fs::exists(&text!("{MOUNT_POINT}/etc"));
            let _ = fs::umount(MOUNT_POINT, false);
            if is_root {
                fs::mount(&device, MOUNT_POINT, fstype, 0, "").map_err(sys("mounting", &device))?;
                return Ok(partition);
            }
        }
    }
    Err(DeployError::NoRoot { disk: disk.path() })
}

/// The disk's partitions as the kernel names them ("vda1", "nvme0n1p2"), in order.
fn partitions(disk: &str) -> Vec<String> {
    let mut found = fs::list_dir(&text!("/sys/block/{disk}")).unwrap_or_default();
    found.retain(|name| is_partition_of(disk, name));
    found
}

/// Whether `name` is a partition of `disk`: the disk's name, a "p" when it ends in a digit,
/// then the partition number.
pub fn is_partition_of(disk: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(disk) else { return false };
    let number = match disk.as_bytes().last() {
        Some(b) if b.is_ascii_digit() => rest.strip_prefix('p').unwrap_or(""),
        _ => rest,
    };
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
}

/// One file under the mount point: parent directories created, content written and
/// flushed, the mode set exactly (the umask does not apply).
fn write_file(spec: &FileSpec) -> Result<(), DeployError> {
    let path = text!("{MOUNT_POINT}{}", spec.path);
    for (at, _) in path.match_indices('/').skip(1) {
        let parent = path.get(..at).unwrap_or_default();
        if parent.len() > MOUNT_POINT.len() {
            fs::make_dir(parent, 0o755).map_err(sys("creating", parent))?;
        }
    }
    let file = Fd::open(&path, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, spec.mode)
        .map_err(sys("creating", &spec.path))?;
    file.write_all(&spec.content).map_err(sys("writing", &spec.path))?;
    block::fsync(&file).map_err(sys("flushing", &spec.path))?;
    fs::set_mode(&path, spec.mode).map_err(sys("setting the mode of", &spec.path))?;
    sayln!("  {} ({} bytes, mode {:o})", spec.path, spec.content.len(), spec.mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_recognized_by_name() {
        assert!(is_partition_of("vda", "vda1"));
        assert!(is_partition_of("sda", "sda12"));
        assert!(is_partition_of("nvme0n1", "nvme0n1p2"));
        assert!(is_partition_of("loop0", "loop0p1"));
        assert!(!is_partition_of("vda", "vda"));
        assert!(!is_partition_of("vda", "queue"));
        assert!(!is_partition_of("nvme0n1", "nvme0n11"));
        assert!(!is_partition_of("sda", "sdab"));
    }
}
