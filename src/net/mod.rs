//! Network bring-up: pick the links, get a lease by DHCP (or take a static `ip=`), apply
//! address, netmask, MTU and routes, and keep the lease alive during long work.
//!
//! By default every Ethernet link runs DHCP at once, each as soon as it has carrier (a
//! packet socket each, one poll loop); the first to bind wins and its MAC is the machine's
//! identity. Nothing here sleeps blindly: the loop waits in poll(2) for a packet, the next
//! retransmission, or (while a link still lacks carrier) the next carrier check.

pub mod dhcp;
pub mod dns;
pub mod ipconfig;
pub mod link;
pub mod options;
pub mod static_ip;

use crate::sys::netdev::{IfName, NetDev, IFF_RUNNING};
use crate::sys::packet::PacketSocket;
use crate::sys::poll::{self, PollFd, READABLE};
use crate::sys::socket::UdpSocket;
use crate::sys::time::monotonic;
use crate::sys::Errno;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;
use dhcp::{Client, Event, Lease, Send};
use ipconfig::NetConfig;
use link::{Link, Mac};

/// How long PID 1 waits for carrier and a lease before the rescue path.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often links still without carrier are looked at while the loop waits, in ms.
const CARRIER_CHECK: u64 = 5;

/// The monotonic clock in milliseconds, the DHCP client's time.
fn now_ms() -> u64 {
    monotonic().as_millis() as u64
}

/// Why the network could not be brought up or kept: one line, with its context.
pub type NetError = String;

/// A system call failed while `doing` something on `iface` ("-": on no single one).
pub(crate) fn sys(doing: &'static str, iface: IfName) -> impl FnOnce(Errno) -> NetError {
    move |errno| text!("{doing} on {}: {errno}", iface.as_str())
}

/// One link's DHCP client with its sockets; once bound, the lease it keeps.
pub struct BoundClient {
    pub(crate) link: Link,
    /// Replies arrive here, broadcasts leave here: before the lease there is no address
    /// to receive them on or send them from.
    pub(crate) packets: PacketSocket,
    /// Unicast renewals and releases (RFC 2131 4.4.5), from the leased address once it is
    /// applied; opened at the first.
    udp: Option<UdpSocket>,
    pub(crate) client: Client,
    /// When the link had carrier (the client started); once bound, how long after that
    /// the lease came (shown with the lease; `make bench` reads it).
    pub carrier_to_bound: Duration,
}

impl BoundClient {
    // Out of line: inlined into the acquiring loop, it makes the init bigger.
    #[inline(never)]
    fn open(link: Link, hostname: Option<String>, now: u64) -> Result<Box<Self>, NetError> {
        let packets =
            PacketSocket::open(link.index).map_err(sys("opening a packet socket", link.name))?;
        let start = monotonic();
        let seed = start.as_nanos() as u64 ^ u64::from(link.index as u32).rotate_left(32);
        let client = Client::new(link.mac, hostname, seed, now);
        Ok(Box::new(BoundClient { link, packets, udp: None, client, carrier_to_bound: start }))
    }

    pub fn lease(&self) -> &Lease {
        self.client.lease.as_ref().expect("a bound client has a lease")
    }

    /// Sends what the client asks; `doing` is set to what was tried, for an error.
    fn send(&mut self, send: Option<Send>, doing: &mut &'static str) -> crate::sys::Result<()> {
        let Some((to, message)) = send else { return Ok(()) };
        // From ciaddr (RFC 2131 4.4.5): our address while renewing, rebinding or releasing,
        // else 0.0.0.0.
        let from: [u8; 4] = message.get(12..16).and_then(|b| b.try_into().ok()).unwrap_or_default();
        if to.is_broadcast() {
            *doing = "sending a DHCP broadcast";
            return self.packets.send_broadcast(&dhcp::frame(from.into(), &message));
        }
        *doing = "binding the DHCP client port";
        let udp = match &mut self.udp {
            Some(udp) => udp,
            None => self.udp.insert(UdpSocket::dhcp_client(from)?),
        };
        *doing = "sending a DHCP message to the server";
        udp.send_to(&message, to.octets(), 67)
    }

    /// Feeds every waiting packet to the client, runs its timers and sends what it asks.
    /// Returns the last event a packet caused.
    fn step(&mut self, now: u64) -> Result<Option<Event>, NetError> {
        // What is being done, for the error: one conversion below instead of one per call.
        let mut doing = "receiving a DHCP reply";
        let mut run = || {
            let mut event = None;
            // Room for any DHCP reply we accept (longer ones are cut and counted as ignored).
            let buf = &mut [0u8; 1536];
            while let Some((len, checksum_not_ready)) = self.packets.receive(buf)? {
                match buf.get(..len).and_then(|d| dhcp::unframe(d, checksum_not_ready)) {
                    Some(message) => event = self.client.receive(now, message).or(event),
                    None => self.client.ignored += 1,
                }
            }
            // The UDP socket also gets a copy of unicast replies; the packet socket has
            // already read them, so drop these.
            if let Some(udp) = &self.udp {
                doing = "draining the DHCP client port";
                while udp.receive_from(buf)?.is_some() {}
            }
            let send = self.client.poll(now);
            self.send(send, &mut doing).map(|()| event)
        };
        run().map_err(sys(doing, self.link.name))
    }

