//! After the image is written and verified: the partition table is fitted to the disk
//! (the backup GPT moved to its end, `growPartition` extended over the free space), then
//! the deployed system is finished: its root filesystem (the first ext4 or xfs partition
//! with an /etc) is mounted under /run/imprint/root, grown when its partition grew, given
//! the plan's host name, static network configuration and files, synced and unmounted.

use crate::disk::{gpt, select::Disk};
use crate::error::Error;
use crate::http::response::parse_length;
use crate::plan::Plan;
use crate::sys::fd::{Fd, OpenFlags};
use crate::sys::{block, fs, Errno};
use alloc::string::String;
use core::fmt::Write as _;

/// Where the deployed root is mounted (spelled out in the paths below: no formatting).
const MOUNT_POINT: &str = "/run/imprint/root";

fn sys<'a>(doing: &'a str, path: &'a str) -> impl FnOnce(Errno) -> Error + 'a {
    move |errno| Error(text!("{doing} {path}: {errno}"))
}

/// Everything after the write: the partition table, then the deployed system's files.
/// `mac` is this machine's identity: a static network configuration matches it. The
/// plan's network keys are checked already (`check_network`, before the write).
pub fn finish(disk: &Disk, plan: &Plan, mac: [u8; 6]) -> Result<(), Error> {
    fit_table(disk, plan.grow_partition)?;
    let (grow, nothing) = (plan.grow_partition, plan.str("hostname").or(plan.str("address")));
    if nothing.is_none() && plan.files.is_empty() && grow.is_none() {
        return Ok(());
    }
    let (device, number, fstype) = mount_root(disk)?;
    let result = finish_root(&device, number, fstype, plan, mac);
    // Unmount even after a failure: a mounted filesystem would make the reboot unclean.
    fs::sync();
    let unmounted = fs::umount(MOUNT_POINT, false);
    result?;
    unmounted.map_err(sys("unmounting", MOUNT_POINT))
}

/// Moves the backup GPT to the disk's end and grows partition `grow`; the kernel then
/// re-reads the table. A disk without GPT (MBR images) is left as it is.
fn fit_table(disk: &Disk, grow: Option<u32>) -> Result<(), Error> {
    let path = disk.path();
    let fd = block::open(&path, true, false).map_err(sys("opening", &path))?;
    let fitted = gpt::relocate_and_grow(&fd, grow)
        .map_err(|e| Error(text!("fitting the partition table to the disk: {e}")))?;
    match (fitted, grow) {
        (true, Some(n)) => {
            sayln!("imprint: partition {n} grown to the end of {path}; backup GPT at the end")
        }
        (true, None) => sayln!("imprint: backup GPT moved to the end of {path}"),
        (false, Some(n)) => sayln!("imprint: note: {path} has no GPT; partition {n} is not grown (MBR is not supported yet)"),
        (false, None) => {}
    }
    if fitted {
        crate::image::write::rescan(&fd)?;
    }
    Ok(())
}

/// On the mounted root (`/dev/{device}`, partition `number`): grow its filesystem if its
/// partition grew, then write the files.
fn finish_root(
    device: &str,
    number: u32,
    fstype: &str,
    plan: &Plan,
    mac: [u8; 6],
) -> Result<(), Error> {
    if let Some(n) = plan.grow_partition {
        if number == n && fstype == "ext4" {
            grow_ext4(device)?;
        } else {
            sayln!("imprint: note: partition {n} is not an ext4 root; its contents are not grown (LVM and xfs are not supported yet)");
        }
    }
    // netplan wants its files private; networkd reads its own as an unprivileged user.
    let targets = [
        ("/etc/netplan", "/etc/netplan/60-imprint.yaml", true, 0o600),
        ("/etc/systemd/network", "/etc/systemd/network/60-imprint.network", false, 0o644),
    ];
    let network = plan.str("address").and_then(|_| {
        targets.into_iter().find(|(dir, ..)| fs::exists(&text!("{MOUNT_POINT}{dir}")))
    });
    if plan.str("address").is_some() && network.is_none() {
        sayln!("imprint: note: the deployed system has neither /etc/netplan nor /etc/systemd/network; its network configuration is not written");
    }
    if plan.str("hostname").is_some() || network.is_some() || !plan.files.is_empty() {
        sayln!("imprint: writing files into the deployed system on {device}");
    }
    let hostname = plan.str("hostname").map(|name| ("/etc/hostname", text!("{name}\n"), 0o644));
    let network =
        network.map(|(_, path, netplan, mode)| (path, network_config(plan, mac, netplan), mode));
    let ours =
        hostname.iter().chain(&network).map(|(path, text, mode)| (*path, text.as_bytes(), *mode));
    let theirs = plan.files.iter().map(|f| (f.path.as_str(), &f.content[..], f.mode));
    ours.chain(theirs).try_for_each(|(path, content, mode)| write_file(path, content, mode))
}

