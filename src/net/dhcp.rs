//! The DHCPv4 client state machine (RFC 2131), without I/O: it is fed packets and the
//! time, and says what to send where. The driver in `net/mod.rs` owns the sockets and the
//! clock, so the tests here run the whole machine on a fake clock.
//!
//! INIT → SELECTING → REQUESTING → BOUND → RENEWING → REBINDING, a NAK back to INIT.
//! Replies are checked (xid, chaddr, message type, server identifier, offered address,
//! non-zero lease); anything else is counted in `ignored` and dropped, never trusted.

use super::ipconfig::NetConfig;
use super::options;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr};

/// The vendor class (option 60) imprint announces, so servers can tell it apart.
pub const VENDOR_CLASS: &[u8] = b"imprint";
/// Times here are milliseconds of the monotonic clock: plain integers cost the init less
/// code than `Duration`s.
/// Retransmission: 4 s, doubling, capped at 64 s, each ±1 s (RFC 2131 section 4.1).
const FIRST_RETRY: u64 = 4000;
const MAX_RETRY: u64 = 64_000;
/// REQUESTs sent in REQUESTING before starting over with a DISCOVER.
const MAX_REQUESTS: u32 = 4;
/// Shortest wait between renewal retransmissions. RFC 2131 says 60 s, which would leave
/// leases shorter than two minutes no second try; one second still never floods a server.
const MIN_RENEW_RETRY: u64 = 1000;

/// Message types (option 53).
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
const RELEASE: u8 = 7;

/// RENEWING and REBINDING are BOUND past T1 and past T2: the lease's times tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    #[default]
    Init,
    Selecting,
    Requesting,
    Bound,
}

/// What the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Address, mask, gateway (RFC 3442: the 0.0.0.0/0 classless route if any, else the
    /// first router), routes, DNS, MTU, host name, as the link gets them.
    pub config: NetConfig,
    pub domain: Option<String>,
    pub server: Ipv4Addr,
    pub lease_secs: u32,
    pub renew_secs: u32,
    pub rebind_secs: u32,
}

/// A mask as a prefix length; `None` if its bits are not contiguous.
pub fn prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

pub fn mask_of(prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix_len.min(32))).unwrap_or(0))
}

/// The classful default mask, as the kernel's ipconfig uses when none is given.
pub fn class_mask(address: Ipv4Addr) -> Ipv4Addr {
    match address.octets()[0] {
        0..=127 => Ipv4Addr::new(255, 0, 0, 0),
        128..=191 => Ipv4Addr::new(255, 255, 0, 0),
        _ => Ipv4Addr::new(255, 255, 255, 0),
    }
}

/// A DHCP message to send to port 67 of an address: 255.255.255.255 (a broadcast on the
/// link) or the server's (RENEWING, RELEASE).
pub type Send = (Ipv4Addr, Vec<u8>);

/// What a received packet changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A lease was granted (REQUESTING → BOUND).
    Bound,
    /// The lease was extended (RENEWING or REBINDING → BOUND).
    Renewed,
    /// The server refused to extend the lease: it is gone.
    Lost,
}

#[derive(Default)]
pub struct Client {
    mac: [u8; 6],
    hostname: Option<String>,
    state: State,
    xid: u32,
    rng: u64,
    attempt: u32,
    /// When `poll` next has something to do: a (re)transmission, T1, T2 or the lease's end.
    next_send: u64,
    started: u64,
    /// The offer taken, then the lease held: (server, address).
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    pub lease: Option<Lease>,
    bound_at: u64,
    /// Replies dropped since the start.
    pub ignored: u32,
    /// Valid replies for us, and how many of them were refusals (DHCPNAK).
    pub replies: u32,
    pub naks: u32,
}

impl Client {
    /// A client for the link with address `mac`; `seed` feeds the xid and the jitter.
    pub fn new(mac: [u8; 6], hostname: Option<String>, seed: u64, now: u64) -> Client {
        let [a, b, c, d, e, f] = mac;
        let rng = seed ^ u64::from_le_bytes([a, b, c, d, e, f, 0x5a, 0xa5]);
        let rng = if rng == 0 { 0x9e37_79b9_7f4a_7c15 } else { rng };
        // Option 12 holds 1 to 255 bytes; another name is not sent.
        let hostname = hostname.filter(|name| (1..=255).contains(&name.len()));
        Client { mac, hostname, rng, next_send: now, started: now, ..Client::default() }
    }