    /// Lease upkeep, non-blocking: long loops call this at least once a second. It renews
    /// at T1 (unicast), rebinds at T2 (broadcast), and reports an expired or refused lease.
    /// `true`: a server extended the lease.
    pub fn tick(&mut self, now: Duration) -> Result<bool, NetError> {
        let event = self.step(now.as_millis() as u64)?;
        if self.client.lease.is_none() {
            let why = match event {
                Some(Event::Lost) => "the server refused to renew the lease (NAK)",
                _ => "the lease expired and no server renewed it",
            };
            return Err(text!("DHCP on {}: {why}", self.link.name.as_str()));
        }
        Ok(event == Some(Event::Renewed))
    }

    /// Gives the lease back to the server (DHCPRELEASE).
    pub fn release(&mut self) -> Result<(), NetError> {
        let (send, mut doing) = (self.client.release(), "");
        self.send(send, &mut doing).map_err(sys(doing, self.link.name))
    }
}

/// Waits for carrier on the `waiting` links. With a `fixed` (static) configuration, the
/// first link with carrier is the answer; else a DHCP client runs on each link from the
/// moment it has carrier, all at once, until one binds (the others are dropped; a bound
/// loser releases). At most `timeout`.
// Out of line: inlined into `bring_up`, it makes the init bigger.
#[inline(never)]
fn acquire(
    dev: &NetDev,
    mut waiting: Vec<Link>,
    hostname: Option<String>,
    mut fixed: Option<NetConfig>,
    timeout: Duration,
) -> Result<Network, NetError> {
    let deadline = now_ms() + timeout.as_millis() as u64;
    // Boxed: sessions are large, and moving pointers keeps the init's code small.
    let mut sessions: Vec<Box<BoundClient>> = Vec::new();
    loop {
        let now = now_ms();
        for l in core::mem::take(&mut waiting) {
            match dev.flags(l.name).map(|f| f & IFF_RUNNING != 0) {
                Ok(false) => waiting.push(l),
                Ok(true) => match fixed.take() {
                    Some(config) => return Ok(Network { link: l, config, dhcp: None }),
                    None => sessions.push(BoundClient::open(l, hostname.clone(), now)?),
                },
                // The link went away (unplugged, deleted): wait for the others.
                Err(Errno(libc::ENODEV)) => {}
                Err(errno) => return Err(sys("reading the link state", l.name)(errno)),
            }
        }
        let mut i = 0;
        while let Some(s) = sessions.get_mut(i) {
            match s.step(now) {
                Ok(Some(Event::Bound)) => {
                    let mut bound = sessions.swap_remove(i);
                    for loser in sessions.iter_mut() {
                        let _ = loser.release(); // best effort: the lease times out anyway
                    }
                    bound.carrier_to_bound = monotonic().saturating_sub(bound.carrier_to_bound);
                    let (link, config) = (bound.link, bound.lease().config.clone());
                    return Ok(Network { link, config, dhcp: Some(bound) });
                }
                Ok(_) => i += 1,
                // One link failing (its NIC went away, say) must not stop the others;
                // when it was the last one, its error is the answer.
                Err(_) if sessions.len() > 1 || !waiting.is_empty() => {
                    sessions.remove(i);
                }
                Err(e) => return Err(e),
            }
        }
        if now >= deadline {
            return Err(no_lease(&waiting, &sessions, timeout.as_secs()));
        }
        let mut wake =
            if waiting.is_empty() { deadline } else { deadline.min(now + CARRIER_CHECK) };
        let mut fds = Vec::new();
        for s in sessions.iter() {
            wake = wake.min(s.client.next_wakeup());
            fds.push(PollFd::new(s.packets.raw(), READABLE));
        }
        poll::poll(&mut fds, Duration::from_millis(wake.saturating_sub(now_ms())))
            .map_err(sys("waiting for DHCP replies", IfName::NONE))?;
    }
}

