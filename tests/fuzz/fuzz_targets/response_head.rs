//! The response head parser on arbitrary bytes: never a panic, and a complete head never
//! claims more bytes than it was given or than the cap allows.
#![no_main]

use imprint::http::response::{Framing, Head, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let head_request = data.first().is_some_and(|b| b & 1 == 1);
    if let Ok(Some((head, len))) = Head::parse(data, head_request) {
        assert!(len <= data.len() && len <= MAX_HEAD);
        if head_request {
            assert_eq!(head.framing, Framing::Empty);
        }
        if head.status == 206 {
            let range = head.content_range.expect("a 206 always has a Content-Range");
            assert!(range.first <= range.last);
        }
    }
});
