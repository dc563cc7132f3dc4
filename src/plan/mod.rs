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
use alloc::string::String;
use alloc::vec::Vec;
use json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Stream `sourceImage` onto the disk.
    #[default]
    WriteImage,
    /// Capture the disk and upload it to `desintationAddress`.
    ReadImage,
}

/// How a capture is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Upload {
    /// plunder's endpoint: multipart/form-data, field `BootyImage`.
    #[default]
    Multipart,
    /// The body as is, PUT to the URL (WebDAV-style servers).
    Put,
}

/// What to do once the work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Finally {
    #[default]
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

#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

/// Why a plan cannot be used: one line, naming the key (with its parent, as in
/// "disk.serial"), what it should hold and, for a value of the wrong type, what it holds.
pub type PlanError = String;

/// Parses and checks a plan document.
pub fn parse(document: &[u8]) -> Result<Plan, PlanError> {
    let document = json::parse(document)
        .map_err(|e| text!("plan: invalid JSON at byte {}: {}", e.at, e.what))?;
    let Value::Object(members) = document else {
        return Err("plan: the document is not a JSON object".into());
    };
    let mut p = Plan::default();
    let (mut action, mut on_error, mut finally, mut upload) = (None, None, None, None);
    let (mut sha256, mut hostname, mut spelled_right) = (None, None, None);
    let (mut grow_partition, mut drop_to_shell) = (None, false);
    let (mut disk, mut files) = (&Value::Null, &Value::Null);
    p.ignored = read_members(
        "",
        &members,
        &mut [
            ("action", Slot::Str(&mut action)),
            ("compressed", Slot::Flag(&mut p.compressed)),
            ("sourceImage", Slot::Str(&mut p.source_image)),
            ("destinationDevice", Slot::Str(&mut p.destination_device)),
            ("sourceDevice", Slot::Str(&mut p.source_device)),
            ("desintationAddress", Slot::Str(&mut p.destination_address)),
            ("destinationAddress", Slot::Str(&mut spelled_right)),
            ("growDisk", Slot::Flag(&mut p.grow_disk)),
            ("growPartition", Slot::Number(&mut grow_partition)),
            ("lvmRootName", Slot::Str(&mut p.lvm_root_name)),
            ("address", Slot::Str(&mut p.address)),
            ("gateway", Slot::Str(&mut p.gateway)),
            ("nameserver", Slot::Str(&mut p.nameserver)),
            ("dryRun", Slot::Flag(&mut p.dry_run)),
            ("dropToShell", Slot::Flag(&mut drop_to_shell)),
            ("wipeDevice", Slot::Flag(&mut p.wipe_device)),
            ("sha256", Slot::Str(&mut sha256)),
            ("imageSize", Slot::Number(&mut p.image_size)),
            ("disk", Slot::Value(&mut disk)),
            ("onError", Slot::Str(&mut on_error)),
            ("statusURL", Slot::Str(&mut p.status_url)),
            ("hostname", Slot::Str(&mut hostname)),
            ("files", Slot::Value(&mut files)),
            ("finally", Slot::Str(&mut finally)),
            ("upload", Slot::Str(&mut upload)),
        ],
    )?;
    let action = choice("action", action, "\"writeImage\" or \"readImage\"")?;
    let on_error = choice("onError", on_error, "\"reboot\", \"shell\" or \"poweroff\"")?;
    p.on_error = on_error.map(|i| [Policy::Reboot, Policy::Shell, Policy::Poweroff][i]);
    // onError wins over dropToShell; plunder's spelling over the right one.
    p.on_error = p.on_error.or(drop_to_shell.then_some(Policy::Shell));
    p.destination_address = p.destination_address.or(spelled_right);
    let finally = choice("finally", finally, "\"reboot\", \"poweroff\" or \"shell\"")?;
    p.finally = [Finally::Reboot, Finally::Poweroff, Finally::Shell][finally.unwrap_or(0)];
    let upload = choice("upload", upload, "\"multipart\" or \"put\"")?;
    p.upload = [Upload::Multipart, Upload::Put][upload.unwrap_or(0)];
    let grow = grow_partition.map(u32::try_from).transpose();
    p.grow_partition = grow.map_err(|_| bad("growPartition", "a partition number"))?;
    let sha = sha256.map(|hex| crate::image::sha256::parse_hex(&hex).ok_or(()));
    p.sha256 = sha.transpose().map_err(|_| bad("sha256", "64 hexadecimal digits"))?;
    if hostname.as_deref().is_some_and(|h| !is_hostname(h)) {
        let expected = "a host name (letters, digits, '-' and '.', at most 253)";
        return Err(bad("hostname", expected));
    }
    p.hostname = hostname;
    let d = &mut p.disk;
    let disk: &[_] = match disk {
        Value::Null => &[],
        Value::Object(members) => members,
        _ => return Err(wrong("disk", "an object", disk)),
    };
    read_members(
        "disk.",
        disk,
        &mut [
            ("serial", Slot::Str(&mut d.serial)),
            ("wwn", Slot::Str(&mut d.wwn)),
            ("model", Slot::Str(&mut d.model)),
            ("vendor", Slot::Str(&mut d.vendor)),
            ("minSize", Slot::Number(&mut d.min_size)),
            ("maxSize", Slot::Number(&mut d.max_size)),
            ("transport", Slot::Str(&mut d.transport)),
            ("rotational", Slot::Bool(&mut d.rotational)),
            ("removable", Slot::Bool(&mut d.removable)),
        ],
    )?;
    p.files = parse_files(files)?;
    let (key, because) = match action {
        None => ("action", "(\"writeImage\" or \"readImage\")"),
        Some(0) if p.source_image.is_none() => ("sourceImage", "for writeImage"),
        Some(1) if p.destination_address.is_none() => ("desintationAddress", "for readImage"),
        Some(i) => return Ok(Plan { action: [Action::WriteImage, Action::ReadImage][i], ..p }),
    };
    Err(text!("plan: key \"{key}\" is required {because}"))
}

