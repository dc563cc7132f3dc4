//! The plan: what the provisioning server wants done with this machine.
//!
//! BOOTy's keys exactly as plunder serialises its `BootyConfig` (every field, so empty
//! strings, 0 and false mean "not given"; `desintationAddress` is plunder's spelling and
//! `destinationAddress` is accepted too), plus imprint's extensions in the same camelCase
//! style, documented in the README. Unknown keys are ignored (and listed, so the console
//! can note them); a key with the wrong type, or a required key missing, is an error that
//! names the key.
//!
//! One table per object says what each key must hold; once the document passed it, its
//! values are read by key (`plan.str("sourceImage")`) and cannot be of the wrong type.

pub mod base64;
pub mod json;
pub mod status;

use crate::image::sha256::parse_hex;
use crate::rescue::Policy;
use alloc::string::String;
use alloc::vec::Vec;
use json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stream `sourceImage` onto the disk.
    WriteImage,
    /// Capture the disk and upload it to `desintationAddress`.
    ReadImage,
}

/// What to do once the work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finally {
    Reboot,
    Poweroff,
    Shell,
}

/// A checked JSON object's members, read by key. plunder writes every field, so null, "",
/// 0 and (for BOOTy's booleans) false all read as not given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object(pub Vec<(String, Value)>);

/// The plan's `disk`: hints that pick the disk (all given ones must match). Removable
/// media (USB sticks, SD cards) are candidates only when `removable` is true.
pub type DiskHints = Object;

impl Object {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|m| m.0 == key).map(|m| &m.1)
    }

    /// Takes the value of `key` out (null when absent).
    fn take(&mut self, key: &str) -> Value {
        let member = self.0.iter_mut().find(|m| m.0 == key);
        member.map_or(Value::Null, |m| core::mem::replace(&mut m.1, Value::Null))
    }

    /// A string, unless absent or empty.
    pub fn str(&self, key: &str) -> Option<&str> {
        let Some(Value::String(s)) = self.get(key) else { return None };
        Some(s.as_str()).filter(|s| !s.is_empty())
    }

    /// imprint's booleans, where false is meaningful.
    pub fn bool(&self, key: &str) -> Option<bool> {
        let Some(Value::Bool(b)) = self.get(key) else { return None };
        Some(*b)
    }

    /// BOOTy's booleans: absent is false.
    pub fn flag(&self, key: &str) -> bool {
        self.bool(key) == Some(true)
    }

    /// Where a capture goes: plunder's spelling wins over the right one.
    pub fn destination(&self) -> Option<&str> {
        self.str("desintationAddress").or(self.str("destinationAddress"))
    }

    /// A whole number, unless absent or 0.
    pub fn number(&self, key: &str) -> Option<u64> {
        let Some(Value::Number(n)) = self.get(key) else { return None };
        n.filter(|n| *n > 0)
    }
}

/// A file to write into the deployed system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// A checked plan. Its strings, BOOTy's flags and numbers are read from `keys` (through
/// `Deref`: `plan.str("address")`); the rest is decoded here.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub keys: Object,
    pub disk: DiskHints,
    pub action: Action,
    /// `onError`, or BOOTy's `dropToShell` (= shell) when `onError` is not given.
    pub on_error: Option<Policy>,
    pub finally: Finally,
    /// `upload` is "put": a capture is the body as is, PUT to the URL (WebDAV-style
    /// servers); else (`multipart`) plunder's multipart/form-data, field `BootyImage`.
    pub put: bool,
    pub grow_partition: Option<u32>,
    pub sha256: Option<[u8; 32]>,
    pub files: Vec<FileSpec>,
    /// Keys present in the document that imprint does not know.
    pub ignored: Vec<String>,
}

impl core::ops::Deref for Plan {
    type Target = Object;
    fn deref(&self) -> &Object {
        &self.keys
    }
}

/// Why a plan cannot be used: one line, naming the key (with its parent, as in
/// "disk.serial"), what it should hold and, for a value of the wrong type, what it holds.
pub type PlanError = String;

/// What a key must hold (null always means "not given").
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Str,
    Bool,
    Number,
    /// A number that fits a u32 (0 is "not given").
    Partition,
    Object,
    Array,
    /// A string that is "" or that the function accepts, else it should be the text (a
    /// choice: one of the quoted words of the text).
    Checked(&'static str, fn(&str) -> bool),
}

