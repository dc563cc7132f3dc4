//! The provisioning run's steps, which `main.rs` calls in order: ask the server for this
//! machine's plan, choose the disk, act on it, and report to the plan's `statusURL`.

use crate::disk::select::{self, Disk, SelectError};
use crate::http::{self, Client, Resolve, ResolveError};
use crate::image::Interrupted;
use crate::io::Read;
use crate::net::dns::{self, DnsError};
use crate::plan::status::{Phase, Report};
use crate::plan::{self, Action, Plan, PlanError};
use crate::sys::time;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;

/// Host names in URLs resolve through the lease's DNS servers.
pub struct Dns(pub Vec<Ipv4Addr>);

impl Resolve for Dns {
    fn resolve(&mut self, host: &str) -> Result<[u8; 4], ResolveError> {
        dns::resolve_a(&self.0, host).map_err(|e| match e {
            DnsError::NoServers => ResolveError::NoServer,
            DnsError::Rcode(3) | DnsError::NoAddress => ResolveError::NotFound,
            DnsError::Timeout { .. } => ResolveError::TimedOut,
            other => ResolveError::Failed(text!("{other}")),
        })
    }
}

/// The resolver of tool mode: the name servers of /etc/resolv.conf.
pub fn tool_dns() -> Box<dyn Resolve> {
    Box::new(Dns(dns::system_servers()))
}

/// The HTTP client of a run.
pub fn client(dns_servers: &[Ipv4Addr]) -> Client {
    Client::new(Box::new(Dns(dns_servers.to_vec())), http::Options::default())
}

/// Why there is no usable plan.
#[derive(Debug)]
pub enum FetchError {
    /// Neither this machine's plan nor default.bty exists.
    NoPlan {
        own: String,
        fallback: String,
    },
    Http(http::Error),
    Invalid {
        url: String,
        error: PlanError,
    },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::NoPlan { own, fallback } => {
                write!(f, "no plan for this machine: {own} and {fallback} are both 404 Not Found")
            }
            FetchError::Http(e) => e.fmt(f),
            FetchError::Invalid { url, error } => write!(f, "{url}: {error}"),
        }
    }
}

/// `{base}/{name}`, with exactly one slash between them.
pub fn join(base: &str, name: &str) -> String {
    text!("{}/{name}", base.trim_end_matches('/'))
}

/// GETs `{server}/{aa-bb-cc-dd-ee-ff}.bty`, or `{server}/default.bty` when that is 404.
pub fn fetch_plan(
    client: &mut Client,
    server: &str,
    mac: [u8; 6],
) -> Result<(String, Plan), FetchError> {
    let own = join(server, &plan::file_name(mac));
    let fallback = join(server, plan::DEFAULT_FILE);
    let url = match get_small(client, &own) {
        Err(http::Error::Status { status: 404, .. }) => match get_small(client, &fallback) {
            Err(http::Error::Status { status: 404, .. }) => {
                return Err(FetchError::NoPlan { own, fallback })
            }
            other => (fallback, other),
        },
        other => (own, other),
    };
    let (url, body) = (url.0, url.1.map_err(FetchError::Http)?);
    match plan::parse(&body) {
        Ok(plan) => Ok((url, plan)),
        Err(error) => Err(FetchError::Invalid { url, error }),
    }
}

