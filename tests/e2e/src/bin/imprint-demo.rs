//! `make demo`: a whole provisioning run on this machine, shown as it happens.
//!
//! A network namespace plays the provisioning network: dnsmasq hands out addresses, nginx
//! serves a plan and the gzip OS image, a receiver collects status reports. A QEMU guest
//! with a blank disk boots our kernel and initramfs and provisions the disk; then the
//! guest boots a second time, from that disk alone. Needs root (namespaces).

use imprint_e2e::netns::temp_dir;
use imprint_e2e::site::Site;
use imprint_e2e::{artifact, Guest};
use std::process::Command;
use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_secs(300);

fn say(what: &str) {
    println!("\n\x1b[1m==> {what}\x1b[0m");
}

fn main() {
    let started = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let mut lap = Instant::now();
    let mut mark = |name: &'static str, lap: &mut Instant| {
        timings.push((name, lap.elapsed()));
        *lap = Instant::now();
    };

    say("setting up the provisioning network: namespace imndemo, dnsmasq, nginx, status receiver");
    let site = Site::new("imndemo", "10.213.40");
    let image = artifact("build/demo/os.img");
    let gz = Command::new("gzip").args(["-c", "-6"]).arg(&image).output().expect("gzip");
    std::fs::write(site.www().join("os.img.gz"), &gz.stdout).unwrap();
    let plan = format!(
        r#"{{"action":"writeImage","compressed":true,"sourceImage":"{}","destinationDevice":"/dev/vda","growPartition":2,"statusURL":"{}","hostname":"demo-node","files":[{{"path":"/etc/motd","content":"provisioned by imprint\n"}}]}}"#,
        site.url("os.img.gz"),
        site.status_url()
    );
    std::fs::write(site.www().join("plans/default.bty"), &plan).unwrap();
    println!("image  {} ({} bytes, {} gzip'ed)", site.url("os.img.gz"), std::fs::metadata(&image).unwrap().len(), gz.stdout.len());
    println!("plan   {}: {plan}", site.url("plans/default.bty"));
    let disks = temp_dir("imndemo-disk");
    let disk = disks.join("disk.img");
    std::fs::File::create(&disk).unwrap().set_len(128 << 20).unwrap();
    println!("disk   {} (128 MiB, blank)", disk.display());
    mark("set-up", &mut lap);

    say("first boot: imprint provisions the blank disk (64 MiB guest, serial console below)");
    let mut guest = site.boot("52:54:00:13:40:01", &[&disk], "", true);
    guest.expect("imprint: rebooting", STEP);
    let status = guest.wait_exit(STEP);
    mark("provisioning boot", &mut lap);
    if guest.transcript().contains("FAILED") || !status.success() {
        eprintln!("\nimprint-demo: the provisioning run failed (see above)");
        std::process::exit(1);
    }

    say("second boot: from the provisioned disk alone (BIOS, extlinux, its kernel, its root)");
    let mut booted = Guest::boot_disk_echo(&disk, true);
    booted.expect("imprint-demo: booted from the provisioned disk", STEP);
    booted.wait_exit(STEP);
    mark("boot from the disk", &mut lap);

    say("status reports the server received");
    for report in site.reports() {
        println!("{report}");
    }
    say("timings");
    for (name, took) in &timings {
        println!("{name:<20} {:>6.1} s", took.as_secs_f64());
    }
    println!("{:<20} {:>6.1} s", "total", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&disks);
}