fn bad(key: &str, expected: &str) -> PlanError {
    text!("plan: key \"{key}\": expected {expected}")
}

/// A value of the wrong type.
#[inline(never)]
fn wrong(key: &str, expected: &str, found: &Value) -> PlanError {
    text!("plan: key \"{key}\": expected {expected}, found {}", found.kind())
}

/// Which of the quoted words of `expected` `value` is, if given; another value is an
/// error naming `key`.
fn choice(
    key: &str,
    value: Option<String>,
    expected: &'static str,
) -> Result<Option<usize>, PlanError> {
    let Some(value) = value else { return Ok(None) };
    let mut options = expected.split('"').skip(1).step_by(2);
    options.position(|o| o == value).map(Some).ok_or_else(|| bad(key, expected))
}

/// Where a member's value goes, by its type. plunder writes every field, so null, "", 0
/// and false all mean "not given".
enum Slot<'a, 'v> {
    Str(&'a mut Option<String>),
    /// BOOTy's booleans: absent is false.
    Flag(&'a mut bool),
    /// imprint's booleans, where false is meaningful.
    Bool(&'a mut Option<bool>),
    Number(&'a mut Option<u64>),
    /// An object or array, read on its own.
    Value(&'a mut &'v Value),
}

/// Reads each member of an object into the slot its key names; returns the keys no slot
/// names. Errors name the key with `prefix` (its parent, as in "disk.serial").
fn read_members<'v>(
    prefix: &str,
    members: &'v [(String, Value)],
    slots: &mut [(&str, Slot<'_, 'v>)],
) -> Result<Vec<String>, PlanError> {
    let mut unknown = Vec::new();
    for (key, value) in members {
        let wrong = |expected| wrong(&text!("{prefix}{key}"), expected, value);
        let Some((_, slot)) = slots.iter_mut().find(|(k, _)| k == key) else {
            unknown.push(key.clone());
            continue;
        };
        match (slot, value) {
            (Slot::Value(v), _) => **v = value,
            (_, Value::Null) => {}
            (Slot::Str(s), Value::String(text)) => {
                **s = Some(text.clone()).filter(|t| !t.is_empty())
            }
            (Slot::Flag(b), Value::Bool(v)) => **b = *v,
            (Slot::Bool(b), Value::Bool(v)) => **b = Some(*v),
            (Slot::Number(n), Value::Number(Some(v))) => **n = Some(*v).filter(|&v| v > 0),
            (Slot::Number(_), Value::Number(None)) => {
                return Err(bad(&text!("{prefix}{key}"), "a whole number from 0 to 2^64-1"))
            }
            (Slot::Str(_), _) => return Err(wrong("a string")),
            (Slot::Flag(_) | Slot::Bool(_), _) => return Err(wrong("true or false")),
            (Slot::Number(_), _) => return Err(wrong("a number")),
        }
    }
    Ok(unknown)
}

fn parse_files(files: &Value) -> Result<Vec<FileSpec>, PlanError> {
    let items: &[_] = match files {
        Value::Null => &[],
        Value::Array(items) => items,
        _ => return Err(wrong("files", "an array", files)),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(members) = item else {
            return Err(wrong("files", "an array of objects", item));
        };
        let (mut path, mut content, mut base64, mut mode) = (None, None, None, None);
        read_members(
            "files[].",
            members,
            &mut [
                ("path", Slot::Str(&mut path)),
                ("content", Slot::Str(&mut content)),
                ("base64", Slot::Str(&mut base64)),
                ("mode", Slot::Str(&mut mode)),
            ],
        )?;
        let Some(path) = path else {
            return Err("plan: key \"files[].path\" is required for every file".into());
        };
        if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return Err(bad("files[].path", "an absolute path without \"..\""));
        }
        let content = match (content, base64) {
            (Some(_), Some(_)) => {
                return Err(bad("files[]", "either \"content\" or \"base64\", not both"))
            }
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => {
                base64::decode(&b64).ok_or_else(|| bad("files[].base64", "base64 (RFC 4648)"))?
            }
            (None, None) => Vec::new(),
        };
        let mode = match mode {
            None => Some(0o644),
            Some(m) => u32::from_str_radix(&m, 8).ok().filter(|m| *m <= 0o7777),
        };
        let mode = mode.ok_or_else(|| bad("files[].mode", "an octal mode such as \"0644\""))?;
        out.push(FileSpec { path, content, mode });
    }
    Ok(out)
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
    fn plan_file_names() {
        assert_eq!(file_name([0x00, 0x50, 0x56, 0xA5, 0x0E, 0x0F]), "00-50-56-a5-0e-0f.bty");
    }
}
