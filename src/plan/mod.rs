//! The plan: what the provisioning server wants done with this machine.
//!
//! BOOTy's keys exactly as plunder serialises its `BootyConfig` (every field, so empty
//! strings, 0 and false mean "not given"; `desintationAddress` is plunder's spelling and
//! `destinationAddress` is accepted too), plus imprint's extensions in the same camelCase
//! style, documented in the README. Unknown keys are ignored (and listed, so the console
//! can note them); a key with the wrong type, or a required key missing, is an error that
//! names the key.

pub mod base64;
pub mod json;
pub mod status;

use crate::rescue::Policy;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stream `sourceImage` onto the disk.
    WriteImage,
    /// Capture the disk and upload it to `desintationAddress`.
    ReadImage,
}

/// How a capture is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// plunder's endpoint: multipart/form-data, field `BootyImage`.
    Multipart,
    /// The body as is, PUT to the URL (WebDAV-style servers).
    Put,
}

/// What to do once the work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finally {
    Reboot,
    Poweroff,
    Shell,
}

/// Hints that pick the disk (all given ones must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskHints {
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    pub transport: Option<String>,
    pub rotational: Option<bool>,
    /// Removable media (USB sticks, SD cards) are candidates only when this is true.
    pub removable: Option<bool>,
}

impl DiskHints {
    pub fn is_empty(&self) -> bool {
        *self == DiskHints::default()
    }
}

/// A file to write into the deployed system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    /// BOOTy's hint only: the format is detected from the image's first bytes.
    pub compressed: bool,
    pub source_image: Option<String>,
    pub destination_device: Option<String>,
    pub source_device: Option<String>,
    pub destination_address: Option<String>,
    pub grow_disk: bool,
    pub grow_partition: Option<u32>,
    pub lvm_root_name: Option<String>,
    pub address: Option<String>,
    pub gateway: Option<String>,
    pub nameserver: Option<String>,
    pub dry_run: bool,
    pub wipe_device: bool,
    // imprint's extensions
    pub sha256: Option<[u8; 32]>,
    pub image_size: Option<u64>,
    pub disk: DiskHints,
    /// `onError`, or BOOTy's `dropToShell` (= shell) when `onError` is not given.
    pub on_error: Option<Policy>,
    pub status_url: Option<String>,
    pub hostname: Option<String>,
    pub files: Vec<FileSpec>,
    pub finally: Finally,
    pub upload: Upload,
    /// Keys present in the document that imprint does not know.
    pub ignored: Vec<String>,
}

/// Why a plan cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    Json(json::JsonError),
    NotAnObject,
    WrongType { key: String, expected: &'static str, found: &'static str },
    BadValue { key: String, expected: &'static str },
    Missing { key: &'static str, because: &'static str },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Json(e) => write!(f, "plan: {e}"),
            PlanError::NotAnObject => f.write_str("plan: the document is not a JSON object"),
            PlanError::WrongType { key, expected, found } => {
                write!(f, "plan: key \"{key}\": expected {expected}, found {found}")
            }
            PlanError::BadValue { key, expected } => {
                write!(f, "plan: key \"{key}\": expected {expected}")
            }
            PlanError::Missing { key, because } => {
                write!(f, "plan: key \"{key}\" is required {because}")
            }
        }
    }
}

/// Every key imprint reads at the top level.
const KNOWN: &[&str] = &[
    "action",
    "compressed",
    "sourceImage",
    "destinationDevice",
    "sourceDevice",
    "desintationAddress",
    "destinationAddress",
    "growDisk",
    "growPartition",
    "lvmRootName",
    "address",
    "gateway",
    "nameserver",
    "dryRun",
    "dropToShell",
    "wipeDevice",
    "sha256",
    "imageSize",
    "disk",
    "onError",
    "statusURL",
    "hostname",
    "files",
    "finally",
    "upload",
];

