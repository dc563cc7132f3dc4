//! `imprint write` (build/init in tool mode) against real loop devices that these tests
//! attach (`losetup --direct-io=on`, 512- and 4096-byte logical blocks, sizes that are not
//! whole MiB): round trips compared with `cmp`, and faults that must leave the device's
//! first and last MiB zeroed (or, when refused up front, the device untouched).
//!
//! Needs root (losetup): run through `make test`.

use imprint_e2e::faults::{dropping_proxy, read_request, send, FaultServer};
use imprint_e2e::loopdev::{scratch, Loop, JUNK, MIB};
use imprint_e2e::nginx::Nginx;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// An OS-like image: runs of random bytes, text, and long runs of zeros; `len` bytes.
fn os_like(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let run = (next() % (300 * 1024)) as usize + 1;
        match next() % 4 {
            0 => out.extend(std::iter::repeat(0u8).take(run * 3)),
            1 => out.extend((0..run).map(|_| next() as u8)),
            _ => out.extend(b"imprint writes disks; ".iter().cycle().take(run)),
        }
    }
    out.truncate(len);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child =
        Command::new("gzip").args(["-c", "-6"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `imprint write` with `args`, standard input from `stdin` if given.
fn imprint_write(args: &[&str], stdin: Option<&Path>) -> Run {
    let mut cmd = Command::new(imprint_e2e::artifact("build/init"));
    cmd.arg("write").args(args);
    cmd.stdin(match stdin {
        Some(p) => Stdio::from(File::open(p).unwrap()),
        None => Stdio::null(),
    });
    let out = cmd.output().expect("run imprint");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_ok(run: &Run) {
    assert_eq!(run.code, 0, "imprint write failed: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("wrote "), "{}", run.stdout);
}

/// A failure with one line on stderr that contains `needle`.
fn assert_fails(run: &Run, needle: &str) {
    assert_ne!(run.code, 0, "imprint write succeeded: {}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "one line on stderr: {}", run.stderr);
    assert!(run.stderr.contains(needle), "stderr lacks {needle:?}: {}", run.stderr);
}

fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, data).unwrap();
    path
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn raw_and_gzip_images_round_trip_on_512_and_4096_byte_blocks() {
    for sector in [512u32, 4096] {
        // 7 MiB + 12 KiB: not a whole number of MiB.
        let dev = Loop::attach(&format!("rt{sector}"), 7 * MIB + 12 * 1024, sector, false);
        let dir = &dev.dir;
        // Lengths that are not whole blocks exercise the buffered final partial block.
        let image = os_like(5 * MIB + 1234, sector as u64);
        let raw = write_file(dir, "image.raw", &image);
        let gz = write_file(dir, "image.raw.gz", &gzip(&image));

        assert_ok(&imprint_write(&[raw.to_str().unwrap(), &dev.dev], None));
        dev.assert_holds(&raw);

        let run = imprint_write(&[gz.to_str().unwrap(), &dev.dev, "--size", &image.len().to_string()], None);
        assert_ok(&run);
        assert!(run.stdout.contains("gzip, 1 member"), "{}", run.stdout);
        dev.assert_holds(&raw);

        // From standard input, size unknown, without the sparse shortcut.
        assert_ok(&imprint_write(&["-", &dev.dev, "--no-sparse"], Some(&gz)));
        dev.assert_holds(&raw);
    }
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn multi_member_gzip_and_long_zero_runs_round_trip() {
    let dev = Loop::attach("multi", 9 * MIB + 4096, 4096, false);
    let dir = &dev.dir;
    let (a, b) = (os_like(2 * MIB + 77, 1), os_like(MIB / 2 + 5, 2));
    // Long zero runs: 3 MiB of zeros between data, and the image ends with zeros, over
    // a device full of junk: the zeroed ranges must read back as zeros.
    let mut image = a.clone();
    image.extend(std::iter::repeat(0u8).take(3 * MIB));
    image.extend(&b);
    image.extend(std::iter::repeat(0u8).take(2 * MIB + 100));
    let raw = write_file(dir, "image.raw", &image);
    let mut stream = gzip(&image[..a.len() + 3 * MIB]);
    stream.extend(gzip(&image[a.len() + 3 * MIB..]));
    stream.extend(gzip(b""));
    let gz = write_file(dir, "multi.gz", &stream);

    let run = imprint_write(&[gz.to_str().unwrap(), &dev.dev], None);
    assert_ok(&run);
    assert!(run.stdout.contains("3 members"), "{}", run.stdout);
    dev.assert_holds(&raw);
    let zeroed: u64 = run.stdout.split("; ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(zeroed >= 5 * MIB as u64, "zero runs were written, not zeroed: {}", run.stdout);
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn a_regular_file_target_gets_exactly_the_image() {
    let dir = scratch("file");
    let image = os_like(3 * MIB + 999, 5);
    let raw = write_file(&dir, "image.raw", &image);
    let gz = write_file(&dir, "image.gz", &gzip(&image));
    let target = dir.join("out.img");
    assert_ok(&imprint_write(&[gz.to_str().unwrap(), target.to_str().unwrap()], None));
    assert_eq!(fs::read(&target).unwrap(), image);
    let _ = raw;
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn the_partition_table_is_re_read_and_its_nodes_appear() {
    let dev = Loop::attach("parts", 8 * MIB, 512, true);
    let mut image = os_like(6 * MIB, 9);
    // An MBR with one Linux partition: LBA 2048 (1 MiB), 4 MiB long.
    image[..512].fill(0);
    let entry = &mut image[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&8192u32.to_le_bytes());
    image[510] = 0x55;
    image[511] = 0xAA;
    let raw = write_file(&dev.dir, "image.raw", &image);
    let run = imprint_write(&[raw.to_str().unwrap(), &dev.dev], None);
    assert_ok(&run);
    // The re-read ran (a device without partition support reports none). Whether the
    // kernel finds the partition depends on its CONFIG_MSDOS_PARTITION (this machine's
    // host kernel has none); the count imprint reports must match the nodes in /dev.
    let nodes = (1..=4).filter(|n| Path::new(&format!("{}p{n}", dev.dev)).exists()).count();
    assert!(run.stdout.contains(&format!("; {nodes} partitions")), "{nodes} nodes: {}", run.stdout);
    dev.assert_holds(&raw);
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn with_a_partition_in_use_the_new_table_is_set_one_partition_at_a_time() {
    let dev = Loop::attach("busy", 16 * MIB, 512, true);
    // The new table (GPT): partition 1 where the old one is, partition 2 new.
    let image = write_file(&dev.dir, "image.raw", &os_like(12 * MIB, 5));
    let mut sfdisk = Command::new("sfdisk").args(["--quiet"]).arg(&image).stdin(Stdio::piped()).spawn().unwrap();
    let table = "label: gpt\nstart=2048, size=4096, type=L\nstart=6144, size=8192, type=L\n";
    sfdisk.stdin.take().unwrap().write_all(table.as_bytes()).unwrap();
    assert!(sfdisk.wait().unwrap().success(), "sfdisk");
    // The old partition 1 (addpart: BLKPG, whatever the kernel's partition parsers), held
    // open: the kernel refuses to re-read the disk's table (EBUSY).
    let added = Command::new("addpart").args([&dev.dev, "1", "2048", "4096"]).status().unwrap();
    assert!(added.success(), "addpart");
    let part = |n: u32, what: &str| {
        let name = dev.dev.trim_start_matches("/dev/");
        fs::read_to_string(format!("/sys/block/{name}/{name}p{n}/{what}")).map(|v| v.trim().to_string())
    };
    assert!(part(2, "size").is_err(), "no partition 2 before the write");
    let mut holder = Command::new("sleep").arg("60").stdin(File::open(format!("{}p1", dev.dev)).unwrap()).spawn().unwrap();
    let run = imprint_write(&[image.to_str().unwrap(), &dev.dev], None);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_ok(&run);
    assert!(run.stdout.contains("; 2 partitions, set one by one (1 in use left unchanged)"), "{}", run.stdout);
    assert_eq!((part(2, "start").unwrap(), part(2, "size").unwrap()), ("6144".into(), "8192".into()));
    assert!(Path::new(&format!("{}p2", dev.dev)).exists(), "the new partition's node");
    dev.assert_holds(&image);
}

/// A device and a good gzip image of `len` bytes for the fault tests.
fn fault_setup(name: &str, len: usize) -> (Loop, Vec<u8>, Vec<u8>) {
    let dev = Loop::attach(name, 6 * MIB + 8192, 4096, false);
    let image = os_like(len, 3);
    let gz = gzip(&image);
    (dev, image, gz)
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn corrupt_gzip_streams_leave_the_ends_zeroed() {
    let (dev, _, good) = fault_setup("gzfaults", 4 * MIB + 100);
    let n = good.len();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    cases.push(("truncated", good[..n * 2 / 3].to_vec(), "ends early"));
    cases.push(("truncated trailer", good[..n - 3].to_vec(), "ends early"));
    let mut crc = good.clone();
    crc[n - 8] ^= 0x55;
    cases.push(("CRC mismatch", crc, "CRC-32"));
    let mut isize = good.clone();
    isize[n - 4] ^= 0x01;
    cases.push(("ISIZE mismatch", isize, "the trailer says"));
    let mut garbage = good.clone();
    garbage.extend_from_slice(b"\0\0\0\0garbage");
    cases.push(("trailing garbage", garbage, "trailing garbage"));
    for (what, stream, needle) in cases {
        fs::write(dev.dir.join("disk"), vec![JUNK; 6 * MIB + 8192]).unwrap();
        let gz = write_file(&dev.dir, "bad.gz", &stream);
        let run = imprint_write(&[gz.to_str().unwrap(), &dev.dev], None);
        assert_fails(&run, needle);
        dev.assert_ends_zeroed(what);
    }
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn a_sha256_mismatch_leaves_the_ends_zeroed() {
    let (dev, image, gz) = fault_setup("sha", 3 * MIB);
    let gz = write_file(&dev.dir, "image.gz", &gz);
    let wrong = "0".repeat(64);
    assert_fails(&imprint_write(&[gz.to_str().unwrap(), &dev.dev, "--sha256", &wrong], None), "sha256");
    dev.assert_ends_zeroed("sha256 mismatch");
    // The right digest passes, proving the check compares the raw image.
    let out = Command::new("sha256sum")
        .stdin(Stdio::from(File::open(write_file(&dev.dir, "raw", &image)).unwrap()))
        .output()
        .unwrap();
    let right = String::from_utf8(out.stdout).unwrap()[..64].to_string();
    assert_ok(&imprint_write(&[gz.to_str().unwrap(), &dev.dev, "--sha256", &right], None));
    dev.assert_holds(&dev.dir.join("raw"));
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn an_image_bigger_than_the_device_is_refused() {
    let (dev, image, gz) = fault_setup("big", 7 * MIB);
    let raw = write_file(&dev.dir, "big.raw", &image);
    let gz = write_file(&dev.dir, "big.gz", &gz);
    // Size known (a raw file's length; --size for gzip): refused before the first write.
    assert_fails(&imprint_write(&[raw.to_str().unwrap(), &dev.dev], None), "bigger than the target");
    dev.assert_untouched("known size, raw");
    assert_fails(
        &imprint_write(&[gz.to_str().unwrap(), &dev.dev, "--size", &image.len().to_string()], None),
        "bigger than the target",
    );
    dev.assert_untouched("known size, gzip");
    // Size unknown: stopped at the first byte past the end, ends zeroed.
    assert_fails(&imprint_write(&[gz.to_str().unwrap(), &dev.dev], None), "past the end");
    dev.assert_ends_zeroed("unknown size, gzip");
    fs::write(dev.dir.join("disk"), vec![JUNK; 6 * MIB + 8192]).unwrap();
    assert_fails(&imprint_write(&["-", &dev.dev], Some(&raw)), "past the end");
    dev.assert_ends_zeroed("unknown size, raw from standard input");
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn a_device_held_open_elsewhere_is_refused_untouched() {
    let (dev, _, gz) = fault_setup("busy", MIB);
    let gz = write_file(&dev.dir, "image.gz", &gz);
    // O_EXCL on a block device claims it, as a mount or an md array would (std has no
    // name for the flag: 0o200 on x86_64 Linux).
    let holder = OpenOptions::new().read(true).custom_flags(0o200).open(&dev.dev).unwrap();
    assert_fails(&imprint_write(&[gz.to_str().unwrap(), &dev.dev], None), "in use");
    drop(holder);
    dev.assert_untouched("busy device");
    assert_ok(&imprint_write(&[gz.to_str().unwrap(), &dev.dev], None));
}

#[test]
fn usage_errors_are_one_line_and_exit_64() {
    for args in [&["only-one"][..], &["a", "b", "--sha256", "xyz"], &["a", "b", "--fast"]] {
        let run = imprint_write(args, None);
        assert_eq!(run.code, 64, "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains("usage: imprint write"), "{}", run.stderr);
    }
    let help = Command::new(imprint_e2e::artifact("build/init")).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("write <image> <device>"));
}

#[test]
fn a_missing_image_is_one_clear_line() {
    let run = imprint_write(&["/nonexistent/imi.img", "/nonexistent/out"], None);
    assert_fails(&run, "opening /nonexistent/imi.img");
}

#[test]
#[ignore = "needs root, loop devices and nginx: run make test"]
fn a_gzip_image_from_nginx_round_trips_and_a_dropped_connection_resumes() {
    let dev = Loop::attach("http", 7 * MIB + 4096, 512, false);
    let image = os_like(5 * MIB + 777, 11);
    let raw = write_file(&dev.dir, "image.raw", &image);
    let nginx = Nginx::start("imi-write");
    fs::write(nginx.www().join("image.raw.gz"), gzip(&image)).unwrap();

    // Straight from nginx.
    assert_ok(&imprint_write(&[&nginx.url("/image.raw.gz"), &dev.dev], None));
    dev.assert_holds(&raw);

    // Through a proxy that cuts the first answer a third of the way in: the client resumes
    // with Range and If-Range, the inflater and hashes carry on, the disk is the image.
    fs::write(dev.dir.join("disk"), vec![JUNK; 7 * MIB + 4096]).unwrap();
    let cut = gzip(&image).len() / 3;
    let proxy = dropping_proxy(nginx.port, cut);
    assert_ok(&imprint_write(&[&proxy.url("/image.raw.gz"), &dev.dev], None));
    dev.assert_holds(&raw);
    let requests = proxy.requests();
    assert_eq!(requests.len(), 2, "one resume");
    assert!(requests[1].header("range").is_some_and(|r| r.starts_with("bytes=")), "{:?}", requests[1].head);
}

#[test]
#[ignore = "needs root and loop devices: run make test"]
fn an_image_that_changes_mid_stream_fails_with_the_ends_zeroed() {
    let (dev, _, gz) = fault_setup("changed", 4 * MIB + 100);
    let half = gz.len() / 2;
    // The first answer drops halfway; the resume gets a 200 (a different resource) instead
    // of the 206 it asked for with If-Range: resuming cannot continue the same stream.
    let server = FaultServer::start(move |n, stream, log| {
        read_request(stream, log);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"v{n}\"\r\n\r\n", gz.len());
        send(stream, head.as_bytes());
        send(stream, if n == 0 { &gz[..half] } else { &gz[..] });
    });
    fs::write(dev.dir.join("disk"), vec![JUNK; 6 * MIB + 8192]).unwrap();
    let run = imprint_write(&[&server.url("/image.gz"), &dev.dev], None);
    assert_fails(&run, "changed");
    dev.assert_ends_zeroed("a resource that changed mid-stream");
}
