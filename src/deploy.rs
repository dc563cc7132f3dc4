//! After the image is written and verified: the partition table is fitted to the disk
//! (the backup GPT moved to its end, `growPartition` extended over the free space), then
//! the deployed system is finished: its root filesystem (the first ext4 or xfs partition
//! with an /etc) is mounted under /run/imprint/root, grown when its partition grew, given
//! the plan's host name, static network configuration and files, synced and unmounted.

use crate::disk::gpt::{self, GptError};
use crate::disk::select::Disk;
use crate::image::write;
use crate::plan::{FileSpec, Plan};
use crate::sys::fd::{Fd, OpenFlags};
use crate::sys::{block, fs, Errno};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

const MOUNT_POINT: &str = "/run/imprint/root";

#[derive(Debug)]
pub enum DeployError {
    Table(GptError),
    /// The plan's static network keys do not make a configuration.
    Plan(&'static str),
    /// Re-reading the partition table after editing it failed.
    Rescan(String),
    /// No partition of the disk holds a root filesystem imprint can mount.
    NoRoot {
        disk: String,
    },
    Sys {
        doing: &'static str,
        path: String,
        errno: Errno,
    },
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployError::Table(e) => write!(f, "fitting the partition table to the disk: {e}"),
            DeployError::Plan(why) => write!(f, "plan: {why}"),
            DeployError::Rescan(e) => e.fmt(f),
            DeployError::NoRoot { disk } => {
                write!(f, "writing the plan's files: no partition of {disk} holds an ext4 or xfs filesystem with /etc")
            }
            DeployError::Sys { doing, path, errno } => write!(f, "{doing} {path}: {errno}"),
        }
    }
}

/// Everything after the write: the partition table, then the deployed system's files.
/// `mac` is this machine's identity: a static network configuration matches it.
pub fn finish(disk: &Disk, plan: &Plan, mac: [u8; 6]) -> Result<(), DeployError> {
    fit_table(disk, plan.grow_partition)?;
    let network = StaticNetwork::from_plan(plan)?;
    if plan.hostname.is_none()
        && plan.files.is_empty()
        && plan.grow_partition.is_none()
        && network.is_none()
    {
        return Ok(());
    }
    let (partition, fstype) = mount_root(disk)?;
    let result = finish_root(&partition, fstype, plan, network.as_ref().map(|n| (n, mac)));
    // Unmount even after a failure: a mounted filesystem would make the reboot unclean.
    fs::sync();
    let unmounted = fs::umount(MOUNT_POINT, false);
    result?;
    unmounted.map_err(sys("unmounting", MOUNT_POINT))
}

/// Moves the backup GPT to the disk's end and grows partition `grow`; the kernel then
/// re-reads the table. A disk without GPT (MBR images) is left as it is.
fn fit_table(disk: &Disk, grow: Option<u32>) -> Result<(), DeployError> {
    let path = disk.path();
    let fd = crate::sys::block::open_device(&path, false).map_err(sys("opening", &path))?;
    if gpt::relocate_and_grow(&fd, grow).map_err(DeployError::Table)? {
        match grow {
            Some(n) => {
                sayln!("imprint: partition {n} grown to the end of {path}; backup GPT at the end")
            }
            None => sayln!("imprint: backup GPT moved to the end of {path}"),
        }
        write::rescan(&fd).map_err(|e| DeployError::Rescan(text!("{e}")))?;
    } else if let Some(n) = grow {
        sayln!("imprint: note: {path} has no GPT; partition {n} is not grown (MBR is not supported yet)");
    }
    Ok(())
}

