//! `imprint capture` (build/init in tool mode) and the readImage plan, end to end: a loop
//! device holding a real ext4 filesystem is captured to the plunder-compatible receiver
//! (multipart, chunked) and to nginx (WebDAV PUT), then written with `imprint write` onto a
//! second loop device: both devices must be byte-identical, and the reported SHA-256 that
//! of `sha256sum`. Servers that refuse (413), fail (500) or reset mid-upload give one clear
//! line and a non-zero exit, and the source is never written. Last, a QEMU guest captures
//! its virtio disk to the test site's receiver.
//!
//! Needs root (losetup, namespaces), mkfs.ext4, nginx, QEMU: run through `make test`.

use imprint_e2e::artifact;
use imprint_e2e::loopdev::{scratch, Loop, MIB};
use imprint_e2e::netns::temp_dir;
use imprint_e2e::nginx::Nginx;
use imprint_e2e::receiver::{Behaviour, Receiver};
use imprint_e2e::site::Site;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Not a whole number of MiB, so the last O_DIRECT read is a short one.
const DISK: usize = 20 * MIB + 8192;
const MAC: &str = "52:54:00:13:50:01";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn imprint(args: &[&str]) -> Run {
    let out = Command::new(artifact("build/init")).args(args).output().expect("run imprint");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn sha256_hex(path: &str) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// A loop device holding an ext4 filesystem with files in it (text, noise, a binary),
/// the rest of the device left as the filesystem leaves it.
fn filesystem_device(name: &str, sector: u32) -> Loop {
    let dev = Loop::attach(name, DISK, sector, false);
    let files = dev.dir.join("files");
    std::fs::create_dir_all(files.join("etc")).unwrap();
    std::fs::write(files.join("etc/motd"), "captured by imprint\n".repeat(5000)).unwrap();
    let mut x = 0x2545f4914f6cdd1du64;
    let noise: Vec<u8> = (0..3 * MIB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(files.join("noise.bin"), noise).unwrap();
    std::fs::copy(artifact("build/init"), files.join("init")).unwrap();
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "nodiscard", "-d"])
        .arg(&files)
        .arg(&dev.dev)
        .status()
        .expect("run mkfs.ext4 (e2fsprogs)");
    assert!(status.success(), "mkfs.ext4 failed");
    dev
}

/// Writes `image` onto a fresh second device with `imprint write`; asserts that it then
/// equals `source`, every byte (cmp of the whole devices).
fn assert_round_trip(name: &str, image: &Path, source: &Loop, sector: u32) {
    let target = Loop::attach(name, DISK, sector, false);
    let run = imprint(&["write", image.to_str().unwrap(), &target.dev]);
    assert_eq!(run.code, 0, "imprint write: {}{}", run.stdout, run.stderr);
    let status = Command::new("cmp").arg(&source.dev).arg(&target.dev).status().unwrap();
    assert!(status.success(), "{} and {} differ after the round trip", source.dev, target.dev);
}

