//! The DNS answer decoder on arbitrary bytes: never a panic (compression pointers are
//! bounded), and an address only for the name and id asked.
#![no_main]

use imprint::net::dns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = data.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    for name in ["images.example", "a"] {
        let _ = dns::decode_answer(data, &dns::encode_query(id, name).unwrap());
    }
});
