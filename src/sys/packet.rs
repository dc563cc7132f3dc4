//! A packet socket for DHCP: `AF_PACKET`, `SOCK_DGRAM` (the kernel adds and strips the
//! Ethernet header), bound to one interface, filtered in the kernel to UDP to port 68,
//! with `PACKET_AUXDATA` so we learn when a checksum was left for the hardware.
//!
//! A raw socket is needed because before the lease there is no address to bind a UDP
//! socket to, and the server may answer to the broadcast or to the offered address. The
//! broadcasts leave here too (from 0.0.0.0 before the lease), framed by net/dhcp.rs.

use super::fd::Fd;
use super::socket::{bind_to, open_socket, send_to, set_option, unless_again};
use super::Result;
use core::mem::size_of;

/// The DHCP client port.
const CLIENT_PORT: u32 = 68;

const fn op(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// Classic BPF, run on the IPv4 header (SOCK_DGRAM): accept UDP to port 68 that is not a
/// fragment, drop the rest, so the client never wakes for other traffic. A static, so
/// nothing builds it at run time.
static DHCP_CLIENT_FILTER: [libc::sock_filter; 9] = [
    op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 9), // A = ip protocol
    op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 6, libc::IPPROTO_UDP as u32),
    op(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 6), // A = flags + fragment offset
    op(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 4, 0, 0x1fff), // a fragment: drop
    op(libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH, 0, 0, 0), // X = ip header length
    op(libc::BPF_LD | libc::BPF_H | libc::BPF_IND, 0, 0, 2), // A = udp destination port
    op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, CLIENT_PORT),
    op(libc::BPF_RET | libc::BPF_K, 0, 0, 0xffff), // accept
    op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),      // drop
];

pub struct PacketSocket {
    fd: Fd,
    ifindex: i32,
}

/// The link-layer address for `bind` (`to` all-zero: any) and `sendto` on `ifindex`.
fn link_address(ifindex: i32, to: [u8; 8]) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: (libc::ETH_P_IP as u16).to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: to,
    }
}

impl PacketSocket {
    /// Opens a non-blocking packet socket that receives UDP to port 68 on `ifindex`.
    pub fn open(ifindex: i32) -> Result<PacketSocket> {
        // Protocol 0: the socket receives nothing until bound, so nothing unfiltered can
        // queue up before the filter is attached.
        let fd = open_socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0)?;
        // The kernel copies the program and never writes through this pointer.
        let fprog = libc::sock_fprog {
            len: DHCP_CLIENT_FILTER.len() as u16,
            filter: DHCP_CLIENT_FILTER.as_ptr().cast_mut(),
        };
        set_option(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
        set_option(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &1 as &libc::c_int)?;
        bind_to(&fd, &link_address(ifindex, [0; 8]))?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// Sends one IPv4 datagram to the link's broadcast address (the kernel adds the
    /// Ethernet header).
    pub fn send_broadcast(&self, datagram: &[u8]) -> Result<()> {
        let everyone = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0];
        send_to(&self.fd, datagram, &link_address(self.ifindex, everyone))
    }

    pub fn raw(&self) -> libc::c_int {
        self.fd.raw()
    }

    /// Receives one packet (an IPv4 datagram, the Ethernet header already removed) into
    /// `buf`: its length and whether the sender left the checksums to the hardware (then
    /// the UDP checksum must not be checked); `None` when nothing is waiting.
    pub fn receive(&self, buf: &mut [u8]) -> Result<Option<(usize, bool)>> {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // Room for one cmsghdr with a tpacket_auxdata, 8-byte aligned.
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = core::mem::size_of_val(&control) as _;
        // SAFETY: msg points at iov (buf, valid for buf.len() bytes) and at `control`, both
        // alive and writable for the whole call.
        let ret = unsafe { libc::recvmsg(self.fd.raw(), &mut msg, libc::MSG_TRUNC) };
        let Some(len) = unless_again(ret)? else { return Ok(None) };
        // SAFETY: CMSG_FIRSTHDR reads the control buffer the kernel filled in, bounded by
        // msg_controllen (null if empty); we read a `tpacket_auxdata` only from a header of
        // that type whose length covers it (read_unaligned: CMSG_DATA need not be aligned
        // for it). PACKET_AUXDATA is the only control message this socket asks for.
        let checksum_not_ready = unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            let wanted = libc::CMSG_LEN(size_of::<libc::tpacket_auxdata>() as u32) as usize;
            !cmsg.is_null()
                && (*cmsg).cmsg_level == libc::SOL_PACKET
                && (*cmsg).cmsg_type == libc::PACKET_AUXDATA
                && (*cmsg).cmsg_len as usize >= wanted
                // Offloaded (on veth and virtio the OFFER and ACK arrive like this): the
                // checksum is not computed yet, so it must not be checked.
                && core::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::tpacket_auxdata>())
                    .tp_status
                    & libc::TP_STATUS_CSUMNOTREADY
                    != 0
        };
        // MSG_TRUNC returns the real length: a packet longer than buf is cut, and says so.
        Ok(Some((len, checksum_not_ready)))
    }
}
