//! imprint's binary: PID 1 of the provisioning initramfs, or a tool when run as a program.
//!
//! As PID 1, `boot()` below is the whole story of a boot, top to bottom. Every error and
//! every panic ends in the rescue path (`imprint::rescue`), which never returns.
#![no_std]
#![no_main]

extern crate alloc;

// The C entry point lives with the rest of the unsafe code, in src/sys.
#[path = "sys/entry.rs"]
mod entry;

use imprint::error::Error;
use imprint::http::Client;
use imprint::net::{self, Summary};
use imprint::plan::{Action, Finally, Plan};
use imprint::provision::{self, Reporter};
use imprint::rescue;
use imprint::{cmdline::Settings, init};

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    rescue::on_panic(info)
}

/// Called by the C entry point with the program's arguments.
fn start(args: &[&[u8]]) -> i32 {
    if imprint::sys::process::pid() == 1 {
        boot()
    } else {
        imprint::tool::main(args)
    }
}

/// PID 1: the boot, as a story.
fn boot() -> ! {
    // 1. The filesystems the kernel leaves to us, and a console to speak on.
    init::mount_early_filesystems();
    init::attach_console();

    // 2. The settings, and from now on the user's policy for errors.
    rescue::enter("reading the settings");
    let (settings, problems) = init::read_settings();
    rescue::configure(settings.on_error, settings.on_error_delay);
    init::print_banner(&settings, &problems);
    if let Some(problem) = problems.first() {
        rescue::fail(problem);
    }

    // 3-5. Network, plan, disk, action.
    match provision(&settings) {
        // The point of no failure: the work is done and verified; all that is left is to
        // flush, unmount and restart, which cannot fail in a way that matters.
        Ok(power_off) => init::shutdown(power_off),
        Err(error) => rescue::fail(&error.0),
    }
}

/// Everything between the banner and the end: returns whether to power off (else reboot).
fn provision(settings: &Settings) -> Result<bool, Error> {
    #[cfg(feature = "fault-injection")]
    if settings.fault.as_deref() == Some("panic") {
        panic!("fault injected by imprint.fault=panic");
    }
    let Some(server) = &settings.url else {
        return Err(Error("no server configured: add imprint.url=http://<server>/<path> (or BOOTYURL=) to the kernel command line".into()));
    };
    // 3. The network: a lease (or static ip=) on the first link that gets one. Its MAC
    //    is this machine's identity for the server.
    rescue::enter("bringing up the network");
    let mut network =
        net::bring_up(settings.ip.as_deref(), settings.iface.as_deref(), net::DEFAULT_TIMEOUT)?;
    imprint::sayln!("imprint: network up\n{}", Summary(&network));

    // 4. The plan for this machine: its own, or the server's default. From here on, the
    //    plan may change what an error does, and its statusURL hears about every phase.
    rescue::enter("fetching the plan");
    let (dns, mac) = (&network.config.dns, network.link.mac);
    let mut client = Client::new(dns.to_vec(), Default::default());
    let (plan_url, plan) = provision::fetch_plan(&mut client, server, mac)?;
    provision::show_plan(&plan_url, &plan);
    if let Some(policy) = plan.on_error {
        rescue::configure(policy, None);
    }
    let status_url = plan.str("statusURL");
    let mut reporter = Reporter::new(status_url, mac, dns, network.dhcp.as_deref_mut());
    reporter.phase("starting", &plan_url);
    if let Err(error) = act(&mut client, &plan, &mut reporter) {
        // The last report says why, before the rescue path takes over.
        reporter.failure(&error.0);
        return Err(error);
    }

    // 6. What the plan wants at the end.
    if plan.finally == Finally::Shell {
        rescue::run_shell();
    }
    Ok(plan.finally == Finally::Poweroff)
}

/// 5. The disk, and what the plan does with it.
fn act(client: &mut Client, plan: &Plan, reporter: &mut Reporter) -> Result<(), Error> {
    rescue::enter("selecting the disk");
    let disk = provision::choose_disk(plan)?;
    if plan.action == Action::WriteImage {
        rescue::enter("writing the image");
        provision::write_image(client, plan, &disk, reporter)
    } else {
        rescue::enter("capturing the disk");
        provision::capture_image(client, plan, &disk, reporter)
    }
}
