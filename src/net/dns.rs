//! A stub resolver for A records (RFC 1035) over UDP to the lease's servers: one question,
//! recursion desired, retries across servers, and checks on the answer (id, question echo,
//! truncation, compression pointers bounded so a hostile answer cannot loop us).
//!
//! Its errors are `ResolveError`s, which the HTTP client (its only user) words.

use crate::http::response::equals_ignoring_case;
use crate::sys::poll::{self, READABLE};
use crate::sys::socket::UdpSocket;
use crate::sys::time::monotonic;
use crate::sys::Errno;
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;

/// Why a name did not resolve. Copy, without allocation: every failure path of the
/// decoder stays small, and it is worded once, in `Display`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// No DNS server is known (none from DHCP, `ip=` or the plan).
    NoServer,
    /// The servers answered: the name has no A record (NXDOMAIN or no data).
    NotFound,
    /// No server answered in time; worth retrying.
    TimedOut,
    /// The name cannot be put in a query (empty, too long, an empty or long label).
    BadName,
    /// The answer had the TC bit: the rest would need TCP.
    Truncated,
    /// The server answered with this error code (RCODE), not NXDOMAIN.
    Rcode(u16),
    /// A malformed answer, and what is wrong with it.
    Bad(&'static str),
    /// A socket call failed while doing this.
    Socket(&'static str, Errno),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match *self {
            ResolveError::NoServer => "no DNS server configured",
            ResolveError::NotFound => "no such host (no A record)",
            ResolveError::TimedOut => "no DNS server answered",
            ResolveError::BadName => "not a valid host name",
            ResolveError::Truncated => "the DNS answer was truncated (TCP is not supported)",
            ResolveError::Rcode(n) => return write!(f, "the DNS server answered with error {n}"),
            ResolveError::Bad(what) => return write!(f, "bad DNS answer: {what}"),
            ResolveError::Socket(doing, errno) => return write!(f, "{doing}: {errno}"),
        };
        f.write_str(what)
    }
}