/// Why no link got a lease in `waited_secs`: no carrier at all, or what the servers said.
#[inline(never)]
fn no_lease(waiting: &[Link], sessions: &[Box<BoundClient>], waited_secs: u64) -> NetError {
    let mut links = String::new();
    if sessions.is_empty() {
        // The links still waiting (those that vanished meanwhile are not named).
        waiting.iter().for_each(|l| link::add_name(&mut links, l.name));
        return text!("no carrier on {links} within {waited_secs} s (is a cable plugged in?)");
    }
    sessions.iter().for_each(|s| link::add_name(&mut links, s.link.name));
    let (mut replies, mut naks, mut ignored) = (0, 0, 0);
    for c in sessions.iter().map(|s| &s.client) {
        (replies, naks, ignored) = (replies + c.replies, naks + c.naks, ignored + c.ignored);
    }
    let why = match (replies, naks) {
        (0, _) => text!("no server answered"),
        (_, 0) => text!("{replies} replies but no lease"),
        _ => text!("the server refused {naks} requests with DHCPNAK"),
    };
    text!("DHCP: no lease on {links} within {waited_secs} s ({why}; {ignored} bad or foreign packets ignored)")
}

/// The network as brought up: which link (its MAC is the machine's identity for the
/// provisioning server), with what, and the DHCP client if any.
pub struct Network {
    pub link: Link,
    pub config: NetConfig,
    pub dhcp: Option<Box<BoundClient>>,
}

/// Brings up the network from `ip=` and `imprint.iface=`: picks links, gets a lease (or
/// takes the static values) and applies it. Waits at most `timeout` for carrier and lease.
pub fn bring_up(
    ip: Option<&str>,
    iface: Option<&str>,
    timeout: Duration,
) -> Result<Network, NetError> {
    let setting = static_ip::parse(ip)?;
    // imprint.iface= wins over the device field of ip=.
    let wanted = iface.or(setting.device.as_deref());
    // What is being done, for the error: one conversion below instead of one per call.
    let mut doing = ("opening a socket for interface ioctls", IfName::NONE);
    let mut find = || {
        let dev = NetDev::open()?;
        doing.0 = "listing interfaces";
        let (links, present) = link::ethernet_links(&dev, wanted)?;
        for l in &links {
            doing = ("bringing the link up", l.name);
            dev.bring_up(l.name)?;
        }
        Ok((dev, links, present))
    };
    let (dev, links, present) = find().map_err(sys(doing.0, doing.1))?;
    if present.is_empty() {
        return Err("no Ethernet interface found (is the NIC's driver in the kernel?)".into());
    }
    if links.is_empty() {
        let wanted = crate::console::Quoted(wanted.unwrap_or_default());
        return Err(text!("no Ethernet interface named {wanted} (present: {present})"));
    }
    let network = acquire(&dev, links, setting.hostname, setting.fixed, timeout)?;
    ipconfig::apply(&dev, &network.link, &network.config)?;
    Ok(network)
}

/// An IPv4 address as a dotted quad: core's Display, which handles widths, costs more.
pub struct Dotted(pub Ipv4Addr);

impl fmt::Display for Dotted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0.octets();
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// The network's settings for the console, one per line.
pub struct Summary<'a>(pub &'a Network);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = self.0;
        let c = &net.config;
        let how = if net.dhcp.is_some() { "DHCP" } else { "static ip=" };
        let gateway = c.gateway.map(Dotted);
        let router: &dyn fmt::Display = gateway.as_ref().map_or(&"none", |g| g);
        // Few, long format strings: every write! call costs the init code bytes.
        write!(
            f,
            "  interface {} ({}), by {how}\n  address   {}/{} (mask {})\n  router    {router}\n  dns      ",
            net.link.name.as_str(),
            Mac(net.link.mac),
            Dotted(c.address),
            c.prefix_len,
            Dotted(dhcp::mask_of(c.prefix_len))
        )?;
        for server in &c.dns {
            write!(f, " {}", Dotted(*server))?;
        }
        f.write_str(if c.dns.is_empty() { " none\n" } else { "\n" })?;
        if let Some(mtu) = c.mtu {
            writeln!(f, "  mtu       {mtu}")?;
        }
        if let Some(client) = &net.dhcp {
            let l = client.lease();
            writeln!(
                f,
                "  lease     {} s (renew at {} s, rebind at {} s)\n  server    {}\n  bound     {}.{:03} ms after carrier",
                l.lease_secs,
                l.renew_secs,
                l.rebind_secs,
                Dotted(l.server),
                client.carrier_to_bound.as_millis() as u64,
                client.carrier_to_bound.subsec_micros() % 1000
            )?;
            for (label, name) in [("hostname", &c.hostname), ("domain  ", &l.domain)] {
                if let Some(name) = name {
                    writeln!(f, "  {label}  {name}")?;
                }
            }
        }
        Ok(())
    }
}

// Last in the file: test data, not code (tests/audit.py counts each file up to here).
#[cfg(test)]
mod captures;