/// Parses and checks a plan document.
pub fn parse(document: &[u8]) -> Result<Plan, PlanError> {
    let root = json::parse(document).map_err(PlanError::Json)?;
    let Value::Object(members) = &root else { return Err(PlanError::NotAnObject) };
    let doc = Doc { root: &root, prefix: "" };

    let action = match doc.string("action")? {
        Some("writeImage") => Action::WriteImage,
        Some("readImage") => Action::ReadImage,
        Some(_) => return Err(bad("action", "\"writeImage\" or \"readImage\"")),
        None => {
            return Err(PlanError::Missing {
                key: "action",
                because: "(\"writeImage\" or \"readImage\")",
            })
        }
    };
    let destination_address = match doc.string("desintationAddress")? {
        Some(a) => Some(a),
        None => doc.string("destinationAddress")?,
    };
    let on_error = match doc.string("onError")? {
        Some(p) => Some(
            Policy::parse(p)
                .ok_or_else(|| bad("onError", "\"reboot\", \"shell\" or \"poweroff\""))?,
        ),
        None if doc.flag("dropToShell")? => Some(Policy::Shell),
        None => None,
    };
    let finally = match doc.string("finally")? {
        None | Some("reboot") => Finally::Reboot,
        Some("poweroff") => Finally::Poweroff,
        Some("shell") => Finally::Shell,
        Some(_) => return Err(bad("finally", "\"reboot\", \"poweroff\" or \"shell\"")),
    };
    let upload = match doc.string("upload")? {
        None | Some("multipart") => Upload::Multipart,
        Some("put") => Upload::Put,
        Some(_) => return Err(bad("upload", "\"multipart\" or \"put\"")),
    };
    let grow_partition = match doc.number("growPartition")? {
        None => None,
        Some(n) => Some(u32::try_from(n).map_err(|_| bad("growPartition", "a partition number"))?),
    };
    let sha256 = match doc.string("sha256")? {
        None => None,
        Some(hex) => Some(parse_sha256(hex).ok_or_else(|| bad("sha256", "64 hexadecimal digits"))?),
    };
    let hostname = match doc.string("hostname")? {
        None => None,
        Some(h) if is_hostname(h) => Some(h.to_string()),
        Some(_) => {
            return Err(bad("hostname", "a host name (letters, digits, '-' and '.', at most 253)"))
        }
    };

    let plan = Plan {
        action,
        compressed: doc.flag("compressed")?,
        source_image: doc.string("sourceImage")?.map(String::from),
        destination_device: doc.string("destinationDevice")?.map(String::from),
        source_device: doc.string("sourceDevice")?.map(String::from),
        destination_address: destination_address.map(String::from),
        grow_disk: doc.flag("growDisk")?,
        grow_partition,
        lvm_root_name: doc.string("lvmRootName")?.map(String::from),
        address: doc.string("address")?.map(String::from),
        gateway: doc.string("gateway")?.map(String::from),
        nameserver: doc.string("nameserver")?.map(String::from),
        dry_run: doc.flag("dryRun")?,
        wipe_device: doc.flag("wipeDevice")?,
        sha256,
        image_size: doc.number("imageSize")?,
        disk: parse_disk(&doc)?,
        on_error,
        status_url: doc.string("statusURL")?.map(String::from),
        hostname,
        files: parse_files(&doc)?,
        finally,
        upload,
        ignored: members
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !KNOWN.contains(&k.as_str()))
            .cloned()
            .collect(),
    };
    match plan.action {
        Action::WriteImage if plan.source_image.is_none() => {
            Err(PlanError::Missing { key: "sourceImage", because: "for writeImage" })
        }
        Action::ReadImage if plan.destination_address.is_none() => {
            Err(PlanError::Missing { key: "desintationAddress", because: "for readImage" })
        }
        _ => Ok(plan),
    }
}

fn bad(key: &str, expected: &'static str) -> PlanError {
    PlanError::BadValue { key: key.to_string(), expected }
}

/// Typed access to one object's members, with plunder's "zero means absent" rule and
/// errors that name the key (with its parent, as in "disk.serial").
struct Doc<'a> {
    root: &'a Value,
    prefix: &'a str,
}

impl<'a> Doc<'a> {
    fn key_name(&self, key: &str) -> String {
        let mut name = String::from(self.prefix);
        name.push_str(key);
        name
    }

    fn wrong(&self, key: &str, expected: &'static str, found: &Value) -> PlanError {
        PlanError::WrongType { key: self.key_name(key), expected, found: found.kind() }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.root.get(key) {
            None | Some(Value::Null) => None,
            some => some,
        }
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, PlanError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, PlanError> {
        Ok(self.bool(key)?.unwrap_or(false))
    }

    /// A boolean where false is meaningful (imprint's own keys).
    fn bool(&self, key: &str) -> Result<Option<bool>, PlanError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "true or false", other)),
        }
    }

    fn number(&self, key: &str) -> Result<Option<u64>, PlanError> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Number(_)) => match v.as_u64() {
                Some(0) => Ok(None),
                Some(n) => Ok(Some(n)),
                None => Err(PlanError::BadValue {
                    key: self.key_name(key),
                    expected: "a whole number from 0 to 2^64-1",
                }),
            },
            Some(other) => Err(self.wrong(key, "a number", other)),
        }
    }
}

fn parse_disk(doc: &Doc<'_>) -> Result<DiskHints, PlanError> {
    let Some(disk) = doc.get("disk") else { return Ok(DiskHints::default()) };
    if !matches!(disk, Value::Object(_)) {
        return Err(doc.wrong("disk", "an object", disk));
    }
    let d = Doc { root: disk, prefix: "disk." };
    let owned = |s: Option<&str>| s.map(String::from);
    Ok(DiskHints {
        serial: owned(d.string("serial")?),
        wwn: owned(d.string("wwn")?),
        model: owned(d.string("model")?),
        vendor: owned(d.string("vendor")?),
        min_size: d.number("minSize")?,
        max_size: d.number("maxSize")?,
        transport: owned(d.string("transport")?),
        rotational: d.bool("rotational")?,
        removable: d.bool("removable")?,
    })
}