/// On the mounted root: grow its filesystem if its partition grew, then write the files.
fn finish_root(
    partition: &str,
    fstype: &str,
    plan: &Plan,
    network: Option<(&StaticNetwork, [u8; 6])>,
) -> Result<(), DeployError> {
    // "vda2" and "nvme0n1p2" are partition 2.
    let number: Option<u32> =
        partition.rsplit(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok());
    if let Some(n) = plan.grow_partition {
        if number == Some(n) && fstype == "ext4" {
            grow_ext4(partition)?;
        } else {
            sayln!("imprint: note: partition {n} is not an ext4 root; its contents are not grown (LVM and xfs are not supported yet)");
        }
    }
    let hostname = plan.hostname.as_ref().map(|name| FileSpec {
        path: String::from("/etc/hostname"),
        content: text!("{name}\n").into_bytes(),
        mode: 0o644,
    });
    let network = match network {
        Some((n, mac)) => n.config_file(mac),
        None => None,
    };
    if hostname.is_some() || network.is_some() || !plan.files.is_empty() {
        sayln!("imprint: writing files into the deployed system on /dev/{partition}");
    }
    hostname.iter().chain(network.iter()).chain(&plan.files).try_for_each(write_file)
}

/// The plan's `address`, `gateway` and `nameserver`, checked.
pub struct StaticNetwork {
    address: String,
    gateway: Option<String>,
    nameserver: Option<String>,
}

impl StaticNetwork {
    pub fn from_plan(plan: &Plan) -> Result<Option<StaticNetwork>, DeployError> {
        let Some(address) = &plan.address else {
            if plan.gateway.is_some() || plan.nameserver.is_some() {
                return Err(DeployError::Plan("gateway and nameserver need an address (CIDR)"));
            }
            return Ok(None);
        };
        let valid_cidr = address.split_once('/').is_some_and(|(ip, len)| {
            is_ipv4(ip) && len.parse::<u8>().is_ok_and(|l| (1..=32).contains(&l))
        });
        if !valid_cidr {
            return Err(DeployError::Plan("address is not an IPv4 CIDR such as 10.0.0.42/24"));
        }
        for (value, why) in [
            (&plan.gateway, "gateway is not an IPv4 address"),
            (&plan.nameserver, "nameserver is not an IPv4 address"),
        ] {
            if value.as_deref().is_some_and(|v| !is_ipv4(v)) {
                return Err(DeployError::Plan(why));
            }
        }
        Ok(Some(StaticNetwork {
            address: address.clone(),
            gateway: plan.gateway.clone(),
            nameserver: plan.nameserver.clone(),
        }))
    }

    /// The deployed system's network configuration for the interface with `mac`: netplan
    /// when the system has /etc/netplan, else systemd-networkd when it has
    /// /etc/systemd/network; else nothing (said on the console).
    fn config_file(&self, mac: [u8; 6]) -> Option<FileSpec> {
        // netplan wants its files private; networkd reads its own as an unprivileged user.
        let (path, content, mode) = if fs::exists(&text!("{MOUNT_POINT}/etc/netplan")) {
            ("/etc/netplan/60-imprint.yaml", self.netplan(mac), 0o600)
        } else if fs::exists(&text!("{MOUNT_POINT}/etc/systemd/network")) {
            ("/etc/systemd/network/60-imprint.network", self.networkd(mac), 0o644)
        } else {
            sayln!("imprint: note: the deployed system has neither /etc/netplan nor /etc/systemd/network; its network configuration is not written");
            return None;
        };
        Some(FileSpec { path: String::from(path), content: content.into_bytes(), mode })
    }

    pub fn netplan(&self, mac: [u8; 6]) -> String {
        let mac = crate::net::link::Mac(mac);
        let mut yaml = text!(
            "# Written by imprint from the provisioning plan.\nnetwork:\n  version: 2\n  ethernets:\n    imprint0:\n      match:\n        macaddress: \"{mac}\"\n      addresses: [{}]\n",
            self.address
        );
        if let Some(gw) = &self.gateway {
            yaml.push_str(&text!("      routes:\n        - to: default\n          via: {gw}\n"));
        }
        if let Some(dns) = &self.nameserver {
            yaml.push_str(&text!("      nameservers:\n        addresses: [{dns}]\n"));
        }
        yaml
    }

    pub fn networkd(&self, mac: [u8; 6]) -> String {
        let mac = crate::net::link::Mac(mac);
        let mut unit = text!("# Written by imprint from the provisioning plan.\n[Match]\nMACAddress={mac}\n\n[Network]\nAddress={}\n", self.address);
        if let Some(gw) = &self.gateway {
            unit.push_str(&text!("Gateway={gw}\n"));
        }
        if let Some(dns) = &self.nameserver {
            unit.push_str(&text!("DNS={dns}\n"));
        }
        unit
    }
}

