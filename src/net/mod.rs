//! Network bring-up: pick the links, get a lease by DHCP (or take a static `ip=`), apply
//! address, netmask, MTU and routes, and keep the lease alive during long work.
//!
//! By default every Ethernet link runs DHCP at once, each as soon as it has carrier (one
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
/// How often links still without carrier are looked at while the loop waits.
const CARRIER_CHECK: Duration = Duration::from_millis(5);

/// How DHCP failed on a link, while acquiring or keeping a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpError {
    /// No server granted a lease on `links` within the bound; what came back meanwhile.
    NoLease { links: String, waited_secs: u64, replies: u32, naks: u32, ignored: u32 },
    /// The lease on `iface` is gone: `what` happened.
    Lost { iface: IfName, what: &'static str },
}

/// Why the network could not be brought up or kept. One line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// A system call failed while `doing` something on `iface` ("-": on no single one).
    Sys {
        doing: &'static str,
        iface: IfName,
        errno: Errno,
    },
    /// The machine has no Ethernet interface at all.
    NoLinks,
    /// `imprint.iface=` or the device of `ip=` names no Ethernet interface.
    NoSuchLink {
        wanted: String,
        present: String,
    },
    /// None of `links` had carrier within the bound.
    NoCarrier {
        links: String,
        waited_secs: u64,
    },
    /// The `field` of `ip=` does not hold what it should (the banner shows the whole value).
    BadIp {
        field: &'static str,
    },
    /// `ip=off` (or `none`) without an address: imprint needs the network.
    IpOff,
    Dhcp(DhcpError),
    /// `imprint dhcp` was called wrongly.
    Usage(&'static str),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Sys { doing, iface, errno } => write!(f, "{doing} on {iface}: {errno}"),
            NetError::NoLinks => {
                f.write_str("no Ethernet interface found (is the NIC's driver in the kernel?)")
            }
            NetError::NoSuchLink { wanted, present } => {
                let wanted = crate::console::Quoted(wanted);
                write!(f, "no Ethernet interface named {wanted} (present: {present})")
            }
            NetError::NoCarrier { links, waited_secs } => {
                write!(f, "no carrier on {links} within {waited_secs} s (is a cable plugged in?)")
            }
            NetError::BadIp { field } => write!(f, "ip=: the {field} field is not valid"),
            NetError::IpOff => f.write_str("ip=: autoconfiguration is off and no client address is given; imprint needs the network"),
            NetError::Dhcp(DhcpError::NoLease { links, waited_secs, replies, naks, ignored }) => {
                write!(f, "DHCP: no lease on {links} within {waited_secs} s (")?;
                match (replies, naks) {
                    (0, _) => f.write_str("no server answered")?,
                    (_, 0) => write!(f, "{replies} replies but no lease")?,
                    _ => write!(f, "the server refused {naks} requests with DHCPNAK")?,
                }
                write!(f, "; {ignored} bad or foreign packets ignored)")
            }
            NetError::Dhcp(DhcpError::Lost { iface, what }) => write!(f, "DHCP on {iface}: {what}"),
            NetError::Usage(what) => write!(f, "{what}; see imprint --help"),
        }
    }
}

fn sys(doing: &'static str, iface: IfName) -> impl FnOnce(Errno) -> NetError {
    move |errno| NetError::Sys { doing, iface, errno }
}

/// One link's DHCP client with its sockets.
struct Session {
    link: Link,
    socket: PacketSocket,
    client: Client,
    /// For unicast renewals and releases; opened once an address is applied.
    unicast: Option<UdpSocket>,
    /// When the link had carrier (the client started).
    carrier_at: Duration,
}

impl Session {
    // Out of line: inlined into the acquiring loop, it makes the init bigger.
    #[inline(never)]
    fn open(link: Link, hostname: Option<String>, now: Duration) -> Result<Box<Session>, NetError> {
        let socket =
            PacketSocket::open(link.index).map_err(sys("opening a packet socket", link.name))?;
        let seed = now.as_nanos() as u64 ^ u64::from(link.index as u32).rotate_left(32);
        let client = Client::new(link.mac, hostname, seed, now);
        Ok(Box::new(Session { link, socket, client, unicast: None, carrier_at: now }))
    }