fn assert_captured(run: &Run, sha: &str) {
    assert_eq!(run.code, 0, "imprint capture: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(&format!("captured {DISK} bytes")), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("sha256 {sha}")), "reported sha256 is not sha256sum's {sha}: {}", run.stdout);
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn multipart_capture_to_the_receiver_round_trips_byte_for_byte() {
    let source = filesystem_device("capture-multipart", 512);
    let sha = sha256_hex(&source.dev);
    let receiver = Receiver::start("127.0.0.1:0");
    let url = format!("http://127.0.0.1:{}/image", receiver.port);
    let run = imprint(&["capture", &source.dev, &url, "--name", MAC]);
    assert_captured(&run, &sha);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].method == "POST" && requests[0].chunked, "a chunked POST");
    let uploads = receiver.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!((uploads[0].field.as_str(), uploads[0].file_name.as_str()), ("BootyImage", "52:54:00:13:50:01.zmg"));
    let dir = scratch("capture-multipart-out");
    let saved = &receiver.save_uploads(&dir)[0];
    assert!(Command::new("gzip").arg("-t").arg(saved).status().unwrap().success(), "gzip -t accepts the capture");
    assert!(uploads[0].data.len() < DISK / 2, "compressed: {} bytes", uploads[0].data.len());
    assert_round_trip("capture-multipart-target", saved, &source, 4096);
    assert_eq!(sha256_hex(&source.dev), sha, "the source is unchanged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root, loop devices and nginx: run make test"]
fn put_capture_to_nginx_round_trips_gzip_and_raw() {
    let source = filesystem_device("capture-put", 4096);
    let sha = sha256_hex(&source.dev);
    let nginx = Nginx::start("capture-put");
    let gz_url = format!("http://127.0.0.1:{}/dav/disk.zmg", nginx.port);
    assert_captured(&imprint(&["capture", &source.dev, &gz_url, "--put", "--level", "6"]), &sha);
    let stored = nginx.dir.join("www/dav/disk.zmg");
    assert!(Command::new("gzip").arg("-t").arg(&stored).status().unwrap().success(), "gzip -t accepts the capture");
    assert_round_trip("capture-put-target", &stored, &source, 512);

    let raw_url = format!("http://127.0.0.1:{}/dav/disk.img", nginx.port);
    assert_captured(&imprint(&["capture", &source.dev, &raw_url, "--put", "--raw"]), &sha);
    let raw = nginx.dir.join("www/dav/disk.img");
    assert_eq!(sha256_hex(raw.to_str().unwrap()), sha, "a raw capture is the disk itself");
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn refusals_failures_and_resets_are_one_line_and_leave_the_source_alone() {
    let source = filesystem_device("capture-faults", 512);
    let sha = sha256_hex(&source.dev);
    let receiver = Receiver::start("127.0.0.1:0");
    let url = format!("http://127.0.0.1:{}/image", receiver.port);
    for (behaviour, needle) in [
        (Behaviour::TooLarge, "413 Payload Too Large"),
        (Behaviour::ServerError, "500 Internal Server Error"),
        (Behaviour::ResetAfter(2 * MIB), "sending the request to"),
    ] {
        receiver.set(behaviour);
        // Raw, so that 2 MiB of body is sent well before the end.
        let run = imprint(&["capture", &source.dev, &url, "--raw"]);
        assert_ne!(run.code, 0, "{behaviour:?}: imprint capture succeeded: {}", run.stdout);
        assert_eq!(run.stderr.lines().count(), 1, "{behaviour:?}: one line on stderr: {}", run.stderr);
        assert!(
            run.stderr.starts_with("imprint capture: ") && run.stderr.contains(needle),
            "{behaviour:?}: {}",
            run.stderr
        );
    }
    assert_eq!(sha256_hex(&source.dev), sha, "the source is unchanged");

    // A mounted device is refused before anything is sent.
    let mnt = scratch("capture-mnt");
    assert!(Command::new("mount").args(["-o", "ro"]).arg(&source.dev).arg(&mnt).status().unwrap().success());
    let run = imprint(&["capture", &source.dev, &url]);
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("is in use"), "{}", run.stderr);
    let usage = imprint(&["capture", &source.dev]);
    assert_eq!(usage.code, 64);
    assert!(usage.stderr.contains("usage: imprint capture"), "{}", usage.stderr);
}

#[test]
#[ignore = "needs root, QEMU, dnsmasq, nginx and the build artifacts: run `make test`"]
fn a_guest_captures_its_disk_to_the_site() {
    let site = Site::new("imncq", "10.213.50");
    let to = format!("http://10.213.50.1:{}/image", site.status_port);
    let plan = format!(
        r#"{{"action":"readImage","compressed":true,"sourceDevice":"/dev/vda","desintationAddress":"{to}","growDisk":false,"growPartition":0,"lvmRootName":"","dryRun":false,"dropToShell":false,"wipeDevice":true,"statusURL":"{}"}}"#,
        site.status_url()
    );
    std::fs::write(site.www().join("plans/52-54-00-13-50-01.bty"), plan).unwrap();
    let disks = temp_dir("imncq-disks");
    let disk = disks.join("a.img");
    // Text, a zero run and a pattern: 12 MiB + 4 KiB.
    let mut data: Vec<u8> = "a golden machine's disk\n".repeat(200_000).into_bytes();
    data.resize(6 * MIB, 0);
    data.extend((0..6 * MIB + 4096).map(|i| (i / 512 % 251) as u8));
    std::fs::write(&disk, &data).unwrap();
    let sha = sha256_hex(disk.to_str().unwrap());

    let mut guest = site.boot(MAC, &[&disk], "", false);
    let at = guest
        .expect("imprint: plan http://10.213.50.1/plans/52-54-00-13-50-01.bty: readImage", Duration::from_secs(60));
    let at = guest.expect_from(at, "note: wipeDevice ignored: a capture only reads the disk", Duration::from_secs(5));
    let at =
        guest.expect_from(at, &format!("imprint: captured {} bytes of /dev/vda", data.len()), Duration::from_secs(240));
    guest.expect_from(at, &format!("sha256 {sha}"), Duration::from_secs(5));
    assert!(guest.wait_exit(Duration::from_secs(60)).success());

    let saved = site.dir.join("52:54:00:13:50:01.zmg");
    let out = Command::new("gzip").arg("-dc").arg(&saved).output().unwrap();
    assert!(out.status.success(), "gzip -d of the upload");
    assert!(out.stdout == data, "the upload inflates to the guest's disk");
    assert_eq!(std::fs::read(&disk).unwrap(), data, "the capture wrote nothing (wipeDevice ignored)");
    let reports = site.reports();
    assert!(reports.iter().any(|r| r.contains("\"phase\":\"capturing\"")), "{reports:?}");
    let last = reports.last().unwrap();
    assert!(last.contains("\"phase\":\"done\"") && last.contains(&format!("\"sha256\":\"{sha}\"")), "{last}");
    let _ = std::fs::remove_dir_all(&disks);
}

#[test]
#[ignore = "needs root, QEMU, dnsmasq, nginx and the build artifacts: run `make test`"]
fn a_dry_run_capture_says_what_it_would_send_and_sends_nothing() {
    let site = Site::new("imncd", "10.213.51");
    let to = format!("http://10.213.51.1:{}/image", site.status_port);
    let plan = format!(
        r#"{{"action":"readImage","compressed":false,"sourceDevice":"/dev/vda","desintationAddress":"{to}","dryRun":true,"statusURL":"{}"}}"#,
        site.status_url()
    );
    std::fs::write(site.www().join("plans/default.bty"), plan).unwrap();
    let disks = temp_dir("imncd-disks");
    let disk = disks.join("a.img");
    std::fs::write(&disk, vec![0x5a; 4 * MIB]).unwrap();

    let mut guest = site.boot("52:54:00:13:51:01", &[&disk], "", false);
    let line = format!("imprint: dry run: would capture /dev/vda ({} bytes) to {to} as raw (multipart POST)", 4 * MIB);
    guest.expect(&line, Duration::from_secs(60));
    assert!(guest.wait_exit(Duration::from_secs(60)).success());
    let reports = site.reports();
    assert!(reports.iter().any(|r| r.contains("\"phase\":\"dry-run\"")), "{reports:?}");
    assert!(!site.dir.join("52:54:00:13:51:01.img").exists(), "nothing was uploaded");
    assert_eq!(std::fs::read(&disk).unwrap(), vec![0x5a; 4 * MIB], "nothing was written");
    let _ = std::fs::remove_dir_all(&disks);
}
