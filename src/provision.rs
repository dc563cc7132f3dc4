//! The provisioning run's steps, which `main.rs` calls in order: ask the server for this
//! machine's plan, choose the disk, act on it, and report to the plan's `statusURL`.

use crate::disk::select::{self, Disk};
use crate::error::Error;
use crate::http::{self, Client};
use crate::image::{capture, progress::Progress, write};
use crate::io::Read;
use crate::net::BoundClient;
use crate::plan::status::{Phase, Report};
use crate::plan::{self, Action, Plan};
use crate::sys::time;
use alloc::string::String;
use core::net::Ipv4Addr;
use core::time::Duration;

/// `{base}/{name}`, with exactly one slash between them.
pub fn join(base: &str, name: &str) -> String {
    let end = base.bytes().rposition(|b| b != b'/').map_or(0, |i| i + 1);
    text!("{}/{name}", base.get(..end).unwrap_or(base))
}

/// GETs `{server}/{aa-bb-cc-dd-ee-ff}.bty`, or `{server}/default.bty` when that is 404.
/// (Out of line: measured 240 bytes smaller than inlined into the boot.)
#[inline(never)]
pub fn fetch_plan(
    client: &mut Client,
    server: &str,
    mac: [u8; 6],
) -> Result<(String, Plan), Error> {
    let own = join(server, &plan::file_name(mac));
    let fallback = join(server, plan::DEFAULT_FILE);
    for url in [&own, &fallback] {
        let mut response = match client.get(url) {
            Err(e) if e.status == 404 => continue,
            other => other?,
        };
        // Read whole, up to one byte more than a plan may be.
        let mut body = alloc::vec![0; plan::json::MAX_INPUT + 1];
        let n = response.read_full(&mut body)?;
        let parsed = match body.get(..n).filter(|_| n <= plan::json::MAX_INPUT) {
            Some(body) => plan::parse(body),
            None => Err(String::from("the plan is larger than 1 MiB")),
        };
        return parsed.map(|plan| (url.clone(), plan)).map_err(|e| Error(text!("{url}: {e}")));
    }
    Err(Error(text!("no plan for this machine: {own} and {fallback} are both 404 Not Found")))
}

/// What the plan asks, as the console shows it.
pub fn show_plan(url: &str, plan: &Plan) {
    let capture = plan.action == Action::ReadImage;
    let action = if capture { "readImage" } else { "writeImage" };
    sayln!("imprint: plan {url}: {action}{}", if plan.flag("dryRun") { " (dry run)" } else { "" });
    if let Some(image) = plan.str("sourceImage") {
        sayln!("  image     {image}");
    }
    if let Some(to) = plan.destination() {
        sayln!("  upload    {to}");
    }
    for key in &plan.ignored {
        sayln!("  note: unknown plan key {key} ignored");
    }
    let notes = [
        (plan.flag("wipeDevice") && capture, "wipeDevice ignored: a capture only reads the disk"),
        (plan.str("lvmRootName").is_some() || plan.flag("growDisk"), "this build does not do growing LVM (growDisk, lvmRootName) yet; the plan's other steps go on"),
        (plan.flag("wipeDevice") && !capture, "this build does not do wiping the disk first (wipeDevice; the write zeroes its ends and every run of zeros anyway) yet; the plan's other steps go on"),
    ];
    for (_, note) in notes.iter().filter(|n| n.0) {
        sayln!("  note: {note}");
    }
}

/// The disk the plan means: its device path, else its hints, else the only fixed disk.
pub fn choose_disk(plan: &Plan) -> Result<Disk, Error> {
    let path = match plan.action {
        Action::WriteImage => plan.str("destinationDevice"),
        Action::ReadImage => plan.str("sourceDevice"),
    };
    let disk = select::select(select::scan("/sys")?, path, &plan.disk)?;
    sayln!("imprint: disk {disk}");
    Ok(disk)
}

/// Status reports to the plan's `statusURL`: at each phase change and every few seconds
/// during transfers. A report that fails is logged and never stops the work.
pub struct Reporter<'a> {
    /// Its own client: while an image streams, its response borrows the run's client.
    client: Client,
    /// The DHCP lease, renewed during transfers (they can outlast it).
    lease: Option<&'a mut BoundClient>,
    url: Option<String>,
    pub mac: [u8; 6],
    last: Option<Duration>,
    /// Whether the progress line can be redrawn in place.
    on_tty: bool,
}

