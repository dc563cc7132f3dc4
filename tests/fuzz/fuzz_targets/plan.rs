//! The JSON parser and the plan decoder on arbitrary bytes: never a panic, and whatever
//! parses as a plan satisfies the plan's own rules.
#![no_main]

use imprint::plan::{self, json, Action};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = json::parse(data);
    if let Ok(p) = plan::parse(data) {
        match p.action {
            Action::WriteImage => assert!(p.str("sourceImage").is_some()),
            Action::ReadImage => assert!(p.destination().is_some()),
        }
        for f in &p.files {
            assert!(f.path.starts_with('/') && f.mode <= 0o7777);
        }
    }
});