    /// xorshift64: enough to make our xid and jitter differ from a neighbour's.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// 4 s, 8 s, ... 64 s for attempt 0, 1, ..., each moved by up to ±1 s at random.
    fn backoff(&mut self, attempt: u32) -> u64 {
        let base = (FIRST_RETRY << attempt.min(4)).min(MAX_RETRY);
        base + self.random() % 2001 - 1000
    }

    /// When the lease's time `secs` (T1, T2 or its end) comes.
    fn at(&self, secs: u32) -> u64 {
        self.bound_at + u64::from(secs) * 1000
    }

    /// When `poll` next has something to do (a retransmission or a timer).
    pub fn next_wakeup(&self) -> u64 {
        self.next_send
    }

    /// Runs the timers; returns a message to send now, if any. When the lease expires
    /// (REBINDING found no server in time), the client is back in INIT without it.
    pub fn poll(&mut self, now: u64) -> Option<Send> {
        if now < self.next_send {
            return None;
        }
        let secs = (now.saturating_sub(self.started) / 1000).min(u64::from(u16::MAX)) as u16;
        match self.state {
            // A new exchange, also after MAX_REQUESTS unanswered REQUESTs: a new xid.
            State::Init | State::Requesting
                if self.state == State::Init || self.attempt >= MAX_REQUESTS =>
            {
                self.xid = self.random() as u32;
                self.started = now;
                self.attempt = 0;
                self.offer = None;
                self.state = State::Selecting;
                self.poll(now)
            }
            State::Bound => {
                let lease = self.lease.as_ref()?;
                let (server, address) = (lease.server, lease.config.address);
                let (t2, end) = (self.at(lease.rebind_secs), self.at(lease.lease_secs));
                if now >= end {
                    self.state = State::Init;
                    self.lease = None;
                    return None;
                }
                // ciaddr set, no server identifier or requested address; unicast to the
                // server while renewing (T1 to T2), broadcast while rebinding (RFC 2131
                // 4.4.5); again after half the time left to T2 or the end.
                let (to, until) = if now < t2 { (server, t2) } else { (Ipv4Addr::BROADCAST, end) };
                let retry = ((until - now) / 2).max(MIN_RENEW_RETRY);
                self.next_send = until.min(now + retry);
                Some((to, self.emit(REQUEST, secs, address, None)))
            }
            // SELECTING or REQUESTING: in REQUESTING, broadcast too, naming the chosen
            // server and address, so the other servers that offered learn they were not.
            _ => {
                self.next_send = now + self.backoff(self.attempt);
                self.attempt += 1;
                let kind = if self.offer.is_some() { REQUEST } else { DISCOVER };
                Some((
                    Ipv4Addr::BROADCAST,
                    self.emit(kind, secs, Ipv4Addr::UNSPECIFIED, self.offer),
                ))
            }
        }
    }

    /// A RELEASE of the current lease (for `--release` and losing links), if bound.
    pub fn release(&mut self) -> Option<Send> {
        let lease = self.lease.take()?;
        self.state = State::Init;
        let (server, address) = (lease.server, lease.config.address);
        Some((server, self.emit(RELEASE, 0, address, Some((server, address)))))
    }

    /// A message of type `kind` from us: the BOOTP header (our xid, MAC and `client_ip`),
    /// then the options: the server identifier and, but in a RELEASE, the requested
    /// address of `offer`; but in a RELEASE too, our wishes and identity (RFC 2131 table 5).
    fn emit(
        &self,
        kind: u8,
        secs: u16,
        client_ip: Ipv4Addr,
        offer: Option<(Ipv4Addr, Ipv4Addr)>,
    ) -> Vec<u8> {
        // The BOOTP header (RFC 2131 figure 1) at its fixed offsets: op BOOTREQUEST,
        // Ethernet with 6-byte addresses, xid, secs, ciaddr, chaddr, then the magic cookie.
        let mut header = [0u8; options::AREA_START];
        header[..3].copy_from_slice(&[1, options::HTYPE_ETHERNET, 6]);
        header[4..8].copy_from_slice(&self.xid.to_be_bytes());
        header[8..10].copy_from_slice(&secs.to_be_bytes());
        header[12..16].copy_from_slice(&client_ip.octets());
        header[28..34].copy_from_slice(&self.mac);
        header[236..].copy_from_slice(&options::MAGIC.to_be_bytes());
        let mut buf = header.to_vec();
        let mut put = |code: u8, data: &[u8]| {
            buf.extend_from_slice(&[code, data.len() as u8]);
            buf.extend_from_slice(data);
        };
        put(53, &[kind]); // message type
        let [a, b, c, d, e, f] = self.mac;
        put(61, &[options::HTYPE_ETHERNET, a, b, c, d, e, f]); // client identifier
        if let Some((server, _)) = offer {
            put(54, &server.octets());
        }
        if kind != RELEASE {
            if let Some((_, address)) = offer {
                put(50, &address.octets());
            }
            put(55, &options::PARAMETER_REQUEST_LIST);
            put(57, &1500u16.to_be_bytes()); // maximum message size
            put(60, VENDOR_CLASS);
            if let Some(name) = &self.hostname {
                put(12, name.as_bytes());
            }
        }
        buf.push(255); // the end option
        buf
    }

