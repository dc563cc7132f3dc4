//! The response head parser on arbitrary bytes: never a panic, and a complete head never
//! claims more bytes than it was given or than the cap allows.
#![no_main]

use imprint::http::response::{Framing, Head, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head, len))) = Head::parse(data) {
        assert!(len <= data.len() && len <= MAX_HEAD);
        if head.status == 204 || head.status == 304 {
            assert_eq!(head.framing, Framing::Length(0));
        }
        if head.status == 206 {
            let range = head.content_range.expect("a 206 always has a Content-Range");
            assert!(range.first <= range.last);
        }
    }
});
