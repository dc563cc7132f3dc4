//! The DHCP client's receive path on arbitrary datagrams: unframing (IPv4 + UDP, checksums),
//! the option walk, and the state machine taking the result as an offer or ack. Never a
//! panic; a hostile packet can at most be counted and ignored.
#![no_main]

use imprint::net::{dhcp, options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checksum_not_ready = data.first().is_some_and(|b| b & 1 == 1);
    let _ = options::parse_reply(data, core::net::Ipv4Addr::UNSPECIFIED);
    if let Some(message) = dhcp::unframe(data, checksum_not_ready) {
        let _ = options::parse_reply(message, core::net::Ipv4Addr::UNSPECIFIED);
        let mut client = dhcp::Client::new([0x52, 0x54, 0, 0x12, 0x34, 0x56], None, 7, 0);
        let _ = client.poll(0);
        let _ = client.receive(1, message);
        let _ = client.receive(2, message);
    }
});