    /// Out of line: every check of a reply ends here when it fails.
    #[inline(never)]
    fn ignore(&mut self) -> Option<Event> {
        self.ignored = self.ignored.saturating_add(1);
        None
    }

    /// Feeds one DHCP message (the UDP payload) received at `now`.
    // Out of line: inlined into the driver, it makes the init bigger.
    #[inline(never)]
    pub fn receive(&mut self, now: u64, message: &[u8]) -> Option<Event> {
        // The BOOTP header: op BOOTREPLY, Ethernet, 6-byte addresses, our xid and MAC,
        // the magic cookie; then the options.
        let Some((h, area)) = message.split_first_chunk::<{ options::AREA_START }>() else {
            return self.ignore();
        };
        let your_ip = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
        let Some((kind, lease)) = options::parse_reply(area, your_ip) else {
            return self.ignore();
        };
        if h[..3] != [2, options::HTYPE_ETHERNET, 6]
            || h[4..8] != self.xid.to_be_bytes()
            || h[28..34] != self.mac
            || h[236..] != options::MAGIC.to_be_bytes()
        {
            return self.ignore();
        }
        // The server identifier, 0.0.0.0 when the reply has none.
        let (server, none) = (lease.server, lease.server.is_unspecified());
        let bound = self.state == State::Bound;
        // An ACK without a lease time grants nothing.
        let timed = lease.lease_secs > 0;
        self.replies = self.replies.saturating_add(1);
        match (self.state, kind) {
            (State::Selecting, OFFER)
                if !none && !your_ip.is_unspecified() && !your_ip.is_broadcast() =>
            {
                // The first valid offer wins: waiting for more costs time and any
                // server's lease does the job.
                self.offer = Some((server, your_ip));
                self.state = State::Requesting;
                self.attempt = 0;
                self.next_send = now;
                None
            }
            // For the address asked; while requesting, from the server chosen (a renewal
            // may come from another server while rebinding).
            (State::Requesting | State::Bound, ACK) => match self.offer {
                Some((chosen, address))
                    if (none || bound || server == chosen) && your_ip == address && timed =>
                {
                    let server = if none { chosen } else { server };
                    self.offer = Some((server, address));
                    self.lease = Some(Lease { server, ..lease });
                    self.state = State::Bound;
                    self.bound_at = now;
                    // A new xid for the renewals; the timers start at T1.
                    self.xid = self.random() as u32;
                    self.next_send = self.at(self.lease.as_ref()?.renew_secs);
                    Some(if bound { Event::Renewed } else { Event::Bound })
                }
                _ => self.ignore(),
            },
            (State::Requesting | State::Bound, NAK) => {
                if !bound && !none && self.offer.map(|(chosen, _)| chosen) != Some(server) {
                    return self.ignore();
                }
                // Back to DISCOVER: at once the first time (the server may just have
                // lost our offer), then backing off like a retransmission, so a server
                // that refuses everything is not flooded. A lease held is lost.
                self.naks += 1;
                self.state = State::Init;
                self.next_send = match self.naks {
                    1 => now,
                    n => now + self.backoff(n - 2),
                };
                self.lease.take().map(|_| Event::Lost)
            }
            _ => self.ignore(),
        }
    }
}

/// Wraps a DHCP message in UDP (68 → 67) and IPv4 from `src` to the broadcast address,
/// for the packet socket: headers and checksums written by smoltcp's wire types.
pub fn frame(src_addr: Ipv4Addr, message: &[u8]) -> Vec<u8> {
    let (dst_addr, next_header) = (Ipv4Addr::BROADCAST, IpProtocol::Udp);
    let caps = ChecksumCapabilities::default();
    let mut buf = alloc::vec![0; 28 + message.len()];
    let (header, udp) = buf.split_at_mut(20);
    let ip = Ipv4Repr { src_addr, dst_addr, next_header, payload_len: udp.len(), hop_limit: 64 };
    ip.emit(&mut Ipv4Packet::new_unchecked(header), &caps);
    let (src, dst) = (src_addr.into(), dst_addr.into());
    let fill = |payload: &mut [u8]| payload.copy_from_slice(message);
    let repr = UdpRepr { src_port: 68, dst_port: 67 };
    repr.emit(&mut UdpPacket::new_unchecked(udp), &src, &dst, message.len(), fill, &caps);
    buf
}

