//! Status reports: small JSON documents POSTed to the plan's `statusURL` at each phase
//! change and every few seconds during transfers, so a provisioning system can show where
//! each machine is. The document:
//!
//! ```json
//! {"mac":"52:54:00:12:34:56","phase":"writing","bytesDone":1048576,"bytesTotal":4194304,
//!  "mbPerSecond":"112.5","sha256":null,"message":"","error":null}
//! ```
//!
//! `bytesTotal` is null when unknown; `mbPerSecond` is a decimal string (imprint formats
//! no floating point); `sha256` is set once the image or capture is verified; `error` on
//! the final report of a failed run.

use crate::console::Quoted;
use crate::image::sha256::Hex;
use crate::net::link::Mac;
use alloc::string::String;
use core::fmt::Display;

/// Where a run is: "starting" (the plan was read), "writing", "capturing", "finishing"
/// (growing partitions and filesystems, writing files), "dry-run" (what would have been
/// done is in `message`), "done" or "failed".
pub type Phase = &'static str;

/// One report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report<'a> {
    pub mac: [u8; 6],
    pub phase: Phase,
    /// Bytes done and in all (`bytesDone`, `bytesTotal`).
    pub done: u64,
    pub total: Option<u64>,
    /// Throughput in kB/s (integer, to stay clear of floating point).
    pub kbps: u64,
    pub sha256: Option<[u8; 32]>,
    pub message: &'a str,
    pub error: Option<&'a str>,
}

impl Report<'_> {
    /// The JSON document, in one formatting call (strings are escaped by `Quoted`).
    pub fn to_json(&self) -> String {
        let kbps = self.kbps;
        let (hex, error) = (self.sha256.as_ref().map(|h| Hex(h)), self.error.map(Quoted));
        let (q, sha256): (&str, &dyn Display) = match &hex {
            Some(hex) => ("\"", hex),
            None => ("", &"null"),
        };
        let total: &dyn Display = self.total.as_ref().map_or(&"null", |n| n);
        let error: &dyn Display = error.as_ref().map_or(&"null", |e| e);
        text!(
            "{{\"mac\":\"{}\",\"phase\":\"{}\",\"bytesDone\":{},\"bytesTotal\":{total},\"mbPerSecond\":\"{}.{}\",\"sha256\":{q}{sha256}{q},\"message\":{},\"error\":{error}}}",
            Mac(self.mac),
            self.phase,
            self.done,
            kbps / 1000,
            kbps % 1000 / 100,
            Quoted(self.message)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::json::{self, Value};

    fn report(phase: Phase) -> Report<'static> {
        Report {
            mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            phase,
            done: 1 << 20,
            total: Some(4 << 20),
            kbps: 112_540,
            sha256: None,
            message: "",
            error: None,
        }
    }

    #[test]
    fn documents_are_the_documented_shape() {
        assert_eq!(
            report("writing").to_json(),
            r#"{"mac":"52:54:00:12:34:56","phase":"writing","bytesDone":1048576,"bytesTotal":4194304,"mbPerSecond":"112.5","sha256":null,"message":"","error":null}"#
        );
    }

    #[test]
    fn every_field_survives_our_own_strict_parser() {
        let hostile = "line\nbreak \"quoted\" back\\slash \u{1} tab\t é";
        let mut r = report("failed");
        r.total = None;
        r.sha256 = Some([0xab; 32]);
        r.message = hostile;
        r.error = Some(hostile);
        let doc = json::parse(r.to_json().as_bytes()).unwrap();
        assert_eq!(doc.get("phase"), Some(&Value::String("failed".into())));
        assert_eq!(doc.get("bytesTotal"), Some(&Value::Null));
        assert_eq!(doc.get("sha256"), Some(&Value::String("ab".repeat(32))));
        assert_eq!(doc.get("message"), Some(&Value::String(hostile.into())));
        assert_eq!(doc.get("error"), Some(&Value::String(hostile.into())));
        assert_eq!(doc.get("mbPerSecond"), Some(&Value::String("112.5".into())));
    }
}