fn is_ipv4(text: &str) -> bool {
    crate::net::static_ip::parse_ipv4(text).is_some()
}

/// Grows the mounted ext4 root to fill its partition: the size in the filesystem's own
/// blocks, from the partition's size and the superblock's block size.
fn grow_ext4(partition: &str) -> Result<(), DeployError> {
    let device = text!("/dev/{partition}");
    let fd = Fd::open(&device, OpenFlags::READ, 0).map_err(sys("opening", &device))?;
    let mut superblock = [0u8; 1024];
    block::pread_exact(&fd, &mut superblock, 1024)
        .map_err(sys("reading the superblock of", &device))?;
    let log = u32::from_le_bytes([superblock[24], superblock[25], superblock[26], superblock[27]]);
    let block_size = 1024u64 << log.min(6);
    let bytes = block::device_size(&fd).map_err(sys("reading the size of", &device))?;
    fs::grow_ext4(MOUNT_POINT, bytes / block_size)
        .map_err(sys("growing the ext4 filesystem on", &device))?;
    sayln!(
        "imprint: ext4 on {device} grown to {} blocks of {block_size} bytes",
        bytes / block_size
    );
    Ok(())
}

fn sys<'a>(doing: &'static str, path: &'a str) -> impl FnOnce(Errno) -> DeployError + 'a {
    move |errno| DeployError::Sys { doing, path: String::from(path), errno }
}

/// Mounts the first partition with an ext4 or xfs filesystem holding /etc; its name and type.
fn mount_root(disk: &Disk) -> Result<(String, &'static str), DeployError> {
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
                return Ok((partition, fstype));
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
    let file =
        Fd::open(&path, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, spec.mode)
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

    fn network(doc: &str) -> Result<Option<StaticNetwork>, DeployError> {
        StaticNetwork::from_plan(&crate::plan::parse(doc.as_bytes()).unwrap())
    }

    #[test]
    fn static_network_files() {
        let n = network(r#"{"action":"writeImage","sourceImage":"x","address":"10.0.0.42/24","gateway":"10.0.0.1","nameserver":"10.0.0.53"}"#)
            .unwrap()
            .unwrap();
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        assert_eq!(
            n.networkd(mac),
            "# Written by imprint from the provisioning plan.\n[Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nAddress=10.0.0.42/24\nGateway=10.0.0.1\nDNS=10.0.0.53\n"
        );
        let yaml = n.netplan(mac);
        assert!(
            yaml.contains(
                "        macaddress: \"52:54:00:12:34:56\"\n      addresses: [10.0.0.42/24]\n"
            ),
            "{yaml}"
        );
        assert!(yaml.contains("        - to: default\n          via: 10.0.0.1\n"), "{yaml}");
        assert!(yaml.contains("        addresses: [10.0.0.53]\n"), "{yaml}");
    }

    #[test]
    fn bad_static_networks_are_plan_errors() {
        let base = r#"{"action":"writeImage","sourceImage":"x""#;
        assert!(network(&(base.to_string() + "}")).unwrap().is_none());
        for (keys, why) in [
            (r#","address":"10.0.0.42""#, "address is not an IPv4 CIDR such as 10.0.0.42/24"),
            (r#","address":"10.0.0.300/24""#, "address is not an IPv4 CIDR such as 10.0.0.42/24"),
            (r#","address":"10.0.0.4/33""#, "address is not an IPv4 CIDR such as 10.0.0.42/24"),
            (r#","address":"10.0.0.4/24","gateway":"gw""#, "gateway is not an IPv4 address"),
            (r#","gateway":"10.0.0.1""#, "gateway and nameserver need an address (CIDR)"),
        ] {
            match network(&(base.to_string() + keys + "}")) {
                Err(DeployError::Plan(got)) => assert_eq!(got, why, "{keys}"),
                _ => panic!("{keys} should be refused"),
            }
        }
    }

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