/// The DHCP message inside a received IPv4 datagram, checked by smoltcp's wire types: the
/// IPv4 header (lengths, checksum, not a fragment), UDP from port 67 to 68 and, unless the
/// kernel says it was never filled in (offload), the UDP checksum. `None`: not a DHCP
/// reply for us (counted).
// Out of line: inlined into the driver, it makes the init bigger.
#[inline(never)]
pub fn unframe(datagram: &[u8], checksum_not_ready: bool) -> Option<&[u8]> {
    let ip = Ipv4Packet::new_checked(datagram).ok()?;
    let repr = Ipv4Repr::parse(&ip, &ChecksumCapabilities::default()).ok()?;
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    let (src, dst) = (repr.src_addr.into(), repr.dst_addr.into());
    // (A zero UDP checksum, the sender computed none, passes verify_checksum.)
    let summed = checksum_not_ready || udp.verify_checksum(&src, &dst);
    let dhcp = (udp.src_port(), udp.dst_port()) == (67, 68);
    (repr.next_header == IpProtocol::Udp && dhcp && summed).then(|| udp.payload())
}

#[cfg(test)]
mod tests {
    use super::super::captures::*;
    use super::*;
    use smoltcp::wire::{DhcpMessageType, DhcpPacket, DhcpRepr};

    const DNSMASQ_MAC: [u8; 6] = [0xa2, 0x61, 0xef, 0x0b, 0x8e, 0x96];
    const KEA_MAC: [u8; 6] = [0x66, 0x06, 0x3a, 0x2c, 0x99, 0xe9];
    const S: u64 = 1000;

    fn ms(n: u64) -> u64 {
        n
    }

    /// The DHCP message in a captured datagram (the captures' checksums may be partial).
    fn message(datagram: &[u8]) -> Vec<u8> {
        unframe(datagram, true).unwrap().to_vec()
    }

    /// The options of a message we sent, as (code, data), by smoltcp's walk.
    fn options_of(msg: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let packet = DhcpPacket::new_checked(msg).unwrap();
        packet.options().map(|o| (o.kind, o.data.to_vec())).collect()
    }

