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
    /// `upload` is "put": a capture is the body as is, PUT to the URL (WebDAV-style
    /// servers); else (`multipart`) plunder's multipart/form-data, field `BootyImage`.
    pub put: bool,
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
    let Value::Object(members) = &document else {
        return Err("plan: the document is not a JSON object".into());
    };
    let mut o = Members::new("", members);
    let mut d = Members::new("disk.", o.object("disk"));
    let action = o.choice("action", "\"writeImage\" or \"readImage\"");
    let drop_to_shell = o.flag("dropToShell");
    let host = "a host name (letters, digits, '-' and '.', at most 253)";
    let plan = Plan {
        action: [Action::WriteImage, Action::ReadImage][action.unwrap_or(0)],
        compressed: o.flag("compressed"),
        source_image: o.str("sourceImage"),
        destination_device: o.str("destinationDevice"),
        source_device: o.str("sourceDevice"),
        // plunder's spelling wins over the right one.
        destination_address: o.str("desintationAddress").or(o.str("destinationAddress")),
        grow_disk: o.flag("growDisk"),
        grow_partition: o.number("growPartition").and_then(|n| {
            u32::try_from(n).ok().or_else(|| o.fail("growPartition", "a partition number", None))
        }),
        lvm_root_name: o.str("lvmRootName"),
        address: o.str("address"),
        gateway: o.str("gateway"),
        nameserver: o.str("nameserver"),
        dry_run: o.flag("dryRun"),
        wipe_device: o.flag("wipeDevice"),
        sha256: o.parsed("sha256", "64 hexadecimal digits", crate::image::sha256::parse_hex),
        image_size: o.number("imageSize"),
        disk: DiskHints {
            serial: d.str("serial"),
            wwn: d.str("wwn"),
            model: d.str("model"),
            vendor: d.str("vendor"),
            min_size: d.number("minSize"),
            max_size: d.number("maxSize"),
            transport: d.str("transport"),
            rotational: d.bool("rotational"),
            removable: d.bool("removable"),
        },
        // onError wins over dropToShell.
        on_error: match o.choice("onError", "\"reboot\", \"shell\" or \"poweroff\"") {
            Some(i) => Some([Policy::Reboot, Policy::Shell, Policy::Poweroff][i]),
            None => drop_to_shell.then_some(Policy::Shell),
        },
        status_url: o.str("statusURL"),
        hostname: o.parsed("hostname", host, |h| is_hostname(h).then(|| h.into())),
        files: o.array("files").iter().filter_map(|item| o.file(item)).collect(),
        finally: [Finally::Reboot, Finally::Poweroff, Finally::Shell]
            [o.choice("finally", "\"reboot\", \"poweroff\" or \"shell\"").unwrap_or(0)],
        put: o.choice("upload", "\"multipart\" or \"put\"") == Some(1),
        ignored: core::mem::take(&mut o.unread),
    };
    let missing = match (action, &plan.source_image, &plan.destination_address) {
        (None, ..) => Some(required("action", "(\"writeImage\" or \"readImage\")")),
        (Some(0), None, _) => Some(required("sourceImage", "for writeImage")),
        (Some(1), _, None) => Some(required("desintationAddress", "for readImage")),
        _ => None,
    };
    o.error.or(d.error).or(missing).map_or(Ok(plan), Err)
}

/// `key` (after its parent, as in "disk.serial") does not hold what it should; `found`
/// is what it holds when that is of the wrong type.
#[inline(never)]
fn bad(parent: &str, key: &str, expected: &str, found: Option<&Value>) -> PlanError {
    let found = found.map_or(String::new(), |v| text!(", found {}", v.kind()));
    text!("plan: key \"{parent}{key}\": expected {expected}{found}")
}

fn required(key: &str, because: &str) -> PlanError {
    text!("plan: key \"{key}\" is required {because}")
}

/// An object's members, read by key and type. plunder writes every field, so null, "", 0
/// and (for BOOTy's booleans) false all mean "not given". A wrong value is noted (the
/// first one is the plan's error) and reads as not given, so reading goes on.
struct Members<'v> {
    /// Named before the keys in errors ("disk.").
    parent: &'static str,
    members: &'v [(String, Value)],
    /// The keys not read (yet): at the end, the ones imprint does not know.
    unread: Vec<String>,
    error: Option<PlanError>,
}