const HEADER_LEN: usize = 12;
/// Rounds over all servers, and how long each query waits for its answer.
const ROUNDS: u32 = 3;
const WAIT: Duration = Duration::from_secs(2);
/// Compression pointers followed in one name before it counts as a loop.
const MAX_POINTERS: usize = 16;
/// RFC 1035 limits.
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// A query for the A record of `name` with id `id`; `None` if `name` is no host name
/// (empty, too long, a label empty or too long).
pub fn encode_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let name = name.as_bytes();
    let name = name.strip_suffix(b".").unwrap_or(name); // the root
    if name.is_empty() || name.len() > MAX_NAME {
        return None;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    // A standard query, recursion desired, one question.
    out.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split(|b| *b == b'.') {
        if label.is_empty() || label.len() > MAX_LABEL {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    // The root, type A, class IN.
    out.extend_from_slice(&[0, 0, 1, 0, 1]);
    Some(out)
}

/// A malformed answer that ends too soon (a name, label, record or field past the end).
const CUT: ResolveError = ResolveError::Bad("cut short");

fn be16(msg: &[u8], at: usize) -> Result<u16, ResolveError> {
    let two = msg.get(at..at.wrapping_add(2)).and_then(|two| two.try_into().ok());
    two.map(u16::from_be_bytes).ok_or(CUT)
}

/// The name at `at` into `name`, in wire form (length-prefixed labels) and
/// zero after it (so whole buffers compare), following compression pointers (at most
/// MAX_POINTERS, so a loop ends as an error); returns where the name ends in place.
fn read_name(msg: &[u8], mut at: usize, name: &mut [u8; 256]) -> Result<usize, ResolveError> {
    let (mut len, mut end, mut pointers) = (0, None, 0);
    *name = [0; 256];
    loop {
        match *msg.get(at).ok_or(CUT)? {
            0 => return Ok(end.unwrap_or(at + 1)),
            n @ 1..=63 => {
                let label = msg.get(at..=at + usize::from(n)).ok_or(CUT)?;
                let to =
                    name.get_mut(len..len + label.len()).ok_or(ResolveError::Bad("too long"))?;
                to.copy_from_slice(label);
                (len, at) = (len + label.len(), at + label.len());
            }
            0xc0..=0xff => {
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(ResolveError::Bad("compression pointer loop"));
                }
                end.get_or_insert(at + 2);
                at = usize::from(be16(msg, at)? & 0x3fff);
            }
            _ => return Err(ResolveError::Bad("unknown label type")),
        }
    }
}

/// What an answer to `query` (from `encode_query`) says. `Ok`: the server's definite
/// answer, which asking again will not change: the first A record for the name (or for
/// the name a CNAME in the answer points to), no such name, or truncated. `Err`: not a
/// usable answer (not ours, malformed, a server failure): another server may do better.
#[inline(never)]
pub fn decode_answer(
    msg: &[u8],
    query: &[u8],
) -> Result<Result<[u8; 4], ResolveError>, ResolveError> {
    if msg.get(..2) != query.get(..2) {
        return Err(ResolveError::Bad("id does not match the query"));
    }
    let flags = be16(msg, 2)?;
    // The QR bit (a response), the TC bit (truncated), the RCODE.
    match (flags & 0x8000, flags & 0x0200, flags & 0xf) {
        (0, ..) => return Err(ResolveError::Bad("not a response")),
        (_, 0, 0) => {}
        (_, 0, 3) => return Ok(Err(ResolveError::NotFound)), // NXDOMAIN
        (_, 0, rcode) => return Err(ResolveError::Rcode(rcode)),
        _ => return Ok(Err(ResolveError::Truncated)),
    }
    // The question as servers echo it: our own, uncompressed (the case of letters may differ).
    let question = msg.get(HEADER_LEN..query.len()).unwrap_or_default();
    if be16(msg, 4)? != 1
        || !equals_ignoring_case(question, query.get(HEADER_LEN..).unwrap_or_default())
    {
        return Err(ResolveError::Bad("question does not echo the query"));
    }
    let (mut wanted, mut owner) = ([0u8; 256], [0; 256]);
    read_name(msg, HEADER_LEN, &mut wanted)?;
    let mut at = query.len();
    for _ in 0..be16(msg, 6)? {
        let next = read_name(msg, at, &mut owner)?;
        let (kind, class, len) = (be16(msg, next)?, be16(msg, next + 2)?, be16(msg, next + 8)?);
        let data_at = next + 10;
        at = data_at + usize::from(len);
        let data = msg.get(data_at..at).ok_or(CUT)?;
        // Class IN, for the name we want: an A record, or a CNAME to follow.
        if class == 1 && equals_ignoring_case(&owner, &wanted) {
            match (kind, data) {
                (1, &[a, b, c, d]) => return Ok(Ok([a, b, c, d])),
                (5, _) => _ = read_name(msg, data_at, &mut wanted)?,
                _ => {}
            }
        }
    }
    Ok(Err(ResolveError::NotFound))
}

/// Resolves `name` to an IPv4 address: a dotted quad as is, else asks `servers` in turn,
/// `ROUNDS` times over, each waiting `WAIT` for its answer.
#[inline(never)]
pub fn resolve_a(servers: &[Ipv4Addr], name: &str) -> Result<[u8; 4], ResolveError> {
    if let Some(addr) = super::static_ip::parse_ipv4(name) {
        return Ok(addr.octets());
    }
    if servers.is_empty() {
        return Err(ResolveError::NoServer);
    }
    let mut query = encode_query(0, name).ok_or(ResolveError::BadName)?;
    let fail = |doing| move |errno| ResolveError::Socket(doing, errno);
    let socket = UdpSocket::open().map_err(fail("opening a socket for DNS"))?;
    // The id only has to differ between queries and be hard to guess off-path: the
    // clock's low nanosecond bits.
    let mut id = monotonic().subsec_nanos() as u16;
    let mut last = ResolveError::TimedOut;
    let mut buf = [0u8; 512];
    for _ in 0..ROUNDS {
        for server in servers {
            id = id.wrapping_add(0x9e37);
            if let [a, b, ..] = query.as_mut_slice() {
                [*a, *b] = id.to_be_bytes();
            }
            socket.send_to(&query, server.octets(), 53).map_err(fail("sending a DNS query"))?;
            // Until the wait times out: then it is the next server's turn.
            let deadline = monotonic() + WAIT;
            while poll::wait(socket.raw(), READABLE, deadline.saturating_sub(monotonic())).is_ok() {
                let got = socket.receive_from(&mut buf).map_err(fail("receiving a DNS answer"))?;
                // Only what the server we asked sends counts.
                if let Some((len, _, 53)) = got.filter(|g| g.1 == server.octets()) {
                    match decode_answer(buf.get(..len).unwrap_or(&buf), &query) {
                        Ok(answer) => return answer,
                        Err(e) => last = e,
                    }
                }
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        let q = encode_query(0x1234, "boot.example.").unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, b'b', b'o', b'o', b't', 7, b'e', b'x',
                b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1
            ]
        );
        assert!(encode_query(1, "").is_none());
        assert!(encode_query(1, "a..b").is_none());
        assert!(encode_query(1, &"x".repeat(64)).is_none());
        assert!(encode_query(1, &["abc"; 70].join(".")).is_none());
    }

    fn query(id: u16, name: &str) -> Vec<u8> {
        encode_query(id, name).unwrap()
    }

    fn bad(what: &'static str) -> ResolveError {
        ResolveError::Bad(what)
    }

    /// A response to query id 0x1234 for boot.example: a CNAME to srv.example (compressed)
    /// and an A record 10.213.0.7 for it.
    fn answer() -> Vec<u8> {
        let mut m = query(0x1234, "boot.example");
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 2; // two answers
                  // boot.example CNAME srv.example: owner is a pointer to the question (offset 12)
        m.extend_from_slice(&[
            0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b's', b'r', b'v', 0xc0, 17,
        ]);
        // srv.example A 10.213.0.7: owner is a pointer to the CNAME's data (offset 42)
        m.extend_from_slice(&[0xc0, 42, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 213, 0, 7]);
        m
    }

    #[test]
    fn follows_cname_and_compression() {
        assert_eq!(
            decode_answer(&answer(), &query(0x1234, "BOOT.example")),
            Ok(Ok([10, 213, 0, 7]))
        );
    }

    #[test]
    fn real_dnsmasq_answers() {
        use super::super::captures::{DNSMASQ_A, DNSMASQ_CNAME, DNSMASQ_NXDOMAIN};
        let q = query(0x1234, "boot.imn.test");
        assert_eq!(&DNSMASQ_A[12..q.len()], &q[12..], "the answer echoes our question");
        assert_eq!(decode_answer(&DNSMASQ_A, &q), Ok(Ok([10, 213, 1, 7])));
        assert_eq!(
            decode_answer(&DNSMASQ_CNAME, &query(0x1235, "alias.imn.test.")),
            Ok(Ok([10, 213, 1, 7]))
        );
        assert_eq!(
            decode_answer(&DNSMASQ_NXDOMAIN, &query(0x1236, "nothing.imn.test")),
            Ok(Err(ResolveError::NotFound))
        );
        assert!(decode_answer(&DNSMASQ_A, &query(0x1234, "boot.imn.tes")).is_err());
    }

    #[test]
    fn checks_id_truncation_rcode_question() {
        let m = answer();
        let q = query(0x1234, "boot.example");
        assert_eq!(
            decode_answer(&m, &query(0x1235, "boot.example")),
            Err(bad("id does not match the query"))
        );
        assert_eq!(
            decode_answer(&m, &query(0x1234, "other.example")),
            Err(bad("question does not echo the query"))
        );
        let mut t = m.clone();
        t[2] |= 0x02;
        assert_eq!(decode_answer(&t, &q), Ok(Err(ResolveError::Truncated)));
        let truncated = "the DNS answer was truncated (TCP is not supported)";
        assert_eq!(ResolveError::Truncated.to_string(), truncated);
        let mut nx = m.clone();
        nx[3] = 0x83;
        assert_eq!(decode_answer(&nx, &q), Ok(Err(ResolveError::NotFound)));
        let mut servfail = m.clone();
        servfail[3] = 0x82;
        assert_eq!(decode_answer(&servfail, &q), Err(ResolveError::Rcode(2)));
        let servfail = "the DNS server answered with error 2";
        assert_eq!(ResolveError::Rcode(2).to_string(), servfail);
        let mut r = m.clone();
        r[2] &= 0x7f;
        assert_eq!(decode_answer(&r, &q), Err(bad("not a response")));
        assert_eq!(bad("not a response").to_string(), "bad DNS answer: not a response");
        let mut none = m.clone();
        none[7] = 0;
        assert_eq!(decode_answer(&none, &q), Ok(Err(ResolveError::NotFound)));
    }

    #[test]
    fn hostile_answers_are_errors_not_hangs_or_panics() {
        let m = answer();
        let q = query(0x1234, "boot.example");
        for cut in 0..m.len() {
            assert!(!matches!(decode_answer(&m[..cut], &q), Ok(Ok(_))), "cut at {cut}");
        }
        // An answer whose owner name points at itself.
        let mut lp = m.clone();
        let at = lp.len() - 16;
        lp[at + 1] = at as u8;
        assert_eq!(decode_answer(&lp, &q), Err(bad("compression pointer loop")));
        // A reserved label type in a record's owner.
        let mut reserved = m.clone();
        reserved[30] = 0x40;
        assert_eq!(decode_answer(&reserved, &q), Err(bad("unknown label type")));
        // A name that repeats a 63-byte label through a pointer to itself: too long
        // for a name before the pointer count says loop.
        let mut long = m.clone();
        let at = long.len() - 16;
        long.truncate(at);
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
        long.extend_from_slice(&[0xc0, at as u8]);
        long.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 213, 0, 7]);
        assert_eq!(decode_answer(&long, &q), Err(bad("too long")));
    }

    #[test]
    fn dotted_quads_need_no_server() {
        assert_eq!(resolve_a(&[], "10.213.0.1"), Ok([10, 213, 0, 1]));
        assert_eq!(resolve_a(&[], "boot.example"), Err(ResolveError::NoServer));
    }
}