/// Checks the plan's `address`, `gateway` and `nameserver` (a static network for the
/// deployed system), so that a wrong one fails before anything is written.
pub fn check_network(plan: &Plan) -> Result<(), Error> {
    let is_ipv4 = |text: &str| crate::net::static_ip::parse_ipv4(text).is_some();
    let cidr = |a: &str| {
        a.split_once('/').is_some_and(|(ip, len)| {
            is_ipv4(ip) && parse_length(len.as_bytes()).is_some_and(|l| (1..=32).contains(&l))
        })
    };
    let why = match (plan.str("address"), plan.str("gateway"), plan.str("nameserver")) {
        (None, None, None) => return Ok(()),
        (None, ..) => "gateway and nameserver need an address (CIDR)",
        (Some(a), ..) if !cidr(a) => "address is not an IPv4 CIDR such as 10.0.0.42/24",
        (_, Some(gw), _) if !is_ipv4(gw) => "gateway is not an IPv4 address",
        (.., Some(ns)) if !is_ipv4(ns) => "nameserver is not an IPv4 address",
        _ => return Ok(()),
    };
    Err(Error(text!("plan: {why}")))
}

/// The deployed system's network configuration for the interface with `mac`: netplan YAML
/// or, with `netplan` false, a systemd-networkd unit.
pub fn network_config(plan: &Plan, mac: [u8; 6], netplan: bool) -> String {
    let mac = crate::net::link::Mac(mac);
    let mut out = String::from("# Written by imprint from the provisioning plan.\n");
    // Each value's key, in the order of address, gateway, nameserver ("[": a YAML list).
    let keys = if netplan {
        let _ = write!(out, "network:\n  version: 2\n  ethernets:\n    imprint0:\n      match:\n        macaddress: \"{mac}\"\n");
        [
            "      addresses: [",
            "      routes:\n        - to: default\n          via: ",
            "      nameservers:\n        addresses: [",
        ]
    } else {
        let _ = write!(out, "[Match]\nMACAddress={mac}\n\n[Network]\n");
        ["Address=", "Gateway=", "DNS="]
    };
    for (key, name) in keys.iter().zip(["address", "gateway", "nameserver"]) {
        if let Some(value) = plan.str(name) {
            let _ = writeln!(out, "{key}{value}{}", if key.ends_with('[') { "]" } else { "" });
        }
    }
    out
}

/// Grows the mounted ext4 root on `device` to fill its partition: the size in the
/// filesystem's own blocks, from the partition's size and the superblock's block size.
fn grow_ext4(device: &str) -> Result<(), Error> {
    let fd = Fd::open(device, OpenFlags::READ, 0).map_err(sys("opening", device))?;
    let mut superblock = [0u8; 1024];
    block::pread_exact(&fd, &mut superblock, 1024)
        .map_err(sys("reading the superblock of", device))?;
    let block_size = 1024u64 << superblock[24].min(6);
    let blocks = block::device_size(&fd).map_err(sys("reading the size of", device))? / block_size;
    fs::grow_ext4(MOUNT_POINT, blocks).map_err(sys("growing the ext4 filesystem on", device))?;
    sayln!("imprint: ext4 on {device} grown to {blocks} blocks of {block_size} bytes");
    Ok(())
}

/// Mounts the first partition with an ext4 or xfs filesystem holding /etc; its device,
/// number and filesystem type.
fn mount_root(disk: &Disk) -> Result<(String, u32, &'static str), Error> {
    fs::make_dir("/run/imprint", 0o755).map_err(sys("creating", "/run/imprint"))?;
    fs::make_dir(MOUNT_POINT, 0o755).map_err(sys("creating", MOUNT_POINT))?;
    let names = fs::list_dir(&text!("/sys/block/{}", disk.name)).unwrap_or_default();
    for name in names {
        let Some(number) = partition_number(&disk.name, &name) else { continue };
        let device = text!("/dev/{name}");
        for fstype in ["ext4", "xfs"] {
            // Probe read-only: mounting writable changes a filesystem (mount count, times)
            // even when nothing is written to it, and only the root is ours to change.
            if fs::mount(&device, MOUNT_POINT, fstype, fs::MS_RDONLY, "").is_err() {
                continue;
            }
            let is_root = fs::exists("/run/imprint/root/etc");
            let _ = fs::umount(MOUNT_POINT, false);
            if is_root {
                fs::mount(&device, MOUNT_POINT, fstype, 0, "").map_err(sys("mounting", &device))?;
                return Ok((device, number, fstype));
            }
        }
    }
    let disk = disk.path();
    Err(Error(text!("writing the plan's files: no partition of {disk} holds an ext4 or xfs filesystem with /etc")))
}