const ACTIONS: &str = "\"writeImage\" or \"readImage\"";
const POLICIES: &str = "\"reboot\", \"shell\" or \"poweroff\"";
const FINALLY: &str = "\"reboot\", \"poweroff\" or \"shell\"";
const UPLOADS: &str = "\"multipart\" or \"put\"";
const HOST: &str = "a host name (letters, digits, '-' and '.', at most 253)";

/// The plan's keys by what they hold (the first bad value in the document is the error);
/// the keys of a group are separated by spaces.
const PLAN_KEYS: [(Kind, &str); 13] = [
    (Kind::Object, "disk"),
    (Kind::Checked(ACTIONS, |w| choice(ACTIONS, w).is_some()), "action"),
    (Kind::Bool, "dropToShell compressed growDisk dryRun wipeDevice"),
    (Kind::Str, "sourceImage destinationDevice sourceDevice desintationAddress destinationAddress"),
    (Kind::Str, "lvmRootName address gateway nameserver statusURL"),
    (Kind::Partition, "growPartition"),
    (Kind::Checked("64 hexadecimal digits", |h| parse_hex(h).is_some()), "sha256"),
    (Kind::Number, "imageSize"),
    (Kind::Checked(POLICIES, |w| choice(POLICIES, w).is_some()), "onError"),
    (Kind::Checked(HOST, is_hostname), "hostname"),
    (Kind::Array, "files"),
    (Kind::Checked(FINALLY, |w| choice(FINALLY, w).is_some()), "finally"),
    (Kind::Checked(UPLOADS, |w| choice(UPLOADS, w).is_some()), "upload"),
];

/// The disk hints' keys.
pub(crate) const DISK_KEYS: [(Kind, &str); 3] = [
    (Kind::Str, "serial wwn model vendor transport"),
    (Kind::Number, "minSize maxSize"),
    (Kind::Bool, "rotational removable"),
];

const FILE_KEYS: [(Kind, &str); 4] = [
    (Kind::Checked("an absolute path without \"..\"", is_absolute), "path"),
    (Kind::Str, "content"),
    (Kind::Checked("base64 (RFC 4648)", |b| base64::decode(b).is_some()), "base64"),
    (Kind::Checked("an octal mode such as \"0644\"", |m| octal(m).is_some()), "mode"),
];

/// What `key` holds if it is one of the keys of `table`.
pub(crate) fn kind_of(table: &[(Kind, &str)], key: &str) -> Option<Kind> {
    table.iter().find(|(_, keys)| keys.split(' ').any(|k| k == key)).map(|(kind, _)| *kind)
}

fn is_absolute(path: &str) -> bool {
    path.starts_with('/') && !path.split('/').any(|part| part == "..")
}

fn octal(mode: &str) -> Option<u32> {
    // By hand: from_str_radix costs 250 bytes. An optional '+', as it accepts.
    let digits = mode.strip_prefix('+').unwrap_or(mode).as_bytes();
    let add = |m: u32, d: &u8| {
        Some(m << 3 | u32::from(d.wrapping_sub(b'0'))).filter(|m| *d & !7 == b'0' && *m <= 0o7777)
    };
    digits.iter().try_fold(0, add).filter(|_| !digits.is_empty())
}

/// Which of the quoted words of `expected` `word` is.
fn choice(expected: &str, word: &str) -> Option<usize> {
    // The quoted words are the odd pieces between quotes.
    let i = expected.split('"').position(|piece| piece == word)?;
    (i % 2 == 1).then_some(i / 2)
}