/// Deterministic mutation testing of the answer decoder: no panic, no hang, and any
/// address it returns comes from an A record of the mutated message.
#[cfg(test)]
mod mutation_tests {
    use super::*;

    #[test]
    fn mutated_answers_never_panic() {
        let mut m = encode_query(0x1234, "boot.example").unwrap();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 2;
        m.extend_from_slice(&[
            0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, b's', b'r', b'v', 0xc0, 17,
        ]);
        m.extend_from_slice(&[0xc0, 42, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 213, 0, 7]);
        let real = super::super::captures::DNSMASQ_CNAME;
        let queries = [
            encode_query(0x1234, "boot.example").unwrap(),
            encode_query(0x1235, "alias.imn.test").unwrap(),
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut ok, mut bad) = (0, 0);
        for round in 0..50_000 {
            // Half the rounds mutate the hand-built answer, half dnsmasq's real one.
            let mut x = if round % 2 == 0 { m.clone() } else { real.to_vec() };
            for _ in 0..1 + next() % 3 {
                let at = (next() % x.len() as u64) as usize;
                match next() % 3 {
                    0 => x[at] = next() as u8,
                    1 => x[at] ^= 0xc0,
                    _ => x.truncate(at.max(1)),
                }
            }
            match decode_answer(&x, &queries[round % 2]) {
                Ok(Ok(octets)) => {
                    ok += 1;
                    assert!(x.windows(4).any(|w| w == octets), "{octets:?} is not in the message");
                }
                _ => bad += 1,
            }
        }
        assert!(ok > 1000 && bad > 1000, "ok {ok}, bad {bad}");
    }
}