impl<'v> Members<'v> {
    fn new(parent: &'static str, members: &'v [(String, Value)]) -> Members<'v> {
        let unread = members.iter().map(|m| m.0.clone()).collect();
        Members { parent, members, unread, error: None }
    }

    fn note(&mut self, error: PlanError) {
        self.error.get_or_insert(error);
    }

    fn fail<T>(&mut self, key: &str, expected: &str, found: Option<&Value>) -> Option<T> {
        self.note(bad(self.parent, key, expected, found));
        None
    }

    /// The value of `key`, unless it is absent or null.
    fn get(&mut self, key: &str) -> Option<&'v Value> {
        self.unread.retain(|k| k != key);
        let (_, value) = self.members.iter().find(|(k, _)| k == key)?;
        Some(value).filter(|v| !matches!(v, Value::Null))
    }

    #[inline(never)]
    fn str(&mut self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()).filter(|s| !s.is_empty()),
            v => self.fail(key, "a string", Some(v)),
        }
    }

    /// imprint's booleans, where false is meaningful.
    #[inline(never)]
    fn bool(&mut self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            v => self.fail(key, "true or false", Some(v)),
        }
    }

    /// BOOTy's booleans: absent is false.
    fn flag(&mut self, key: &str) -> bool {
        self.bool(key) == Some(true)
    }

    #[inline(never)]
    fn number(&mut self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Number(Some(n)) => Some(*n).filter(|&n| n > 0),
            Value::Number(None) => self.fail(key, "a whole number from 0 to 2^64-1", None),
            v => self.fail(key, "a number", Some(v)),
        }
    }

    fn object(&mut self, key: &str) -> &'v [(String, Value)] {
        match self.get(key) {
            Some(Value::Object(members)) => members,
            Some(v) => self.fail(key, "an object", Some(v)).unwrap_or_default(),
            None => &[],
        }
    }

    fn array(&mut self, key: &str) -> &'v [Value] {
        match self.get(key) {
            Some(Value::Array(items)) => items,
            Some(v) => self.fail(key, "an array", Some(v)).unwrap_or_default(),
            None => &[],
        }
    }

    /// String `key` as `convert` makes it; a string it refuses should be `expected`.
    fn parsed<T>(
        &mut self,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let value = convert(&self.str(key)?);
        value.or_else(|| self.fail(key, expected, None))
    }

    /// Which of the quoted words of `expected` `key` holds.
    fn choice(&mut self, key: &str, expected: &str) -> Option<usize> {
        self.parsed(key, expected, |w| expected.split('"').skip(1).step_by(2).position(|o| o == w))
    }

    /// One item of the plan's `files`; its errors are the plan's.
    fn file(&mut self, item: &'v Value) -> Option<FileSpec> {
        let Value::Object(members) = item else {
            return self.fail("files", "an array of objects", Some(item));
        };
        let mut f = Members::new("files[].", members);
        let path = f.parsed("path", "an absolute path without \"..\"", |p| {
            (p.starts_with('/') && !p.split('/').any(|part| part == "..")).then(|| p.into())
        });
        if path.is_none() {
            f.note(required("files[].path", "for every file"));
        }
        let (content, base64) =
            (f.str("content"), f.parsed("base64", "base64 (RFC 4648)", base64::decode));
        let both = "plan: key \"files[]\": expected either \"content\" or \"base64\", not both";
        if content.is_some() && base64.is_some() {
            f.note(both.into());
        }
        let octal = |m: &str| u32::from_str_radix(m, 8).ok().filter(|m| *m <= 0o7777);
        let mode = f.parsed("mode", "an octal mode such as \"0644\"", octal).unwrap_or(0o644);
        if let Some(error) = f.error {
            self.note(error);
        }
        let content = base64.or(content.map(String::into_bytes)).unwrap_or_default();
        Some(FileSpec { path: path?, content, mode })
    }
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
        assert!(!p.put);
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
    fn plan_file_names() {
        assert_eq!(file_name([0x00, 0x50, 0x56, 0xA5, 0x0E, 0x0F]), "00-50-56-a5-0e-0f.bty");
    }
}