/// The number of partition `name` of `disk` as the kernel names them ("vda1", "nvme0n1p2"):
/// the disk's name, a "p" when it ends in a digit, then the number.
pub fn partition_number(disk: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(disk)?;
    let number = match disk.as_bytes().last() {
        Some(b) if b.is_ascii_digit() => rest.strip_prefix('p')?,
        _ => rest,
    };
    parse_length(number.as_bytes())?.try_into().ok()
}

/// One file under the mount point: parent directories created, content written and
/// flushed, the mode set exactly (the umask does not apply).
fn write_file(name: &str, content: &[u8], mode: u32) -> Result<(), Error> {
    let path = text!("{MOUNT_POINT}{name}");
    for (at, _) in path.match_indices('/').skip(4) {
        let parent = path.get(..at).unwrap_or_default();
        fs::make_dir(parent, 0o755).map_err(sys("creating", parent))?;
    }
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let file = Fd::open(&path, flags, mode).map_err(sys("creating", name))?;
    file.write_all(content).map_err(sys("writing", name))?;
    block::fsync(&file).map_err(sys("flushing", name))?;
    fs::set_mode(&path, mode).map_err(sys("setting the mode of", name))?;
    sayln!("  {name} ({} bytes, mode {mode:o})", content.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(doc: &str) -> Plan {
        crate::plan::parse(doc.as_bytes()).unwrap()
    }

    #[test]
    fn static_network_files() {
        let p = plan(
            r#"{"action":"writeImage","sourceImage":"x","address":"10.0.0.42/24","gateway":"10.0.0.1","nameserver":"10.0.0.53"}"#,
        );
        assert!(check_network(&p).is_ok());
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        assert_eq!(
            network_config(&p, mac, false),
            "# Written by imprint from the provisioning plan.\n[Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nAddress=10.0.0.42/24\nGateway=10.0.0.1\nDNS=10.0.0.53\n"
        );
        let yaml = network_config(&p, mac, true);
        assert!(
            yaml.contains(
                "        macaddress: \"52:54:00:12:34:56\"\n      addresses: [10.0.0.42/24]\n"
            ),
            "{yaml}"
        );
        assert!(yaml.contains("        - to: default\n          via: 10.0.0.1\n"), "{yaml}");
        assert!(yaml.contains("        addresses: [10.0.0.53]\n"), "{yaml}");
        let p = plan(r#"{"action":"writeImage","sourceImage":"x","address":"10.0.0.42/24"}"#);
        assert!(!network_config(&p, mac, false).contains("Gateway"));
    }

    #[test]
    fn bad_static_networks_are_plan_errors() {
        let base = r#"{"action":"writeImage","sourceImage":"x""#;
        assert!(check_network(&plan(&(base.to_string() + "}"))).is_ok());
        for (keys, why) in [
            (r#","address":"10.0.0.42""#, "address is not an IPv4 CIDR such as 10.0.0.42/24"),
            (r#","address":"10.0.0.300/24""#, "address is not an IPv4 CIDR such as 10.0.0.42/24"),
            (r#","address":"10.0.0.4/33""#, "address is not an IPv4 CIDR such as 10.0.0.42/24"),
            (r#","address":"10.0.0.4/24","gateway":"gw""#, "gateway is not an IPv4 address"),
            (r#","address":"10.0.0.4/24","nameserver":"x""#, "nameserver is not an IPv4 address"),
            (r#","gateway":"10.0.0.1""#, "gateway and nameserver need an address (CIDR)"),
        ] {
            match check_network(&plan(&(base.to_string() + keys + "}"))) {
                Err(e) => assert_eq!(e.0, std::format!("plan: {why}"), "{keys}"),
                _ => panic!("{keys} should be refused"),
            }
        }
    }

    #[test]
    fn partitions_are_recognized_by_name() {
        assert_eq!(partition_number("vda", "vda1"), Some(1));
        assert_eq!(partition_number("sda", "sda12"), Some(12));
        assert_eq!(partition_number("nvme0n1", "nvme0n1p2"), Some(2));
        assert_eq!(partition_number("loop0", "loop0p1"), Some(1));
        assert_eq!(partition_number("vda", "vda"), None);
        assert_eq!(partition_number("vda", "queue"), None);
        assert_eq!(partition_number("nvme0n1", "nvme0n11"), None);
        assert_eq!(partition_number("sda", "sdab"), None);
        assert_eq!(partition_number("sda", "sda+1"), None);
    }
}
