//! Choosing the disk to write or capture, from what sysfs says about every block device.
//!
//! The rule: a device path from the plan, or the plan's hints, must match exactly one
//! disk; with neither, the machine must have exactly one non-removable disk. Anything else
//! is an error that lists every candidate, so the operator can write a hint. Never "the
//! first disk": enumeration order changes between boots and kernels.

use crate::console::Quoted;
use crate::http::response::{equals_ignoring_case, parse_length};
use crate::plan::{DiskHints, Kind};
use crate::sys::fs;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

/// What sysfs tells about one whole disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name (`sda`, `nvme0n1`, `vda`); the device is `/dev/<name>`.
    pub name: String,
    pub size: u64,
    pub removable: bool,
    pub rotational: bool,
    pub model: String,
    pub vendor: String,
    pub serial: String,
    pub wwid: String,
    /// `nvme`, `virtio`, `sata`, `usb`, `sas` (other SCSI), `mmc` or `unknown`.
    pub transport: &'static str,
}

impl Disk {
    pub fn path(&self) -> String {
        text!("/dev/{}", self.name)
    }
}

impl fmt::Display for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.name, size(self.size), self.transport)?;
        let texts = [(" model ", &self.model), (" serial ", &self.serial)];
        for (label, value) in texts.into_iter().filter(|(_, value)| !value.is_empty()) {
            write!(f, "{label}{}", Quoted(value))?;
        }
        f.write_str(if self.removable { " removable" } else { "" })
    }
}