/// A small body (a plan), read whole; larger than a plan may be is an error.
fn get_small(client: &mut Client, url: &str) -> Result<Vec<u8>, http::Error> {
    let mut response = client.get(url)?;
    let mut body = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = response.read(&mut chunk)?;
        if n == 0 {
            return Ok(body);
        }
        if body.len() + n > plan::json::MAX_INPUT {
            return Err(http::Error::Source {
                url: String::from(url),
                why: String::from("the plan is larger than 1 MiB"),
            });
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

/// What the plan asks, as the console shows it.
pub fn show_plan(url: &str, plan: &Plan) {
    let action = match plan.action {
        Action::WriteImage => "writeImage",
        Action::ReadImage => "readImage",
    };
    sayln!("imprint: plan {url}: {action}{}", if plan.dry_run { " (dry run)" } else { "" });
    if let Some(image) = &plan.source_image {
        sayln!("  image     {image}");
    }
    if let Some(to) = &plan.destination_address {
        sayln!("  upload    {to}");
    }
    if plan.wipe_device && plan.action == Action::ReadImage {
        sayln!("  note: wipeDevice ignored: a capture only reads the disk");
    }
    for key in &plan.ignored {
        sayln!("  note: unknown plan key {key} ignored");
    }
    for (asked, what) in [
        (plan.lvm_root_name.is_some() || plan.grow_disk, "growing LVM (growDisk, lvmRootName)"),
        (plan.wipe_device && plan.action == Action::WriteImage, "wiping the disk first (wipeDevice; the write zeroes its ends and every run of zeros anyway)"),
    ] {
        if asked {
            sayln!("  note: this build does not do {what} yet; the plan's other steps go on");
        }
    }
}

/// The disk the plan means: its device path, else its hints, else the only fixed disk.
pub fn choose_disk(plan: &Plan) -> Result<Disk, SelectError> {
    let path = match plan.action {
        Action::WriteImage => plan.destination_device.as_deref(),
        Action::ReadImage => plan.source_device.as_deref(),
    };
    let disks = select::scan("/sys")?;
    let disk = select::select(&disks, path, &plan.disk)?;
    sayln!("imprint: disk {disk}");
    Ok(disk)
}

/// Status reports to the plan's `statusURL`: at each phase change and every few seconds
/// during transfers. A report that fails is logged and never stops the work.
pub struct Reporter {
    /// Its own client: while an image streams, its response borrows the run's client.
    client: Client,
    url: Option<String>,
    mac: [u8; 6],
    last: Option<Duration>,
}

/// How often a transfer reports its progress.
const REPORT_EVERY: Duration = Duration::from_secs(5);

impl Reporter {
    pub fn new(url: Option<&str>, mac: [u8; 6], dns_servers: &[Ipv4Addr]) -> Reporter {
        // Reports are small and must not hold the work up: short timeouts, one retry.
        let options = http::Options {
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(5),
            retries: 1,
        };
        let client = Client::new(Box::new(Dns(dns_servers.to_vec())), options);
        Reporter { client, url: url.map(String::from), mac, last: None }
    }

    /// A report for `phase` with nothing more to say.
    pub fn phase(&mut self, phase: Phase, message: &str) {
        let report = Report {
            mac: self.mac,
            phase,
            bytes_done: 0,
            bytes_total: None,
            kilobytes_per_second: 0,
            sha256: None,
            message,
            error: None,
        };
        self.send(&report);
    }

    /// A transfer's progress, at most every few seconds unless `force`.
    pub fn progress(&mut self, report: &Report<'_>, force: bool) {
        let now = time::monotonic();
        if force || self.last.is_none_or(|last| now >= last + REPORT_EVERY) {
            self.last = Some(now);
            self.send(report);
        }
    }

    /// What a dry run would have done, on the console and as the last report.
    pub fn dry_run(&mut self, what: &str) {
        sayln!("imprint: {what}");
        self.phase(Phase::DryRun, what);
    }

    /// A transfer's progress, from the numbers of its progress line.
    pub fn transfer(&mut self, phase: Phase, p: &crate::image::progress::Progress) {
        let report = Report {
            mac: self.mac,
            phase,
            bytes_done: p.written,
            bytes_total: p.image_size,
            kilobytes_per_second: p.rate() / 1000,
            sha256: None,
            message: "",
            error: None,
        };
        self.progress(&report, p.done);
    }

    /// The last report of a run that did its work: `bytes` of the disk, their sha256.
    pub fn done(&mut self, bytes: u64, sha256: Option<[u8; 32]>, message: &str) {
        let report = Report {
            mac: self.mac,
            phase: Phase::Done,
            bytes_done: bytes,
            bytes_total: Some(bytes),
            kilobytes_per_second: 0,
            sha256,
            message,
            error: None,
        };
        self.send(&report);
    }

    /// The last report of a failed run.
    pub fn failure(&mut self, error: &dyn fmt::Display) {
        let text = text!("{error}");
        let report = Report {
            mac: self.mac,
            phase: Phase::Failed,
            bytes_done: 0,
            bytes_total: None,
            kilobytes_per_second: 0,
            sha256: None,
            message: "",
            error: Some(&text),
        };
        self.send(&report);
    }

    fn send(&mut self, report: &Report<'_>) {
        let Some(url) = &self.url else { return };
        let body = report.to_json();
        let mut source: &[u8] = body.as_bytes();
        let headers = [("Content-Type", "application/json")];
        if let Err(e) =
            self.client.upload("POST", url, &headers, &mut source, Some(body.len() as u64))
        {
            sayln!("imprint: status report not sent (the work goes on): {e}");
        }
    }
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

/// Why a run failed after the plan was read.
#[derive(Debug)]
pub enum RunError {
    Plan(FetchError),
    Disk(SelectError),
    /// The image could not be fetched at all.
    Image(http::Error),
    Write(crate::image::write::WriteError),
    Capture(crate::image::capture::CaptureError),
    /// The deployed system's files could not be written.
    Deploy(crate::deploy::DeployError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Plan(e) => e.fmt(f),
            RunError::Disk(e) => e.fmt(f),
            RunError::Image(e) => write!(f, "fetching the image: {e}"),
            RunError::Write(e) => e.fmt(f),
            RunError::Deploy(e) => e.fmt(f),
            RunError::Capture(e) => e.fmt(f),
        }
    }
}

/// Streams the plan's image onto `disk`, keeping the lease and reporting as it goes. In a
/// dry run, stops before the first write and says what would have been done.
pub fn write_image(
    client: &mut Client,
    plan: &Plan,
    disk: &Disk,
    lease: Option<&mut crate::net::BoundClient>,
    reporter: &mut Reporter,
) -> Result<(), RunError> {
    use crate::image::{progress::Progress, write};
    // A plan whose network keys are wrong fails before anything is written, not after.
    crate::deploy::StaticNetwork::from_plan(plan).map_err(RunError::Deploy)?;
    let url = plan.source_image.as_deref().unwrap_or_default();
    let mut response = client.get(url).map_err(RunError::Image)?;
    let source_size = response.length();
    if plan.dry_run {
        let size = source_size.map_or(String::from("unknown size"), |n| text!("{n} bytes"));
        reporter.dry_run(&text!("dry run: would write {url} ({size}) onto {}", disk.path()));
        return Ok(());
    }
    reporter.phase(Phase::Writing, url);
    let options = write::Options {
        image_size: plan.image_size,
        source_size,
        sha256: plan.sha256,
        sparse: true,
    };
    let on_tty = crate::sys::tty::is_tty(crate::sys::fd::STDOUT);
    let mut lease = lease;
    let mut hook = |p: &Progress| -> Result<(), Interrupted> {
        crate::image::show_progress(p, on_tty);
        keep_lease(lease.as_deref_mut()).map_err(Interrupted::Lease)?;
        reporter.transfer(Phase::Writing, p);
        Ok(())
    };
    let summary = write::write_image(&mut response, &disk.path(), &options, &mut hook)
        .map_err(RunError::Write)?;
    let done = text!("wrote {} bytes of {url} onto {}", summary.image_len, disk.path());
    sayln!("imprint: {done}");
    drop(response);
    // A failure from here on is about the deployed system, not the image: say so.
    crate::rescue::enter(crate::rescue::Step::Finishing);
    if let Err(error) = crate::deploy::finish(disk, plan, reporter.mac) {
        // The image is whole, the system it makes is not what the plan asked for: it must
        // not boot as if it were.
        if let Err(e) = write::unmake_bootable(&disk.path()) {
            sayln!("imprint: and zeroing the disk's ends again failed: {e}");
        }
        return Err(RunError::Deploy(error));
    }
    reporter.done(summary.image_len, summary.sha256, &done);
    Ok(())
}

/// Renews the DHCP lease when it is due (a transfer can outlast it).
fn keep_lease(lease: Option<&mut crate::net::BoundClient>) -> Result<(), crate::net::NetError> {
    if let Some(client) = lease {
        if client.tick(time::monotonic())? == crate::net::LeaseEvent::Renewed {
            sayln!("\nimprint: lease renewed");
        }
    }
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
    lease: Option<&mut crate::net::BoundClient>,
    reporter: &mut Reporter,
) -> Result<(), RunError> {
    use crate::image::capture::{self, Options};
    use crate::image::progress::Progress;
    let url = plan.destination_address.as_deref().unwrap_or_default();
    let path = disk.path();
    let name = text!("{}", crate::net::link::Mac(reporter.mac));
    let form_name = (plan.upload == plan::Upload::Multipart).then_some(name);
    let options = Options { compressed: plan.compressed, level: capture::DEFAULT_LEVEL, form_name };
    let source = capture::open(&path).map_err(RunError::Capture)?;
    let what = text!(
        "{path} ({} bytes) to {url} as {} ({})",
        source.size,
        if options.compressed { "gzip" } else { "raw" },
        if options.form_name.is_some() { "multipart POST" } else { "PUT" }
    );
    if plan.dry_run {
        reporter.dry_run(&text!("dry run: would capture {what}"));
        return Ok(());
    }
    sayln!("imprint: capturing {what}");
    reporter.phase(Phase::Capturing, url);
    let on_tty = crate::sys::tty::is_tty(crate::sys::fd::STDOUT);
    let mut lease = lease;
    let mut hook = |p: &Progress| -> Result<(), String> {
        crate::image::show_progress(p, on_tty);
        keep_lease(lease.as_deref_mut()).map_err(|e| text!("keeping the DHCP lease: {e}"))?;
        reporter.transfer(Phase::Capturing, p);
        Ok(())
    };
    let summary =
        capture::capture(client, source, url, &options, &mut hook).map_err(RunError::Capture)?;
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