    fn transmit(&mut self, send: Send) -> Result<(), NetError> {
        let iface = self.link.name;
        let address = self.client.lease().map_or(Ipv4Addr::UNSPECIFIED, |l| l.address);
        match send {
            Send::Broadcast(message) => {
                // From our address only while rebinding (RFC 2131 4.4.5); else 0.0.0.0.
                let rebinding = self.client.state() == dhcp::State::Rebinding;
                let src = if rebinding { address } else { Ipv4Addr::UNSPECIFIED };
                let datagram = dhcp::frame(src, Ipv4Addr::BROADCAST, &message);
                let sent = self.socket.send_broadcast(&datagram);
                sent.map_err(sys("sending a DHCP broadcast", iface))
            }
            Send::Unicast(server, message) => {
                let socket = match &self.unicast {
                    Some(socket) => socket,
                    None => self.unicast.insert(
                        UdpSocket::bind(address.octets(), 68)
                            .map_err(sys("binding the DHCP client port", iface))?,
                    ),
                };
                let sent = socket.send_to(&message, server.octets(), 67);
                sent.map_err(sys("sending a DHCP message to the server", iface))
            }
        }
    }

    /// Feeds every waiting packet to the client, runs its timers and sends what it asks.
    /// Returns the last event a packet caused.
    fn step(&mut self, now: Duration) -> Result<Option<Event>, NetError> {
        let mut event = None;
        // Room for any DHCP reply we accept (longer ones are cut and counted as ignored).
        let buf = &mut [0u8; 1536];
        let iface = self.link.name;
        while let Some(got) =
            self.socket.receive(buf).map_err(sys("receiving a DHCP reply", iface))?
        {
            match buf.get(..got.len).and_then(|d| dhcp::unframe(d, got.checksum_not_ready)) {
                Some(message) => event = self.client.receive(now, message).or(event),
                None => self.client.ignored += 1,
            }
        }
        // Our UDP socket also gets a copy of unicast replies; the packet socket has
        // already read them, so drop these.
        if let Some(socket) = &self.unicast {
            let drain = "draining the DHCP client port";
            while socket.receive_from(buf).map_err(sys(drain, iface))?.is_some() {}
        }
        match self.client.poll(now) {
            Ok(Some(send)) => self.transmit(send)?,
            Ok(None) => {}
            Err(dhcp::LeaseExpired) => {
                let what = "the lease expired and no server renewed it";
                return Err(NetError::Dhcp(DhcpError::Lost { iface, what }));
            }
        }
        Ok(event)
    }
}

/// A client holding a lease, with its socket kept open so it can renew.
pub struct BoundClient {
    session: Box<Session>,
    /// From carrier to the lease (shown with the lease; `make bench` reads it).
    pub carrier_to_bound: Duration,
}

impl BoundClient {
    pub fn lease(&self) -> &Lease {
        self.session.client.lease().expect("a bound client has a lease")
    }

    /// Lease upkeep, non-blocking: long loops call this at least once a second. It renews
    /// at T1 (unicast), rebinds at T2 (broadcast), and reports an expired or refused lease.
    /// `true`: a server extended the lease.
    pub fn tick(&mut self, now: Duration) -> Result<bool, NetError> {
        match self.session.step(now)? {
            Some(Event::Renewed) => Ok(true),
            Some(Event::Lost) => {
                let (iface, what) =
                    (self.session.link.name, "the server refused to renew the lease (NAK)");
                Err(NetError::Dhcp(DhcpError::Lost { iface, what }))
            }
            _ => Ok(false),
        }
    }

    /// Waits in poll until `tick` has work to do, a reply comes, or `end`.
    fn wait(&self, end: Duration) -> Result<(), NetError> {
        let wake = self.session.client.next_wakeup().min(end);
        let mut fds = [PollFd::new(self.session.socket.raw(), READABLE)];
        poll::poll(&mut fds, wake.saturating_sub(monotonic()))
            .map_err(sys("waiting for DHCP replies", self.session.link.name))
            .map(|_| ())
    }

    /// Gives the lease back to the server (DHCPRELEASE).
    pub fn release(mut self) -> Result<(), NetError> {
        match self.session.client.release() {
            Some(send) => self.session.transmit(send),
            None => Ok(()),
        }
    }
}