/// Bytes in decimal units, as disk labels use them ("500.1 GB").
pub fn size(n: u64) -> String {
    let units =
        [("TB", 1_000_000_000_000), ("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1_000)];
    match units.into_iter().find(|unit| n >= unit.1) {
        Some((unit, scale)) => text!("{}.{} {unit}", n / scale, n * 10 / scale % 10),
        None => text!("{n} B"),
    }
}

/// Whether `text` holds `part` (core's substring search costs kilobytes in the init).
fn has(text: &str, part: &str) -> bool {
    text.as_bytes().windows(part.len()).any(|w| w == part.as_bytes())
}

/// Kernel names of block devices that are never provisioning targets: RAM disks, loop
/// devices, compressed swap, optical drives, floppies, network block devices, and the
/// kernel's own stacked devices (md, device-mapper) whose members are the real disks.
fn is_ignored(name: &str) -> bool {
    ["ram", "loop", "zram", "sr", "fd", "nbd", "md", "dm-"].iter().any(|p| name.starts_with(p))
        || (name.starts_with("mmcblk") && (has(name, "boot") || has(name, "rpmb")))
}

/// Reads every disk under `sysfs` (normally "/sys").
pub fn scan(sysfs: &str) -> Result<Vec<Disk>, String> {
    let block = text!("{sysfs}/block");
    let names = fs::list_dir(&block).map_err(|errno| text!("listing disks: {block}: {errno}"))?;
    Ok(names.into_iter().filter(|n| !is_ignored(n)).map(|name| read_disk(&block, name)).collect())
}

fn read_disk(block: &str, name: String) -> Disk {
    let dir = text!("{block}/{name}");
    let attr = |rel: &str| read_attr(&text!("{dir}/{rel}"), 0);
    let first = |a: String, b: String| if a.is_empty() { b } else { a };
    // Serial: virtio-blk has its own attribute; NVMe and many SCSI drivers expose it on the
    // device; otherwise it is in the SCSI unit serial number VPD page (0x80).
    let vpd_serial = read_attr(&text!("{dir}/device/vpd_pg80"), 0x80);
    let serial = first(attr("serial"), first(attr("device/serial"), vpd_serial));
    let device_path = fs::read_link(&dir).unwrap_or_default();
    let transport = match () {
        _ if name.starts_with("nvme") => "nvme",
        _ if name.starts_with("vd") => "virtio",
        _ if name.starts_with("mmcblk") => "mmc",
        // Where the device sits in the device tree, e.g.
        // "../devices/pci0000:00/0000:00:1f.2/ata1/host0/...".
        _ if has(&device_path, "/usb") => "usb",
        _ if has(&device_path, "/ata") => "sata",
        _ if name.starts_with("sd") => "sas",
        _ => "unknown",
    };
    Disk {
        transport,
        size: parse_length(attr("size").as_bytes()).unwrap_or(0) * 512, // always in 512-byte sectors
        removable: attr("removable") == "1",
        rotational: attr("queue/rotational") == "1",
        model: attr("device/model"),
        vendor: attr("device/vendor"),
        serial,
        wwid: first(attr("wwid"), attr("device/wwid")),
        name,
    }
}

/// A sysfs attribute as trimmed text (they end in a newline, SCSI ones are space padded),
/// or "" when absent. With `vpd_page`, the text of that SCSI VPD page (4-byte header,
/// the page number at byte 1, the length at byte 3).
fn read_attr(path: &str, vpd_page: u8) -> String {
    let bytes = fs::read_file(path, 4096).unwrap_or_default();
    let text = match (vpd_page, bytes.as_slice()) {
        (0, all) => Some(all),
        (page, [_, p, _, n, t @ ..]) if *p == page => t.get(..*n as usize).or(Some(t)),
        _ => None,
    };
    String::from(core::str::from_utf8(text.unwrap_or_default()).unwrap_or_default().trim_ascii())
}

/// Chooses the disk: by `path` (e.g. "/dev/sda") if given, else by `hints`, else the only
/// non-removable disk. The error lists every disk. (Takes them: the chosen one is moved
/// out, not cloned.)
pub fn select(disks: Vec<Disk>, path: Option<&str>, hints: &DiskHints) -> Result<Disk, String> {
    let name = path.map(|path| path.strip_prefix("/dev/").unwrap_or(path));
    let fits = |d: &&Disk| {
        (match name {
            // A path may name removable media: the operator asked for it.
            Some(name) => d.name == name,
            // Removable media (USB sticks, SD cards) are only candidates when the hints ask.
            None => hints.bool("removable") == Some(true) || !d.removable,
        }) && matches(d, hints)
    };
    let n = disks.iter().filter(fits).count();
    if n == 1 {
        return disks.into_iter().find(|d| fits(&d)).ok_or_else(String::new);
    }
    let wanted = match (path, describe(hints)) {
        (None, h) if h.is_empty() => String::from("(no hint: the only non-removable disk)"),
        (Some(path), h) if !h.is_empty() => text!("{path} with {h}"),
        (path, h) => path.map_or(h, String::from),
    };
    let mut out = match n {
        0 => text!("no disk matches {wanted}; disks: "),
        _ => text!("{n} disks match {wanted}, give a hint that picks one: "),
    };
    // Those that match, or when none does, every disk.
    for (i, d) in disks.iter().filter(|d| n == 0 || fits(d)).enumerate() {
        let _ = write!(out, "{}{d}", if i > 0 { "; " } else { "" });
    }
    Err(if disks.is_empty() { out + "none" } else { out })
}

fn matches(d: &Disk, h: &DiskHints) -> bool {
    let texts = [
        ("serial", &*d.serial),
        ("model", &d.model),
        ("vendor", &d.vendor),
        ("transport", d.transport),
    ];
    texts.into_iter().all(|(key, have)| {
        h.str(key).is_none_or(|w| equals_ignoring_case(w.trim_ascii().as_bytes(), have.as_bytes()))
    }) && h.str("wwn").is_none_or(|w| !d.wwid.is_empty() && wwn(w) == wwn(&d.wwid))
        && h.number("minSize").is_none_or(|min| d.size >= min)
        && h.number("maxSize").is_none_or(|max| d.size <= max)
        && h.bool("rotational").is_none_or(|r| d.rotational == r)
        && h.bool("removable").is_none_or(|r| d.removable == r)
}

/// A WWN as compared: without its type prefix ("naa.", "eui.", "0x"), in lower case.
fn wwn(s: &str) -> String {
    let s = s.trim_ascii().to_ascii_lowercase();
    let bare = ["naa.", "eui.", "t10.", "0x"].iter().find_map(|p| s.strip_prefix(p));
    String::from(bare.unwrap_or(&s))
}

/// The hints, as text for errors ("serial=\"SN1\" minSize=100.0 GB", in the plan's
/// order); "" when none.
fn describe(h: &DiskHints) -> String {
    let mut out = String::new();
    for (key, _) in &h.0 {
        let _ = match crate::plan::kind_of(&crate::plan::DISK_KEYS, key) {
            None => None,
            Some(Kind::Str) => h.str(key).map(|text| write!(out, " {key}={}", Quoted(text))),
            Some(Kind::Number) => h.number(key).map(|n| write!(out, " {key}={}", size(n))),
            _ => h.bool(key).map(|b| write!(out, " {key}={}", if b { "true" } else { "false" })),
        };
    }
    String::from(out.trim_ascii_start())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::path::{Path, PathBuf};

    /// Disk hints as a plan's `disk` object holds them.
    fn hints(json: &str) -> DiskHints {
        match crate::plan::json::parse(json.as_bytes()) {
            Ok(crate::plan::json::Value::Object(members)) => crate::plan::Object(members),
            _ => panic!("{json}"),
        }
    }

    /// A fake /sys tree in a temporary directory.
    struct FakeSys(PathBuf);

    impl FakeSys {
        fn new(tag: &str) -> FakeSys {
            // Tests run in parallel in one process: each tree gets its own directory.
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let root =
                std::env::temp_dir().join(format!("imprint-sys-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("block")).unwrap();
            std::fs::create_dir_all(root.join("devices")).unwrap();
            FakeSys(root)
        }

        /// Adds a disk whose /sys/block entry links into `devpath` (as the kernel does).
        fn disk(&self, name: &str, devpath: &str, attrs: &[(&str, &[u8])]) -> &Self {
            let dev = self.0.join("devices").join(devpath).join("block").join(name);
            for (rel, value) in attrs {
                let file = dev.join(rel);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(file, value).unwrap();
            }
            std::fs::create_dir_all(&dev).unwrap();
            let target = Path::new("../devices").join(devpath).join("block").join(name);
            std::os::unix::fs::symlink(target, self.0.join("block").join(name)).unwrap();
            self
        }

        fn scan(&self) -> Vec<Disk> {
            scan(self.0.to_str().unwrap()).unwrap()
        }
    }

    impl Drop for FakeSys {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn server() -> FakeSys {
        let sys = FakeSys::new("server");
        sys.disk(
            "sda",
            "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0",
            &[
                ("size", b"1953525168\n"),
                ("removable", b"0\n"),
                ("queue/rotational", b"1\n"),
                ("queue/logical_block_size", b"512\n"),
                ("device/model", b"ST1000NM0033-9ZM\n"),
                ("device/vendor", b"ATA     \n"),
                ("device/wwid", b"naa.5000c500a1b2c3d4\n"),
                // A real unit serial number VPD page: header, then the space-padded serial.
                ("device/vpd_pg80", b"\x00\x80\x00\x0c    Z1W0ABCD"),
            ],
        )
        .disk(
            "nvme0n1",
            "pci0000:00/0000:00:1d.0/0000:3b:00.0/nvme/nvme0",
            &[
                ("size", b"976773168\n"),
                ("removable", b"0\n"),
                ("queue/rotational", b"0\n"),
                ("queue/logical_block_size", b"4096\n"),
                ("device/model", b"Samsung SSD 980 PRO 500GB               \n"),
                ("device/serial", b"S5GYNX0R123456A     \n"),
                ("wwid", b"eui.002538b111b22c33\n"),
            ],
        )
        .disk(
            "sdb",
            "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0",
            &[
                ("size", b"60437492\n"),
                ("removable", b"1\n"),
                ("device/model", b"Cruzer Blade    \n"),
                ("device/vendor", b"SanDisk \n"),
            ],
        )
        .disk("loop0", "virtual", &[("size", b"2048\n")])
        .disk(
            "sr0",
            "pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0",
            &[("size", b"2097151\n")],
        )
        .disk("dm-0", "virtual", &[("size", b"2048\n")]);
        sys
    }

    #[test]
    fn scans_disks_from_sysfs() {
        let sys = server();
        let disks = sys.scan();
        let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["nvme0n1", "sda", "sdb"], "loop, sr and dm are never candidates");
        let sda = &disks[1];
        assert_eq!(sda.size, 1953525168 * 512);
        assert_eq!(sda.transport, "sata");
        assert!(sda.rotational && !sda.removable);
        assert_eq!(sda.serial, "Z1W0ABCD");
        assert_eq!(sda.vendor, "ATA");
        assert_eq!(sda.wwid, "naa.5000c500a1b2c3d4");
        let nvme = &disks[0];
        assert_eq!(nvme.transport, "nvme");
        assert_eq!(nvme.serial, "S5GYNX0R123456A");
        assert_eq!(nvme.model, "Samsung SSD 980 PRO 500GB");
        assert_eq!((disks[2].transport, disks[2].removable), ("usb", true));
    }

    #[test]
    fn selects_by_path_and_by_hints() {
        let disks = server().scan();
        let pick =
            |path: Option<&str>, h: DiskHints| select(disks.clone(), path, &h).map(|d| d.name);
        assert_eq!(pick(Some("/dev/sda"), DiskHints::default()), Ok("sda".into()));
        // A path may name removable media: the operator asked for it.
        assert_eq!(pick(Some("/dev/sdb"), DiskHints::default()), Ok("sdb".into()));
        assert_eq!(pick(None, hints(r#"{"serial":"Z1W0ABCD"}"#)), Ok("sda".into()));
        assert_eq!(pick(None, hints(r#"{"wwn":"0x5000C500A1B2C3D4"}"#)), Ok("sda".into()));
        assert_eq!(pick(None, hints(r#"{"wwn":"002538b111b22c33"}"#)), Ok("nvme0n1".into()));
        assert_eq!(
            pick(None, hints(r#"{"model":"samsung ssd 980 pro 500gb"}"#)),
            Ok("nvme0n1".into())
        );
        assert_eq!(pick(None, hints(r#"{"rotational":false}"#)), Ok("nvme0n1".into()));
        assert_eq!(pick(None, hints(r#"{"transport":"sata"}"#)), Ok("sda".into()));
        assert_eq!(pick(None, hints(r#"{"minSize":600000000000}"#)), Ok("sda".into()));
        assert_eq!(pick(None, hints(r#"{"maxSize":600000000000}"#)), Ok("nvme0n1".into()));
        assert_eq!(pick(None, hints(r#"{"removable":true}"#)), Ok("sdb".into()));
        // Hints must all match, also together with a path.
        assert!(pick(Some("/dev/sda"), hints(r#"{"serial":"S5GYNX0R123456A"}"#)).is_err());
    }

    #[test]
    fn none_or_several_is_an_error_listing_every_candidate() {
        let disks = server().scan();
        let text = select(disks.clone(), None, &DiskHints::default()).unwrap_err();
        assert!(text.starts_with("2 disks match (no hint: the only non-removable disk), give a hint that picks one: "), "{text}");
        assert!(text.contains("nvme0n1 500.1 GB nvme model \"Samsung SSD 980 PRO 500GB\" serial \"S5GYNX0R123456A\""), "{text}");
        assert!(text.contains("sda 1.0 TB sata"), "{text}");
        assert!(!text.contains('\n'));

        let nope = hints(r#"{"serial":"NOPE"}"#);
        let text = select(disks.clone(), None, &nope).unwrap_err();
        assert!(text.starts_with("no disk matches serial=\"NOPE\"; disks: nvme0n1 "), "{text}");
        assert!(text.contains("sdb 30.9 GB usb model \"Cruzer Blade\" removable"), "{text}");

        let text = select(disks.clone(), Some("/dev/sdz"), &DiskHints::default()).unwrap_err();
        assert!(text.starts_with("no disk matches /dev/sdz; disks: "), "{text}");
        let text = select(disks.clone(), Some("/dev/loop0"), &DiskHints::default()).unwrap_err();
        assert!(
            text.starts_with("no disk matches /dev/loop0"),
            "loop devices are not disks: {text}"
        );
    }

    #[test]
    fn the_only_fixed_disk_is_chosen_without_hints() {
        let sys = FakeSys::new("vm");
        sys.disk(
            "vda",
            "pci0000:00/0000:00:04.0/virtio1",
            &[("size", b"41943040\n"), ("removable", b"0\n"), ("serial", b"imprint-a\n")],
        )
        .disk(
            "sdb",
            "pci0000:00/0000:00:14.0/usb2/2-1/host6/target6:0:0/6:0:0:0",
            &[("size", b"1000\n"), ("removable", b"1\n")],
        );
        let disks = sys.scan();
        let d = select(disks.clone(), None, &DiskHints::default()).unwrap();
        assert_eq!(
            (d.name.as_str(), d.transport, d.serial.as_str()),
            ("vda", "virtio", "imprint-a")
        );
        assert_eq!(d.path(), "/dev/vda");
        let empty = FakeSys::new("empty");
        let err = select(empty.scan(), None, &DiskHints::default()).unwrap_err();
        assert_eq!(err, "no disk matches (no hint: the only non-removable disk); disks: none");
    }

    #[test]
    fn sizes_read_like_labels() {
        assert_eq!(size(500_107_862_016), "500.1 GB");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(2_000_000_000_000), "2.0 TB");
        assert_eq!(size(1_999), "1.9 kB");
    }
}