    /// DhcpRepr borrows from a packet view; tests leak both to keep the helper simple.
    fn parse(bytes: &[u8]) -> DhcpRepr<'static> {
        let bytes: &'static [u8] = std::boxed::Box::leak(bytes.to_vec().into_boxed_slice());
        let packet: &'static DhcpPacket<&[u8]> =
            std::boxed::Box::leak(std::boxed::Box::new(DhcpPacket::new_checked(bytes).unwrap()));
        DhcpRepr::parse(packet).unwrap()
    }

    fn sent(send: Option<Send>) -> Vec<u8> {
        match send {
            Some((to, m)) if to == Ipv4Addr::BROADCAST => m,
            other => panic!("expected a broadcast, got {other:?}"),
        }
    }

    /// Offset of option `code`'s length byte in a DHCP message.
    fn option_at(msg: &[u8], code: u8) -> usize {
        let mut at = 240;
        while msg[at] != code {
            at += if msg[at] == 0 { 1 } else { 2 + msg[at + 1] as usize };
        }
        at + 1
    }

    /// A client that has sent its DISCOVER with the capture's xid.
    fn selecting(mac: [u8; 6], xid: u32) -> Client {
        let mut c = Client::new(mac, Some("node7".into()), 42, 0);
        let discover = sent(c.poll(0));
        assert_eq!(parse(&discover).message_type, DhcpMessageType::Discover);
        c.xid = xid;
        c
    }

    fn bound_with_dnsmasq() -> Client {
        let mut c = selecting(DNSMASQ_MAC, 0x96b5524d);
        assert_eq!(c.receive(ms(3), &message(&DNSMASQ_OFFER)), None);
        sent(c.poll(ms(3)));
        assert_eq!(c.receive(ms(5), &message(&DNSMASQ_ACK)), Some(Event::Bound));
        c
    }

    #[test]
    fn frames_check_checksums_unless_the_kernel_says_not_ready() {
        // dnsmasq's replies on veth carry only the pseudo-header sum: checked, they fail.
        assert_eq!(unframe(&DNSMASQ_ACK, false), None);
        assert!(unframe(&DNSMASQ_ACK, true).is_some());
        // kea fills its checksums in: they verify.
        assert_eq!(unframe(&KEA_ACK, false).map(|m| m.len()), Some(KEA_ACK.len() - 28));
        let mut broken = KEA_ACK;
        broken[300] ^= 0xff;
        assert_eq!(unframe(&broken, false), None);
        assert!(unframe(&broken, true).is_some());
        let mut header = KEA_ACK;
        header[8] ^= 1; // ttl: the IPv4 header checksum no longer holds
        assert_eq!(unframe(&header, true), None);
        let mut fragment = KEA_ACK;
        fragment[6] |= 0x20; // more fragments
        assert_eq!(unframe(&fragment, true), None);
        assert_eq!(unframe(&KEA_ACK[..100], true), None);
        // A datagram between the wrong ports (a client's, say) is not a reply for us.
        let mut ports = KEA_ACK;
        ports[21] = 68;
        ports[23] = 67;
        assert_eq!(unframe(&ports, true), None);
        // A UDP checksum of 0 means the sender computed none: accepted.
        let mut none = KEA_ACK;
        none[300] ^= 0xff;
        none[26..28].copy_from_slice(&[0, 0]);
        assert!(unframe(&none, false).is_some());
    }

    /// The ones' complement sum of `data` as 16-bit words (RFC 1071), folded: our own
    /// check of the checksums smoltcp writes (0xffff when a checksummed area verifies).
    fn ones_sum(parts: &[&[u8]]) -> u16 {
        let mut sum = 0u32;
        for part in parts {
            for c in part.chunks(2) {
                sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn our_frames_are_broadcast_udp_with_right_checksums() {
        for (src, payload) in
            [(Ipv4Addr::UNSPECIFIED, &b"hello"[..]), (Ipv4Addr::new(10, 0, 0, 9), b"odd")]
        {
            let ours = frame(src, payload);
            let (ip, udp) = ours.split_at(20);
            let len = 28 + payload.len() as u8;
            // IPv4: version 4, 20-byte header, the length, TTL 64, UDP, to 255.255.255.255.
            assert_eq!((ip[0], ip[2], ip[3], ip[8], ip[9]), (0x45, 0, len, 64, 17));
            assert_eq!((&ip[12..16], &ip[16..20]), (&src.octets()[..], &[255; 4][..]));
            assert_eq!(ones_sum(&[ip]), 0xffff, "the IPv4 header checksum holds");
            // UDP from the client port to the server port, then the message.
            assert_eq!(&udp[..6], &[0, 68, 0, 67, 0, len - 20]);
            assert_eq!(&udp[8..], payload);
            let pseudo = [&ip[12..20], &[0, 17, 0, len - 20], udp];
            assert_eq!(ones_sum(&pseudo), 0xffff, "the UDP checksum holds");
            assert_ne!(&udp[6..8], &[0, 0], "a UDP checksum is sent");
            // Not taken for a reply: the ports are the client's, not a server's.
            assert_eq!(unframe(&ours, false), None);
        }
    }

    #[test]
    fn discover_announces_identity_and_wishes() {
        let mut c = Client::new(KEA_MAC, Some("node7".into()), 7, 0);
        let msg = sent(c.poll(0));
        let repr = parse(&msg);
        assert_eq!(repr.client_hardware_address.0, KEA_MAC);
        assert_eq!(repr.client_identifier.map(|m| m.0), Some(KEA_MAC));
        assert_eq!(repr.parameter_request_list, Some(&options::PARAMETER_REQUEST_LIST[..]));
        let opts = options_of(&msg);
        assert!(opts.contains(&(60, b"imprint".to_vec())), "{opts:?}");
        assert!(opts.contains(&(12, b"node7".to_vec())), "{opts:?}");
        assert_eq!(c.state, State::Selecting);
    }

    #[test]
    fn dnsmasq_offer_request_ack() {
        let mut c = selecting(DNSMASQ_MAC, 0x96b5524d);
        assert_eq!(c.receive(ms(3), &message(&DNSMASQ_OFFER)), None);
        assert_eq!(c.state, State::Requesting);
        let request = sent(c.poll(ms(3)));
        let repr = parse(&request);
        assert_eq!(repr.message_type, DhcpMessageType::Request);
        assert_eq!(repr.requested_ip, Some(Ipv4Addr::new(10, 213, 1, 61)));
        assert_eq!(repr.server_identifier, Some(Ipv4Addr::new(10, 213, 1, 1)));
        assert_eq!(c.receive(ms(5), &message(&DNSMASQ_ACK)), Some(Event::Bound));
        let lease = c.lease.as_ref().unwrap();
        assert_eq!(lease.config.address, Ipv4Addr::new(10, 213, 1, 61));
        assert_eq!(lease.config.prefix_len, 24);
        assert_eq!(lease.config.gateway, Some(Ipv4Addr::new(10, 213, 1, 1)));
        assert_eq!(lease.config.dns, [Ipv4Addr::new(10, 213, 1, 1)]);
        assert_eq!((lease.lease_secs, lease.renew_secs, lease.rebind_secs), (120, 60, 105));
        assert_eq!(lease.server, Ipv4Addr::new(10, 213, 1, 1));
        assert_eq!(c.ignored, 0);
    }

    #[test]
    fn dnsmasq_nak_goes_back_to_discover() {
        let mut c = selecting(DNSMASQ_MAC, 0x5f1791dd);
        let offer = message(&DNSMASQ_NAK); // same xid; rebuild an offer from the NAK's run
        assert_eq!(parse(&offer).message_type, DhcpMessageType::Nak);
        // Put the client in REQUESTING for 10.213.1.61 from 10.213.1.1, as in the capture.
        c.state = State::Requesting;
        c.offer = Some((Ipv4Addr::new(10, 213, 1, 1), Ipv4Addr::new(10, 213, 1, 61)));
        assert_eq!(c.receive(ms(1), &offer), None);
        assert_eq!(c.state, State::Init);
        let discover = sent(c.poll(ms(1)));
        assert_eq!(parse(&discover).message_type, DhcpMessageType::Discover);
        assert_ne!(parse(&discover).transaction_id, 0x5f1791dd, "a new exchange, a new xid");
        // A second NAK in a row waits (a server refusing everything is not flooded).
        c.state = State::Requesting;
        c.offer = Some((Ipv4Addr::new(10, 213, 1, 1), Ipv4Addr::new(10, 213, 1, 61)));
        c.xid = 0x5f1791dd;
        assert_eq!(c.receive(ms(2), &offer), None);
        assert_eq!(c.poll(ms(2)), None);
        assert!(c.next_wakeup() >= ms(2) + 3 * S);
    }

    #[test]
    fn kea_lease_renews_at_t1_by_unicast_then_rebinds_then_expires() {
        let mut c = selecting(KEA_MAC, 0x1dee7441);
        c.receive(ms(1), &message(&KEA_OFFER));
        sent(c.poll(ms(1)));
        assert_eq!(c.receive(ms(2), &message(&KEA_ACK)), Some(Event::Bound));
        let lease = c.lease.as_ref().unwrap().clone();
        assert_eq!((lease.lease_secs, lease.renew_secs, lease.rebind_secs), (6, 2, 4));
        assert_eq!(lease.config.address, Ipv4Addr::new(10, 213, 2, 50));
        // Nothing before T1.
        assert_eq!(c.poll(ms(1500)), None);
        assert_eq!(c.next_wakeup(), ms(2) + 2 * S);
        // T1: a unicast REQUEST to the server, ciaddr set, no server id.
        let Some((to, renew)) = c.poll(ms(2002)) else { panic!("no renewal at T1") };
        assert_eq!(to, Ipv4Addr::new(10, 213, 2, 1));
        let repr = parse(&renew);
        assert_eq!(
            (repr.message_type, repr.client_ip, repr.server_identifier),
            (DhcpMessageType::Request, lease.config.address, None)
        );
        assert_eq!(c.state, State::Bound);
        c.xid = 0x5da826d7;
        assert_eq!(c.receive(ms(2003), &message(&KEA_RENEW_ACK)), Some(Event::Renewed));
        assert_eq!(c.state, State::Bound);
        // No answer this time: renew at T1, rebind (broadcast) at T2, expire at the end.
        let t1 = ms(2003) + 2 * S;
        assert!(matches!(c.poll(t1), Some((to, _)) if to == lease.server));
        assert_eq!(c.poll(t1 + ms(100)), None, "half the time to T2, at least 1 s");
        let t2 = ms(2003) + 4 * S;
        let rebind = sent(c.poll(t2));
        assert_eq!(parse(&rebind).client_ip, lease.config.address);
        assert_eq!(c.state, State::Bound);
        // The end: the lease is gone, nothing is sent, DISCOVER comes next.
        assert_eq!(c.poll(ms(2003) + 6 * S), None);
        assert_eq!((c.state, c.lease.as_ref()), (State::Init, None));
        assert_eq!(parse(&sent(c.poll(ms(2003) + 6 * S))).message_type, DhcpMessageType::Discover);
    }

    #[test]
    fn retransmissions_back_off_exponentially_with_jitter_and_a_cap() {
        let mut c = Client::new(KEA_MAC, None, 99, 0);
        let mut now = 0;
        sent(c.poll(now));
        for base in [4u64, 8, 16, 32, 64, 64, 64] {
            let gap = c.next_wakeup() - now;
            assert!(gap >= S * (base - 1) && gap <= S * (base + 1), "gap {gap:?} for {base} s");
            assert_eq!(c.poll(now + gap - ms(1)), None, "no send before the gap ends");
            now += gap;
            let msg = sent(c.poll(now));
            assert_eq!(parse(&msg).secs, (now / S) as u16, "secs counts from the start");
        }
    }

    #[test]
    fn requesting_gives_up_after_four_requests_and_rediscovers() {
        let mut c = selecting(DNSMASQ_MAC, 0x96b5524d);
        c.receive(ms(1), &message(&DNSMASQ_OFFER));
        let mut now = ms(1);
        for _ in 0..MAX_REQUESTS {
            assert_eq!(parse(&sent(c.poll(now))).message_type, DhcpMessageType::Request);
            now = c.next_wakeup();
        }
        assert_eq!(parse(&sent(c.poll(now))).message_type, DhcpMessageType::Discover);
        assert_eq!(c.state, State::Selecting);
    }

    #[test]
    fn only_the_first_of_several_offers_is_taken() {
        let mut c = selecting(DNSMASQ_MAC, 0x96b5524d);
        let mut other = message(&DNSMASQ_OFFER);
        let at = option_at(&other, 54);
        other[at + 4] = 9; // server 10.213.1.9 offers too
        other[16..20].copy_from_slice(&[10, 213, 1, 77]); // yiaddr 10.213.1.77
        assert_eq!(c.receive(ms(1), &other), None);
        assert_eq!(c.receive(ms(2), &message(&DNSMASQ_OFFER)), None);
        assert_eq!(c.offer, Some((Ipv4Addr::new(10, 213, 1, 9), Ipv4Addr::new(10, 213, 1, 77))));
        assert_eq!(c.ignored, 1, "the second offer is not taken");
        // An ACK from the server we did not choose is not ours.
        assert_eq!(c.receive(ms(3), &message(&DNSMASQ_ACK)), None);
        assert_eq!(c.ignored, 2);
        assert_eq!(c.state, State::Requesting);
    }

    #[test]
    fn malformed_and_foreign_replies_are_counted_and_ignored() {
        let ack = message(&DNSMASQ_ACK);
        let mut c = selecting(DNSMASQ_MAC, 0x96b5524d);
        c.receive(ms(1), &message(&DNSMASQ_OFFER));
        let mut expect = 0;
        let mut check = |c: &mut Client, bytes: &[u8]| {
            assert_eq!(c.receive(ms(2), bytes), None);
            expect += 1;
            assert_eq!(c.ignored, expect);
            assert_eq!(c.state, State::Requesting);
        };
        let end = ack.iter().rposition(|b| *b == 255).unwrap();
        for cut in [0, 10, 239, 240, 250, end] {
            check(&mut c, &ack[..cut]);
        }
        let mut magic = ack.clone();
        magic[236] ^= 1;
        check(&mut c, &magic);
        let mut overrun = ack.clone();
        let at = option_at(&overrun, 6);
        overrun[at] = 250;
        check(&mut c, &overrun);
        let mut xid = ack.clone();
        xid[4] ^= 1;
        check(&mut c, &xid);
        let mut chaddr = ack.clone();
        chaddr[28] ^= 1;
        check(&mut c, &chaddr);
        let mut zero = ack.clone();
        let at = option_at(&zero, 51);
        zero[at + 1..at + 5].copy_from_slice(&[0; 4]);
        check(&mut c, &zero);
        // After all that, the real ACK still binds.
        assert_eq!(c.receive(ms(3), &ack), Some(Event::Bound));
    }

    #[test]
    fn release_names_the_lease_and_server() {
        let mut c = bound_with_dnsmasq();
        let Some((to, msg)) = c.release() else { panic!("no release") };
        let repr = parse(&msg);
        assert_eq!(to, Ipv4Addr::new(10, 213, 1, 1));
        assert_eq!(
            (repr.message_type, repr.client_ip),
            (DhcpMessageType::Release, Ipv4Addr::new(10, 213, 1, 61))
        );
        assert_eq!(
            (repr.server_identifier, repr.parameter_request_list),
            (Some(Ipv4Addr::new(10, 213, 1, 1)), None)
        );
        assert_eq!(c.release(), None, "nothing left to release");
    }

    #[test]
    fn masks_and_prefixes() {
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_len(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(prefix_len(Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(mask_of(25), Ipv4Addr::new(255, 255, 255, 128));
        assert_eq!(mask_of(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(class_mask(Ipv4Addr::new(172, 16, 0, 1)), Ipv4Addr::new(255, 255, 0, 0));
    }
}

/// Deterministic mutation testing of the reply path (until cargo-fuzz targets land): real
/// replies, mutated by a seeded generator, must never panic, and whatever the client
/// accepts must still satisfy the lease's invariants.
#[cfg(test)]
mod mutation_tests {
    use super::super::captures::*;
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(out.len());
            match rng.below(5) {
                0 => out[at] ^= 1 << rng.below(8),
                1 => out[at] = [0, 1, 4, 0x7f, 0x80, 0xff][rng.below(6)],
                2 => out.truncate(at),
                3 => out.insert(at, rng.next() as u8),
                _ => {
                    if !out.is_empty() {
                        out.remove(at);
                    }
                }
            }
            if out.is_empty() {
                break;
            }
        }
        out
    }

    #[test]
    fn mutated_real_replies_never_panic_or_bind_nonsense() {
        let replies: [(&[u8], u32, [u8; 6], State); 5] = [
            (&DNSMASQ_OFFER, 0x96b5524d, [0xa2, 0x61, 0xef, 0x0b, 0x8e, 0x96], State::Selecting),
            (&DNSMASQ_ACK, 0x96b5524d, [0xa2, 0x61, 0xef, 0x0b, 0x8e, 0x96], State::Requesting),
            (&DNSMASQ_NAK, 0x5f1791dd, [0xa2, 0x61, 0xef, 0x0b, 0x8e, 0x96], State::Requesting),
            (&KEA_ACK, 0x1dee7441, [0x66, 0x06, 0x3a, 0x2c, 0x99, 0xe9], State::Requesting),
            (&KEA_RENEW_ACK, 0x5da826d7, [0x66, 0x06, 0x3a, 0x2c, 0x99, 0xe9], State::Bound),
        ];
        let mut rng = Rng(0x1dee_7441_96b5_524d);
        let (mut accepted, mut rejected) = (0u32, 0u32);
        for round in 0..20_000 {
            let (datagram, xid, mac, state) = replies[round % replies.len()];
            let mutated = mutate(&mut rng, datagram);
            let Some(message) = unframe(&mutated, true) else {
                rejected += 1;
                continue;
            };
            let mut client = Client::new(mac, None, 1, 0);
            client.xid = xid;
            client.state = state;
            client.offer = Some((Ipv4Addr::new(10, 213, 1, 1), Ipv4Addr::new(10, 213, 1, 61)));
            if state == State::Requesting && mac[0] == 0x66 {
                client.offer = Some((Ipv4Addr::new(10, 213, 2, 1), Ipv4Addr::new(10, 213, 2, 50)));
            }
            if state == State::Bound {
                client.offer = Some((Ipv4Addr::new(10, 213, 2, 1), Ipv4Addr::new(10, 213, 2, 50)));
                client.lease = Some(Lease {
                    config: NetConfig {
                        address: Ipv4Addr::new(10, 213, 2, 50),
                        prefix_len: 24,
                        gateway: None,
                        routes: Vec::new(),
                        dns: Vec::new(),
                        mtu: None,
                        hostname: None,
                    },
                    domain: None,
                    server: Ipv4Addr::new(10, 213, 2, 1),
                    lease_secs: 6,
                    renew_secs: 2,
                    rebind_secs: 4,
                });
            }
            let before = client.ignored;
            match client.receive(0, message) {
                Some(Event::Bound | Event::Renewed) => {
                    accepted += 1;
                    let l = client.lease.as_ref().unwrap();
                    assert!(
                        l.lease_secs > 0
                            && l.renew_secs <= l.rebind_secs
                            && l.rebind_secs <= l.lease_secs,
                        "{l:?}"
                    );
                    assert!(
                        !l.config.address.is_unspecified() && l.config.prefix_len <= 32,
                        "{l:?}"
                    );
                    assert!(l
                        .config
                        .hostname
                        .as_deref()
                        .unwrap_or("x")
                        .bytes()
                        .all(|b| b.is_ascii_graphic()));
                }
                Some(_) => accepted += 1,
                None => {
                    // Unless it was a NAK, which sends the client back to INIT.
                    assert!(
                        client.ignored == before + 1
                            || state == State::Selecting
                            || client.state == State::Init,
                        "a dropped reply is counted"
                    );
                    rejected += 1;
                }
            }
        }
        // Both outcomes happen: the mutations are neither all harmless nor all fatal.
        assert!(accepted > 1000 && rejected > 1000, "accepted {accepted}, rejected {rejected}");
    }
}
