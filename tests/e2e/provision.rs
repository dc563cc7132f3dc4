//! The whole provisioning run, end to end: a QEMU guest (our kernel and initramfs) on a tap
//! in a test namespace gets a lease from dnsmasq, fetches its plan from nginx, streams the
//! gzip OS image onto the disk the plan's hints pick among two, reports each phase to a
//! status server, and reboots; then the provisioned disk boots on its own.

use imprint_e2e::netns::temp_dir;
use imprint_e2e::site::Site;
use imprint_e2e::{artifact, find, Guest};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(60);
const WRITE: Duration = Duration::from_secs(240);
const MIB: usize = 1 << 20;
/// The guest's disks: bigger than the 64 MiB image, not a whole number of MiB.
const DISK_BYTES: usize = 80 * MIB + 4096;

/// A disk file filled with a recognizable pattern (so zeroing and writing both show).
fn patterned_disk(path: &Path) -> Vec<u8> {
    let data: Vec<u8> = (0..DISK_BYTES).map(|i| (i / 4096 % 251) as u8 | 1).collect();
    std::fs::write(path, &data).unwrap();
    data
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// The OS image, gzip'ed into the site's www; returns the raw image and its sha256.
fn serve_image(site: &Site) -> (Vec<u8>, String) {
    let image = artifact("build/demo/os.img");
    let gz = Command::new("gzip").args(["-c", "-1"]).arg(&image).output().unwrap();
    std::fs::write(site.www().join("os.img.gz"), gz.stdout).unwrap();
    (std::fs::read(&image).unwrap(), sha256_hex(&image))
}

fn phases(reports: &[String]) -> Vec<String> {
    reports
        .iter()
        .map(|r| {
            let at = r.find("\"phase\":\"").expect("a phase") + 9;
            r[at..].split('"').next().unwrap().to_string()
        })
        .collect()
}

#[test]
#[ignore = "needs root, QEMU, dnsmasq, nginx and the build artifacts: run `make test`"]
fn write_image_onto_the_disk_the_hints_pick_then_boot_it() {
    let site = Site::new("imnpw", "10.213.30");
    let (image, sha) = serve_image(&site);
    let mac = "52:54:00:13:30:01";
    let plan = format!(
        r#"{{"action":"writeImage","compressed":true,"sourceImage":"{}","destinationDevice":"","growDisk":false,"growPartition":2,"lvmRootName":"","dryRun":false,"dropToShell":false,"wipeDevice":false,"sha256":"{sha}","disk":{{"serial":"IMPRINT-B"}},"statusURL":"{}","address":"10.213.30.42/24","gateway":"10.213.30.1","nameserver":"10.213.30.53","hostname":"node-42","files":[{{"path":"/etc/motd","content":"provisioned by imprint\\n"}},{{"path":"/root/.ssh/authorized_keys","base64":"c3NoLWVkMjU1MTkgQUFBQSB0ZXN0Cg==","mode":"0600"}}]}}"#,
        site.url("os.img.gz"),
        site.status_url()
    );
    std::fs::write(site.www().join("plans/52-54-00-13-30-01.bty"), plan).unwrap();
    let disks = temp_dir("imnpw-disks");
    let (a, b) = (disks.join("a.img"), disks.join("b.img"));
    let before_a = patterned_disk(&a);
    patterned_disk(&b);

    let mut guest = site.boot(mac, &[&a, &b], "", false);
    let at = guest.expect("imprint: network up", BOOT);
    let at = guest.expect_from(at, "imprint: plan http://10.213.30.1/plans/52-54-00-13-30-01.bty: writeImage", BOOT);
    let at = guest.expect_from(at, "imprint: disk vdb ", BOOT);
    let at = guest.expect_from(at, "serial \"IMPRINT-B\"", BOOT);
    let at = guest.expect_from(at, &format!("imprint: wrote {} bytes of {}", image.len(), site.url("os.img.gz")), WRITE);
    let at = guest.expect_from(at, "imprint: partition 2 grown to the end of /dev/vdb; backup GPT at the end", BOOT);
    let at = guest.expect_from(at, "imprint: ext4 on /dev/vdb2 grown to ", BOOT);
    let at = guest.expect_from(at, "imprint: writing files into the deployed system on /dev/vdb2", BOOT);
    let at = guest.expect_from(at, "/root/.ssh/authorized_keys (22 bytes, mode 600)", BOOT);
    guest.expect_from(at, "imprint: rebooting", BOOT);
    assert!(guest.wait_exit(BOOT).success());
    assert!(!guest.transcript().contains("FAILED"), "{}", guest.transcript());

    // Disk B holds the image byte for byte but for the partition table (fitted to the disk)
    // and the root filesystem (grown, and given the plan's files): /boot, from 1 MiB to
    // 17 MiB, is compared as it is; the table is checked by sfdisk.
    let after_b = std::fs::read(&b).unwrap();
    assert!(after_b[MIB..17 * MIB] == image[MIB..17 * MIB], "disk B holds the image's /boot, byte for byte");
    let verify = Command::new("sfdisk").arg("--verify").arg(&b).output().unwrap();
    assert!(verify.status.success(), "sfdisk --verify: {}", String::from_utf8_lossy(&verify.stdout));
    let table = String::from_utf8_lossy(&Command::new("sfdisk").arg("-d").arg(&b).output().unwrap().stdout).into_owned();
    let last_lba = (DISK_BYTES / 512 - 34) as u64;
    assert!(table.contains(&format!("start=       34816, size={:>12}", last_lba - 34816 + 1)), "partition 2 fills the disk:\n{table}");
    assert_eq!(std::fs::read(&a).unwrap(), before_a, "disk A, which the hints did not pick, is untouched");

    let reports = site.reports();
    let phases = phases(&reports);
    assert_eq!(phases.first().map(String::as_str), Some("starting"), "{reports:?}");
    assert!(phases.contains(&"writing".to_string()), "{reports:?}");
    assert_eq!(phases.last().map(String::as_str), Some("done"), "{reports:?}");
    let last = reports.last().unwrap();
    assert!(last.contains(&format!("\"sha256\":\"{sha}\"")) && last.contains("\"mac\":\"52:54:00:13:30:01\""), "{last}");

    // The provisioned disk boots on its own (BIOS, extlinux, our kernel, its ext4 root).
    let mut booted = Guest::boot_disk(&b);
    let at = booted.expect("imprint-demo: booted from the provisioned disk: host node-42", BOOT);
    let at = booted.expect_from(at, "provisioned by imprint", BOOT);
    let at = booted.expect_from(at, "-rw-------", BOOT);
    let at = booted.expect_from(at, "/root/.ssh/authorized_keys", BOOT);
    // The plan's static network, for the interface with this machine's MAC.
    let at = booted.expect_from(at, "MACAddress=52:54:00:13:30:01", BOOT);
    let at = booted.expect_from(at, "Address=10.213.30.42/24", BOOT);
    let at = booted.expect_from(at, "Gateway=10.213.30.1", BOOT);
    let at = booted.expect_from(at, "DNS=10.213.30.53", BOOT);
    // The root grew from 47 MiB (the image's) to fill its 63 MiB partition.
    let start = booted.expect_from(at, "imprint-demo: root filesystem ", BOOT);
    booted.expect_from(start, " KiB", BOOT);
    let kib: u64 = booted.transcript()[start..].split(' ').next().unwrap().parse().unwrap();
    assert!(kib > 55_000, "the root filesystem did not grow: {kib} KiB");
    assert!(booted.wait_exit(BOOT).success());
    let _ = std::fs::remove_dir_all(&disks);
}

#[test]
#[ignore = "needs root, QEMU, dnsmasq, nginx and the build artifacts: run `make test`"]
fn default_plan_with_a_wrong_sha256_fails_safely_and_reports_it() {
    // The server is named, not numbered: every URL (plan, image, status) goes through the
    // lease's DNS server (dnsmasq) and imprint's resolver.
    let site = Site::with_dns("imnpf", "10.213.31", "provision.test");
    serve_image(&site);
    // No plan of its own for this MAC: the server's default.bty applies.
    let plan = format!(
        r#"{{"action":"writeImage","sourceImage":"{}","sha256":"{}","disk":{{"serial":"IMPRINT-A"}},"statusURL":"{}"}}"#,
        site.url("os.img.gz"),
        "00".repeat(32),
        site.status_url()
    );
    std::fs::write(site.www().join("plans/default.bty"), plan).unwrap();
    let disks = temp_dir("imnpf-disks");
    let (a, b) = (disks.join("a.img"), disks.join("b.img"));
    patterned_disk(&a);
    let before_b = patterned_disk(&b);

    let mut guest = site.boot("52:54:00:13:31:01", &[&a, &b], "", false);
    let at = guest.expect("dns       10.213.31.1", BOOT);
    let at = guest.expect_from(at, "imprint: plan http://provision.test/plans/default.bty: writeImage", BOOT);
    let at = guest.expect_from(at, "!! imprint FAILED while writing the image", WRITE);
    let at = guest.expect_from(at, "sha256", BOOT);
    guest.expect_from(at, "imprint: powering off", BOOT);
    assert!(guest.wait_exit(BOOT).success());

    // Never half-written and bootable: the first and last MiB are zero.
    let after_a = std::fs::read(&a).unwrap();
    assert!(after_a[..MIB].iter().all(|&x| x == 0), "first MiB not zeroed");
    assert!(after_a[DISK_BYTES - MIB..].iter().all(|&x| x == 0), "last MiB not zeroed");
    assert_eq!(std::fs::read(&b).unwrap(), before_b, "the other disk is untouched");

    let reports = site.reports();
    let last = reports.last().expect("reports");
    assert!(last.contains("\"phase\":\"failed\"") && last.contains("sha256"), "{reports:?}");
    assert!(find(guest.transcript().as_bytes(), b"Kernel panic").is_none());
    let _ = std::fs::remove_dir_all(&disks);
}

#[test]
#[ignore = "needs root, QEMU, dnsmasq, nginx and the build artifacts: run `make test`"]
fn a_deployed_system_that_cannot_be_finished_is_left_unbootable() {
    // The image writes and verifies, but growPartition names partition 1, which is not the
    // last: the system would not be what the plan asked for, so the disk must not boot.
    let site = Site::new("imnpg", "10.213.32");
    let (_, sha) = serve_image(&site);
    let plan = format!(
        r#"{{"action":"writeImage","sourceImage":"{}","sha256":"{sha}","growPartition":1,"statusURL":"{}"}}"#,
        site.url("os.img.gz"),
        site.status_url()
    );
    std::fs::write(site.www().join("plans/default.bty"), plan).unwrap();
    let disks = temp_dir("imnpg-disks");
    let a = disks.join("a.img");
    patterned_disk(&a);

    let mut guest = site.boot("52:54:00:13:32:01", &[&a], "", false);
    let at = guest.expect("imprint: wrote ", WRITE);
    let at = guest.expect_from(at, "!! imprint FAILED while finishing the deployed system", BOOT);
    let at = guest.expect_from(at, "growing partition 1: another partition lies after it", BOOT);
    guest.expect_from(at, "imprint: powering off", BOOT);
    assert!(guest.wait_exit(BOOT).success());

    let after = std::fs::read(&a).unwrap();
    assert!(after[..MIB].iter().all(|&x| x == 0), "first MiB not zeroed again");
    assert!(after[DISK_BYTES - MIB..].iter().all(|&x| x == 0), "last MiB not zeroed again");
    let reports = site.reports();
    let last = reports.last().expect("reports");
    assert!(last.contains("\"phase\":\"failed\"") && last.contains("growing partition 1"), "{reports:?}");
    let _ = std::fs::remove_dir_all(&disks);
}