/// Parses and checks a plan document.
pub fn parse(document: &[u8]) -> Result<Plan, PlanError> {
    let document = json::parse(document)
        .map_err(|e| text!("plan: invalid JSON at byte {}: {}", e.at, e.what))?;
    let Value::Object(members) = document else {
        return Err("plan: the document is not a JSON object".into());
    };
    let mut keys = Object(members);
    check("", &keys, &PLAN_KEYS)?;
    let unknown = keys.0.iter().filter(|m| kind_of(&PLAN_KEYS, &m.0).is_none());
    let ignored = unknown.map(|m| m.0.clone()).collect();
    let disk = match keys.take("disk") {
        Value::Object(members) => Object(members),
        _ => Object::default(),
    };
    check("disk.", &disk, &DISK_KEYS)?;
    let mut files = Vec::new();
    if let Value::Array(items) = keys.take("files") {
        for item in items {
            files.push(file(item)?);
        }
    }
    let pick = |key, expected| keys.str(key).and_then(|w| choice(expected, w));
    let action = pick("action", ACTIONS);
    match (action, keys.str("sourceImage"), keys.destination()) {
        (None, ..) => return Err(required("action", "(\"writeImage\" or \"readImage\")")),
        (Some(0), None, _) => return Err(required("sourceImage", "for writeImage")),
        (Some(1), _, None) => return Err(required("desintationAddress", "for readImage")),
        _ => {}
    }
    Ok(Plan {
        action: if action == Some(1) { Action::ReadImage } else { Action::WriteImage },
        // onError wins over dropToShell.
        on_error: (pick("onError", POLICIES))
            .and_then(|i| [Policy::Reboot, Policy::Shell, Policy::Poweroff].get(i).copied())
            .or(keys.flag("dropToShell").then_some(Policy::Shell)),
        finally: match pick("finally", FINALLY) {
            Some(1) => Finally::Poweroff,
            Some(2) => Finally::Shell,
            _ => Finally::Reboot,
        },
        put: pick("upload", UPLOADS) == Some(1),
        grow_partition: keys.number("growPartition").map(|n| n as u32),
        sha256: keys.str("sha256").and_then(parse_hex),
        files,
        ignored,
        disk,
        keys,
    })
}

/// Checks the members of `object` (named `parent`, as in "disk.") that `table` knows: the
/// first value of the wrong type or form is the error.
fn check(parent: &str, object: &Object, table: &[(Kind, &str)]) -> Result<(), PlanError> {
    for (key, value) in &object.0 {
        let Some(kind) = kind_of(table, key) else { continue };
        let (expected, found) = match (kind, value) {
            (_, Value::Null)
            | (Kind::Str, Value::String(_))
            | (Kind::Bool, Value::Bool(_))
            | (Kind::Object, Value::Object(_))
            | (Kind::Array, Value::Array(_)) => continue,
            (Kind::Number | Kind::Partition, Value::Number(None)) => {
                ("a whole number from 0 to 2^64-1", None)
            }
            (Kind::Partition, Value::Number(Some(n))) if *n >> 32 > 0 => {
                ("a partition number", None)
            }
            (Kind::Number | Kind::Partition, Value::Number(_)) => continue,
            (Kind::Checked(e, ok), Value::String(s)) if !s.is_empty() && !ok(s) => (e, None),
            (Kind::Checked(..), Value::String(_)) => continue,
            (Kind::Bool, v) => ("true or false", Some(v)),
            (Kind::Number | Kind::Partition, v) => ("a number", Some(v)),
            (Kind::Object, v) => ("an object", Some(v)),
            (Kind::Array, v) => ("an array", Some(v)),
            (_, v) => ("a string", Some(v)),
        };
        return Err(bad(parent, key, expected, found));
    }
    Ok(())
}

/// `key` (after its parent, as in "disk.serial") does not hold what it should; `found`
/// is what it holds when that is of the wrong type.
fn bad(parent: &str, key: &str, expected: &str, found: Option<&Value>) -> PlanError {
    let found = found.map_or(String::new(), |v| text!(", found {}", v.kind()));
    text!("plan: key \"{parent}{key}\": expected {expected}{found}")
}

fn required(key: &str, because: &str) -> PlanError {
    text!("plan: key \"{key}\" is required {because}")
}