impl<'a> Reporter<'a> {
    pub fn new(
        url: Option<&str>,
        mac: [u8; 6],
        dns_servers: &[Ipv4Addr],
        lease: Option<&'a mut BoundClient>,
    ) -> Reporter<'a> {
        // Reports are small and must not hold the work up: short timeouts, one retry.
        let options = http::Options {
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(5),
            retries: 1,
        };
        Reporter {
            client: Client::new(dns_servers.to_vec(), options),
            lease,
            url: url.map(String::from),
            mac,
            last: None,
            on_tty: crate::sys::tty::is_tty(crate::sys::fd::STDOUT),
        }
    }

    pub fn phase(&mut self, phase: Phase, message: &str) {
        self.send(Report { phase, message, ..Report::default() });
    }

    /// What a dry run would have done, on the console and as the last report.
    pub fn dry_run(&mut self, what: &str) {
        let what = text!("dry run: would {what}");
        sayln!("imprint: {what}");
        self.phase("dry-run", &what);
    }

    /// A transfer's progress hook: the progress line, the DHCP lease renewed when due, a
    /// report at most every few seconds until the last.
    pub fn progress(&mut self, phase: Phase, p: &Progress) -> Result<(), String> {
        crate::image::show_progress(p, self.on_tty);
        let now = time::monotonic();
        if let Some(client) = &mut self.lease {
            if client.tick(now).map_err(|e| text!("keeping the DHCP lease: {e}"))? {
                sayln!("\nimprint: lease renewed");
            }
        }
        if p.done || self.last.is_none_or(|last| now >= last + Duration::from_secs(5)) {
            self.last = Some(now);
            let (done, total, kbps) = (p.written, p.image_size, p.rate() / 1000);
            self.send(Report { phase, done, total, kbps, ..Report::default() });
        }
        Ok(())
    }

    /// The last report of a run that did its work: `bytes` of the disk, their sha256.
    pub fn done(&mut self, bytes: u64, sha256: Option<[u8; 32]>, message: &str) {
        let (done, total) = (bytes, Some(bytes));
        self.send(Report { phase: "done", done, total, sha256, message, ..Report::default() });
    }

    /// The last report of a failed run.
    pub fn failure(&mut self, error: &str) {
        self.send(Report { phase: "failed", error: Some(error), ..Report::default() });
    }

    fn send(&mut self, report: Report<'_>) {
        let Some(url) = &self.url else { return };
        let body = Report { mac: self.mac, ..report }.to_json();
        let headers = [("Content-Type", "application/json")];
        let len = Some(body.len() as u64);
        if let Err(e) = self.client.upload("POST", url, &headers, &mut body.as_bytes(), len) {
            sayln!("imprint: status report not sent (the work goes on): {e}");
        }
    }
}

/// Streams the plan's image onto `disk`, keeping the lease and reporting as it goes, then
/// finishes the deployed system. In a dry run, stops before the first write and says what
/// would have been done.
pub fn write_image(
    client: &mut Client,
    plan: &Plan,
    disk: &Disk,
    reporter: &mut Reporter,
) -> Result<(), Error> {
    // A plan whose network keys are wrong fails before anything is written, not after.
    crate::deploy::check_network(plan)?;
    let url = plan.str("sourceImage").unwrap_or_default();
    let path = disk.path();
    let mut response = client.get(url).map_err(|e| Error(text!("fetching the image: {e}")))?;
    let source_size = response.length();
    if plan.flag("dryRun") {
        let size = source_size.map_or(String::from("unknown size"), |n| text!("{n} bytes"));
        reporter.dry_run(&text!("write {url} ({size}) onto {path}"));
        return Ok(());
    }
    reporter.phase("writing", url);
    let (image_size, sha256) = (plan.number("imageSize"), plan.sha256);
    let options = write::Options { image_size, source_size, sha256, sparse: true };
    let mut hook = |p: &Progress| reporter.progress("writing", p);
    let summary = write::write_image(&mut response, &path, &options, &mut hook)?;
    drop(response);
    // A failure from here on is about the deployed system, not the image: say so.
    crate::rescue::enter("finishing the deployed system");
    let done = text!("wrote {} bytes of {url} onto {path}", summary.image_len);
    sayln!("imprint: {done}");
    if let Err(error) = crate::deploy::finish(disk, plan, reporter.mac) {
        // The image is whole, the system it makes is not what the plan asked for: it must
        // not boot as if it were.
        if let Err(e) = write::unmake_bootable(&path) {
            sayln!("imprint: and zeroing the disk's ends again failed: {e}");
        }
        return Err(error);
    }
    reporter.done(summary.image_len, summary.sha256, &done);
    Ok(())
}

/// Captures `disk` to the plan's `desintationAddress`: gzip unless `compressed` is false,
/// a plunder multipart form named after this machine's MAC unless `upload` is "put".
/// Reads only (`wipeDevice` means nothing here). In a dry run, stops before the first
/// byte is sent and says what would have been done.
pub fn capture_image(
    client: &mut Client,
    plan: &Plan,
    disk: &Disk,
    reporter: &mut Reporter,
) -> Result<(), Error> {
    let url = plan.destination().unwrap_or_default();
    let path = disk.path();
    let multipart = !plan.put;
    let form_name = multipart.then(|| text!("{}", crate::net::link::Mac(reporter.mac)));
    let compressed = plan.flag("compressed");
    let options = capture::Options { compressed, level: capture::DEFAULT_LEVEL, form_name };
    let source = capture::open(&path)?;
    let what = text!(
        "{path} ({} bytes) to {url} as {} ({})",
        source.size,
        if compressed { "gzip" } else { "raw" },
        if multipart { "multipart POST" } else { "PUT" }
    );
    if plan.flag("dryRun") {
        reporter.dry_run(&text!("capture {what}"));
        return Ok(());
    }
    sayln!("imprint: capturing {what}");
    reporter.phase("capturing", url);
    let mut hook = |p: &Progress| reporter.progress("capturing", p);
    let summary = capture::capture(client, source, url, &options, &mut hook)?;
    let done = text!(
        "captured {} bytes of {path} to {url} ({} bytes sent); sha256 {}",
        summary.disk_len,
        summary.sent_len,
        crate::image::sha256::Hex(&summary.sha256)
    );
    sayln!("imprint: {done}");
    reporter.done(summary.disk_len, Some(summary.sha256), &done);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_with_one_slash() {
        assert_eq!(join("http://s/p", "a.bty"), "http://s/p/a.bty");
        assert_eq!(join("http://s/p/", "a.bty"), "http://s/p/a.bty");
        assert_eq!(join("http://s:3000", "default.bty"), "http://s:3000/default.bty");
    }
}