fn parse_files(doc: &Doc<'_>) -> Result<Vec<FileSpec>, PlanError> {
    let Some(files) = doc.get("files") else { return Ok(Vec::new()) };
    let Value::Array(items) = files else { return Err(doc.wrong("files", "an array", files)) };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if !matches!(item, Value::Object(_)) {
            return Err(doc.wrong("files", "an array of objects", item));
        }
        let f = Doc { root: item, prefix: "files[]." };
        let path = match f.string("path")? {
            Some(p) if p.starts_with('/') && !p.split('/').any(|part| part == "..") => {
                p.to_string()
            }
            Some(_) => return Err(bad("files[].path", "an absolute path without \"..\"")),
            None => {
                return Err(PlanError::Missing { key: "files[].path", because: "for every file" })
            }
        };
        let content = match (f.string("content")?, f.string("base64")?) {
            (Some(_), Some(_)) => {
                return Err(bad("files[]", "either \"content\" or \"base64\", not both"))
            }
            (Some(text), None) => text.as_bytes().to_vec(),
            (None, Some(b64)) => {
                base64::decode(b64).ok_or_else(|| bad("files[].base64", "base64 (RFC 4648)"))?
            }
            (None, None) => Vec::new(),
        };
        let mode = match f.get("mode") {
            None => 0o644,
            Some(Value::String(s)) => u32::from_str_radix(s, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| bad("files[].mode", "an octal mode such as \"0644\""))?,
            Some(other) => {
                return Err(f.wrong("mode", "an octal mode string such as \"0644\"", other))
            }
        };
        out.push(FileSpec { path, content, mode });
    }
    Ok(out)
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
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
    let mut name = String::with_capacity(21);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            name.push('-');
        }
        let _ = fmt::Write::write_fmt(&mut name, format_args!("{b:02x}"));
    }
    name.push_str(".bty");
    name
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
        assert!(p.compressed);
        assert_eq!(
            p.source_image.as_deref(),
            Some("http://192.168.0.95:3000/images/ubuntu.img.gz")
        );
        assert_eq!(p.destination_device.as_deref(), Some("/dev/sda"));
        assert_eq!(p.grow_partition, Some(1));
        assert_eq!(p.lvm_root_name.as_deref(), Some("/dev/ubuntu-vg/root"));
        assert_eq!(p.address.as_deref(), Some("192.168.0.100/24"));
        assert_eq!(p.gateway.as_deref(), Some("192.168.0.1"));
        assert_eq!(p.nameserver.as_deref(), Some("8.8.8.8"));
        assert!(!p.dry_run && !p.wipe_device && !p.grow_disk);
        assert_eq!(p.on_error, None);
        assert_eq!(p.finally, Finally::Reboot);
        assert!(p.ignored.is_empty(), "{:?}", p.ignored);
    }

    #[test]
    fn plunder_read_plan_zero_values_are_absent() {
        let p = parse(PLUNDER_READ.as_bytes()).unwrap();
        assert_eq!(p.action, Action::ReadImage);
        assert_eq!(p.source_device.as_deref(), Some("/dev/sda"));
        assert_eq!(p.destination_address.as_deref(), Some("http://192.168.0.95:3000/image"));
        assert_eq!(p.grow_partition, None, "0 means not given");
        assert_eq!(p.lvm_root_name, None, "\"\" means not given");
        assert_eq!(p.on_error, Some(Policy::Shell), "dropToShell is onError=shell");
        assert_eq!(p.upload, Upload::Multipart);
        // The correct spelling is accepted too.
        let fixed = PLUNDER_READ.replace("desintationAddress", "destinationAddress");
        assert_eq!(parse(fixed.as_bytes()).unwrap().destination_address, p.destination_address);
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
        assert_eq!(p.image_size, Some(1 << 30));
        assert_eq!(p.disk.serial.as_deref(), Some("SN-1"));
        assert_eq!(p.disk.min_size, Some(1_000_000_000));
        assert_eq!(p.disk.rotational, Some(false), "false is meaningful for our own hints");
        assert_eq!(p.on_error, Some(Policy::Poweroff), "onError wins over dropToShell");
        assert_eq!(p.status_url.as_deref(), Some("http://s/status"));
        assert_eq!(p.hostname.as_deref(), Some("node-7.lab"));
        assert_eq!(
            p.files[0],
            FileSpec { path: "/etc/motd".into(), content: b"hi\n".to_vec(), mode: 0o644 }
        );
        assert_eq!(p.files[1].content, b"ssh-ed25519 AAAA".to_vec());
        assert_eq!(p.files[1].mode, 0o600);
        assert_eq!(p.finally, Finally::Poweroff);
        assert_eq!(p.upload, Upload::Put);
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
        assert_eq!(error(r#"["action"]"#), "plan: the document is not a JSON object");
        assert_eq!(
            error(r#"{"action":"#),
            "plan: invalid JSON at byte 10: unexpected end of document"
        );
    }

    #[test]
    fn plan_file_names() {
        assert_eq!(file_name([0x00, 0x50, 0x56, 0xA5, 0x0E, 0x0F]), "00-50-56-a5-0e-0f.bty");
    }
}