/// Waiting for carrier and a lease: the links still without carrier, the DHCP sessions
/// running. Owned here and borrowed by `run`, so its many exits drop nothing (one drop
/// for all of them keeps the init's code small).
struct Acquiring {
    waiting: Vec<Link>,
    /// Boxed: sessions are large, and moving pointers keeps the init's code small.
    sessions: Vec<Box<Session>>,
    hostname: Option<String>,
    fixed: Option<NetConfig>,
}

impl Acquiring {
    /// Waits for carrier on the links. With a `fixed` (static) configuration, the first
    /// link with carrier is the answer; else a DHCP client runs on each link from the
    /// moment it has carrier, all at once, until one binds (the others are dropped; a bound
    /// loser releases). At most `timeout`.
    // Out of line: inlined into `bring_up`, it makes the init bigger.
    #[inline(never)]
    fn run(&mut self, dev: &NetDev, timeout: Duration) -> Result<Network, NetError> {
        let deadline = monotonic() + timeout;
        let (waiting, sessions) = (&mut self.waiting, &mut self.sessions);
        loop {
            let now = monotonic();
            let mut i = 0;
            while let Some(&l) = waiting.get(i) {
                match dev.flags(l.name).map(|f| f & IFF_RUNNING != 0) {
                    Ok(false) => {
                        i += 1;
                        continue;
                    }
                    Ok(true) => match self.fixed.take() {
                        Some(config) => return Ok(Network { link: l, config, dhcp: None }),
                        None => sessions.push(Session::open(l, self.hostname.clone(), now)?),
                    },
                    // The link went away (unplugged, deleted): wait for the others.
                    Err(Errno(libc::ENODEV)) => {}
                    Err(errno) => return Err(sys("reading the link state", l.name)(errno)),
                }
                waiting.remove(i);
            }
            let mut winner = None;
            let mut i = 0;
            while let Some(s) = sessions.get_mut(i) {
                match s.step(now) {
                    Ok(Some(Event::Bound)) if winner.is_none() => winner = Some(i),
                    Ok(_) => {}
                    // One link failing (its NIC went away, say) must not stop the others;
                    // when it was the last one, its error is the answer.
                    Err(_) if sessions.len() > 1 || !waiting.is_empty() => {
                        sessions.remove(i);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                i += 1;
            }
            if let Some(i) = winner {
                let session = sessions.swap_remove(i);
                for loser in sessions.iter_mut() {
                    if let Some(send) = loser.client.release() {
                        let _ = loser.transmit(send); // best effort: the lease times out anyway
                    }
                }
                let carrier_to_bound = monotonic().saturating_sub(session.carrier_at);
                let config = NetConfig::from_lease(session.client.lease().expect("bound"));
                let (link, dhcp) = (session.link, Some(BoundClient { session, carrier_to_bound }));
                return Ok(Network { link, config, dhcp });
            }
            if now >= deadline {
                let waited_secs = timeout.as_secs();
                if sessions.is_empty() {
                    // The links still waiting (those that vanished meanwhile are not named).
                    return Err(NetError::NoCarrier { links: link::names(waiting), waited_secs });
                }
                let (mut links, mut replies, mut naks, mut ignored) = (String::new(), 0, 0, 0);
                for s in sessions.iter() {
                    link::push_name(&mut links, s.link.name);
                    replies += s.client.replies;
                    naks += s.client.naks;
                    ignored += s.client.ignored;
                }
                let e = DhcpError::NoLease { links, waited_secs, replies, naks, ignored };
                return Err(NetError::Dhcp(e));
            }
            let mut wake = deadline;
            let mut fds = Vec::new();
            for s in sessions.iter() {
                wake = wake.min(s.client.next_wakeup());
                fds.push(PollFd::new(s.socket.raw(), READABLE));
            }
            if !waiting.is_empty() {
                wake = wake.min(now + CARRIER_CHECK);
            }
            poll::poll(&mut fds, wake.saturating_sub(monotonic()))
                .map_err(sys("waiting for DHCP replies", IfName::NONE))?;
        }
    }
}

/// The network as brought up: which link, with what, and the DHCP client if any.
pub struct Network {
    pub link: Link,
    pub config: NetConfig,
    pub dhcp: Option<BoundClient>,
}

impl Network {
    /// The machine's identity for the provisioning server.
    pub fn mac(&self) -> [u8; 6] {
        self.link.mac
    }
}

/// Brings up the network from `ip=` and `imprint.iface=`: picks links, gets a lease (or
/// takes the static values) and applies it. Waits at most `timeout` for carrier and lease.
pub fn bring_up(
    ip: Option<&str>,
    iface: Option<&str>,
    timeout: Duration,
) -> Result<Network, NetError> {
    let setting = static_ip::parse(ip)
        .map_err(|f| f.map_or(NetError::IpOff, |field| NetError::BadIp { field }))?;
    let dev = NetDev::open().map_err(sys("opening a socket for interface ioctls", IfName::NONE))?;
    let mut links = link::ethernet_links(&dev).map_err(sys("listing interfaces", IfName::NONE))?;
    if links.is_empty() {
        return Err(NetError::NoLinks);
    }
    let present = link::names(&links);
    // imprint.iface= wins over the device field of ip=.
    let wanted = iface.or(setting.device.as_deref());
    link::select(&mut links, wanted);
    if links.is_empty() {
        let wanted = String::from(wanted.unwrap_or_default());
        return Err(NetError::NoSuchLink { wanted, present });
    }
    for l in &links {
        link::bring_up(&dev, l).map_err(sys("bringing the link up", l.name))?;
    }
    let (hostname, fixed) = (setting.hostname, setting.fixed);
    let network =
        Acquiring { waiting: links, sessions: Vec::new(), hostname, fixed }.run(&dev, timeout)?;
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
        let router: &dyn fmt::Display = match &c.gateway {
            Some(gateway) => &Dotted(*gateway),
            None => &"none",
        };
        // Few, long format strings: every write! call costs the init code bytes.
        write!(
            f,
            "  interface {} ({}), by {how}\n  address   {}/{} (mask {})\n  router    {router}\n  dns      ",
            net.link.name,
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
            for (label, name) in
                [("hostname", &l.options.hostname), ("domain  ", &l.options.domain)]
            {
                if let Some(name) = name {
                    writeln!(f, "  {label}  {name}")?;
                }
            }
        }
        Ok(())
    }
}

/// `imprint dhcp [<iface>] [--release] [--timeout S] [--hold S]`: gets a lease on one link
/// (without <iface>: on every Ethernet link at once, as PID 1 does), applies it, prints it;
/// with `--hold`, keeps it (renewing) for S seconds; with `--release`, gives it back at the
/// end. Returns the exit status.
pub fn dhcp_command(args: &[&[u8]]) -> i32 {
    match dhcp_command_inner(args) {
        Ok(()) => 0,
        Err(e) => {
            errln!("imprint: dhcp: {e}");
            if matches!(e, NetError::Usage(_)) {
                crate::tool::EXIT_USAGE
            } else {
                1
            }
        }
    }
}

fn dhcp_command_inner(args: &[&[u8]]) -> Result<(), NetError> {
    let (mut iface, mut release) = (None, false);
    let (mut timeout, mut hold) = (DEFAULT_TIMEOUT.as_secs() as u32, 0);
    let mut rest = args.iter().map(|a| core::str::from_utf8(a).unwrap_or("\0"));
    while let Some(arg) = rest.next() {
        let (seconds, needs) = match arg {
            "--release" => {
                release = true;
                continue;
            }
            "--timeout" => (&mut timeout, "--timeout needs a number of seconds"),
            "--hold" => (&mut hold, "--hold needs a number of seconds"),
            name if iface.is_none() && !name.starts_with('-') && name != "\0" => {
                iface = Some(name);
                continue;
            }
            _ => return Err(NetError::Usage("unexpected argument")),
        };
        *seconds = rest.next().and_then(|v| v.parse().ok()).ok_or(NetError::Usage(needs))?;
    }
    let network = bring_up(None, iface, Duration::from_secs(timeout.into()))?;
    say!("imprint: network up\n{}", Summary(&network));
    let mut client = network.dhcp.expect("bring_up(ip=dhcp) returns a DHCP client");
    let end = monotonic() + Duration::from_secs(hold.into());
    while monotonic() < end {
        if client.tick(monotonic())? {
            let l = client.lease();
            sayln!("imprint: lease renewed: {} s from {}", l.lease_secs, Dotted(l.server));
        }
        client.wait(end)?;
    }
    if release {
        client.release()?;
        sayln!("imprint: lease released");
    }
    Ok(())
}

// Last in the file: test data, not code (tests/audit.py counts each file up to here).
#[cfg(test)]
mod captures;
