//! Tool mode: the release binary (build/init) run as a normal program (not PID 1).

use std::process::Command;

fn imprint(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(imprint_e2e::artifact("build/init")).args(args).output().expect("run imprint");
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_commands_and_keys() {
    let (code, out, _) = imprint(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage: imprint"), "{out}");
    for key in ["--version", "imprint.url=", "BOOTYURL=", "imprint.on_error="] {
        assert!(out.contains(key), "help lacks {key}: {out}");
    }
}

#[test]
fn version_is_the_crate_version() {
    let (code, out, _) = imprint(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out, format!("imprint {}\n", imprint_version()));
}

#[test]
fn unknown_command_is_one_line_on_stderr_and_non_zero() {
    let (code, out, err) = imprint(&["frobnicate"]);
    assert_ne!(code, 0);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("frobnicate") && err.contains("--help"), "{err}");
    let (code, _, err) = imprint(&[]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The version in the init's Cargo.toml.
fn imprint_version() -> String {
    let manifest = std::fs::read_to_string(imprint_e2e::root().join("Cargo.toml")).unwrap();
    let line = manifest.lines().find(|l| l.starts_with("version = ")).unwrap();
    line.trim_start_matches("version = ").trim_matches('"').to_string()
}