/// One item of the plan's `files`.
fn file(item: Value) -> Result<FileSpec, PlanError> {
    let Value::Object(members) = item else {
        return Err(bad("", "files", "an array of objects", Some(&item)));
    };
    let f = Object(members);
    check("files[].", &f, &FILE_KEYS)?;
    let Some(path) = f.str("path") else {
        return Err(required("files[].path", "for every file"));
    };
    let content = match (f.str("content"), f.str("base64")) {
        (Some(_), Some(_)) => {
            return Err(
                "plan: key \"files[]\": expected either \"content\" or \"base64\", not both".into(),
            )
        }
        (Some(text), None) => text.as_bytes().to_vec(),
        (None, base) => base.and_then(base64::decode).unwrap_or_default(),
    };
    let mode = f.str("mode").and_then(octal).unwrap_or(0o644);
    Ok(FileSpec { path: path.into(), content, mode })
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
fn is_hostname(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The plan's file name for a MAC: `aa-bb-cc-dd-ee-ff.bty`, lower-case, dashed.
pub fn file_name(mac: [u8; 6]) -> String {
    text!("{}.bty", crate::net::link::Mac(mac)).replace(':', "-")
}

/// The fallback plan for machines without one of their own.
pub const DEFAULT_FILE: &str = "default.bty";

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// A writeImage plan exactly as plunder serialises BootyConfig (Go's encoding/json:
    /// omitempty on the strings, every bool and growPartition always present).
    const PLUNDER_WRITE: &str = r#"{"action":"writeImage","compressed":true,"sourceImage":"http://192.168.0.95:3000/images/ubuntu.img.gz","destinationDevice":"/dev/sda","growDisk":false,"growPartition":1,"lvmRootName":"/dev/ubuntu-vg/root","address":"192.168.0.100/24","gateway":"192.168.0.1","nameserver":"8.8.8.8","dryRun":false,"dropToShell":false,"wipeDevice":false}"#;
    const PLUNDER_READ: &str = r#"{"action":"readImage","compressed":true,"sourceDevice":"/dev/sda","desintationAddress":"http://192.168.0.95:3000/image","growDisk":false,"growPartition":0,"lvmRootName":"","dryRun":false,"dropToShell":true,"wipeDevice":false}"#;

    #[test]
    fn plunder_write_plan() {
        let p = parse(PLUNDER_WRITE.as_bytes()).unwrap();
        assert_eq!(p.action, Action::WriteImage);
        assert!(p.flag("compressed"));
        assert_eq!(p.str("sourceImage"), Some("http://192.168.0.95:3000/images/ubuntu.img.gz"));
        assert_eq!(p.str("destinationDevice"), Some("/dev/sda"));
        assert_eq!(p.grow_partition, Some(1));
        assert_eq!(p.str("lvmRootName"), Some("/dev/ubuntu-vg/root"));
        assert_eq!(p.str("address"), Some("192.168.0.100/24"));
        assert_eq!(p.str("gateway"), Some("192.168.0.1"));
        assert_eq!(p.str("nameserver"), Some("8.8.8.8"));
        assert!(!p.flag("dryRun") && !p.flag("wipeDevice") && !p.flag("growDisk"));
        assert_eq!(p.on_error, None);
        assert_eq!(p.finally, Finally::Reboot);
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    }

    #[test]
    fn plunder_read_plan_zero_values_are_absent() {
        let p = parse(PLUNDER_READ.as_bytes()).unwrap();
        assert_eq!(p.action, Action::ReadImage);
        assert_eq!(p.str("sourceDevice"), Some("/dev/sda"));
        assert_eq!(p.destination(), Some("http://192.168.0.95:3000/image"));
        assert_eq!(p.grow_partition, None, "0 means not given");
        assert_eq!(p.str("lvmRootName"), None, "\"\" means not given");
        assert_eq!(p.on_error, Some(Policy::Shell), "dropToShell is onError=shell");
        assert!(!p.put);
        // The correct spelling is accepted too.
        let fixed = PLUNDER_READ.replace("desintationAddress", "destinationAddress");
        assert_eq!(parse(fixed.as_bytes()).unwrap().destination(), p.destination());
    }

    #[test]
    fn extensions() {
        let doc = r#"{"action":"writeImage","sourceImage":"http://s/i.gz",
            "sha256":"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "imageSize":1073741824,
            "disk":{"serial":"SN-1","wwn":"0x5000c500a1b2c3d4","model":"QEMU HARDDISK","vendor":"ATA",
                    "minSize":1000000000,"maxSize":2000000000000,"transport":"sata","rotational":false},
            "onError":"poweroff","dropToShell":true,"statusURL":"http://s/status","hostname":"node-7.lab",
            "files":[{"path":"/etc/motd","content":"hi\n"},{"path":"/root/.ssh/authorized_keys","base64":"c3NoLWVkMjU1MTkgQUFBQQ==","mode":"0600"}],
            "finally":"poweroff","upload":"put","future":{"x":1}}"#;
        let p = parse(doc.as_bytes()).unwrap();
        assert_eq!(p.sha256.unwrap()[..4], [0xe3, 0xb0, 0xc4, 0x42]);
        assert_eq!(p.number("imageSize"), Some(1 << 30));
        assert_eq!(p.disk.str("serial"), Some("SN-1"));
        assert_eq!(p.disk.number("minSize"), Some(1_000_000_000));
        assert_eq!(p.disk.bool("rotational"), Some(false), "false is meaningful for our own hints");
        assert_eq!(p.on_error, Some(Policy::Poweroff), "onError wins over dropToShell");
        assert_eq!(p.str("statusURL"), Some("http://s/status"));
        assert_eq!(p.str("hostname"), Some("node-7.lab"));
        assert_eq!(
            p.files[0],
            FileSpec { path: "/etc/motd".into(), content: b"hi\n".to_vec(), mode: 0o644 }
        );
        assert_eq!(p.files[1].content, b"ssh-ed25519 AAAA".to_vec());
        assert_eq!(p.files[1].mode, 0o600);
        assert_eq!(p.finally, Finally::Poweroff);
        assert!(p.put);
        assert_eq!(p.ignored, alloc::vec!["future".to_string()]);
    }

    fn error(doc: &str) -> String {
        parse(doc.as_bytes()).expect_err(doc).to_string()
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            error(r#"{"sourceImage":"x"}"#),
            "plan: key \"action\" is required (\"writeImage\" or \"readImage\")"
        );
        assert_eq!(
            error(r#"{"action":"formatDisk"}"#),
            "plan: key \"action\": expected \"writeImage\" or \"readImage\""
        );
        assert_eq!(
            error(r#"{"action":"writeImage"}"#),
            "plan: key \"sourceImage\" is required for writeImage"
        );
        assert_eq!(
            error(r#"{"action":"readImage"}"#),
            "plan: key \"desintationAddress\" is required for readImage"
        );
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","growPartition":"1"}"#),
            "plan: key \"growPartition\": expected a number, found a string"
        );
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","dryRun":"yes"}"#),
            "plan: key \"dryRun\": expected true or false, found a string"
        );
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","disk":{"serial":7}}"#),
            "plan: key \"disk.serial\": expected a string, found a number"
        );
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","imageSize":-1}"#),
            "plan: key \"imageSize\": expected a whole number from 0 to 2^64-1"
        );
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","sha256":"abc"}"#),
            "plan: key \"sha256\": expected 64 hexadecimal digits"
        );
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","files":[{"path":"etc/x"}]}"#),
            "plan: key \"files[].path\": expected an absolute path without \"..\""
        );
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","files":[{"path":"/../x"}]}"#),
            "plan: key \"files[].path\": expected an absolute path without \"..\""
        );
        assert_eq!(error(r#"{"action":"writeImage","sourceImage":"x","hostname":"bad_name"}"#),
            "plan: key \"hostname\": expected a host name (letters, digits, '-' and '.', at most 253)");
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","onError":"panic"}"#),
            "plan: key \"onError\": expected \"reboot\", \"shell\" or \"poweroff\""
        );
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","finally":"halt"}"#),
            "plan: key \"finally\": expected \"reboot\", \"poweroff\" or \"shell\""
        );
        assert_eq!(
            error(
                r#"{"action":"writeImage","sourceImage":"x","files":[{"path":"/x","mode":"999"}]}"#
            ),
            "plan: key \"files[].mode\": expected an octal mode such as \"0644\""
        );
        assert_eq!(
            error(r#"{"action":"writeImage","sourceImage":"x","disk":[]}"#),
            "plan: key \"disk\": expected an object, found an array"
        );
        assert_eq!(error(r#"["action"]"#), "plan: the document is not a JSON object");
        assert_eq!(
            error(r#"{"action":"#),
            "plan: invalid JSON at byte 10: unexpected end of document"
        );
    }

    #[test]
    fn octal_modes() {
        for (text, mode) in [("0644", Some(0o644)), ("+600", Some(0o600)), ("7777", Some(0o7777))] {
            assert_eq!(octal(text), mode, "{text}");
        }
        for bad in ["", "+", "8", "0o644", "10000", "40000000000644", "-1", " 644"] {
            assert_eq!(octal(bad), None, "{bad}");
        }
    }

    #[test]
    fn plan_file_names() {
        assert_eq!(file_name([0x00, 0x50, 0x56, 0xA5, 0x0E, 0x0F]), "00-50-56-a5-0e-0f.bty");
    }
}
