//! Printing to the console (standard output and error) without std.
//!
//! In PID 1 mode both are `/dev/console`; in tool mode they are the caller's. The macros
//! expand to one call of a function here with the `format_args!`, so each of their many
//! call sites costs little code.

use crate::sys::fd::write_all_raw;
use alloc::string::String;
use core::fmt::{self, Write as _};

/// A `fmt::Write` over a descriptor. Write errors are dropped: there is nowhere else to
/// report them, and the console must never stop the boot.
struct Out(i32);

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let _ = write_all_raw(self.0, s.as_bytes());
        Ok(())
    }
}

/// Writes `args` to descriptor `fd`, then a newline if `newline`: what the macros call.
pub fn print(fd: i32, newline: bool, args: fmt::Arguments<'_>) {
    let _ = Out(fd).write_fmt(args);
    let _ = Out(fd).write_str(if newline { "\n" } else { "" });
}

/// Prints to standard output (the console in PID 1 mode).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::print(1, false, format_args!($($arg)*))
    };
}

/// Prints a line to standard output (the console in PID 1 mode).
#[macro_export]
macro_rules! sayln {
    ($($arg:tt)*) => {
        $crate::console::print(1, true, format_args!($($arg)*))
    };
}

/// Prints a line to standard error.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::console::print(2, true, format_args!($($arg)*))
    };
}

/// The formatted text as a `String`: what [`text!`] calls.
pub fn text(args: fmt::Arguments<'_>) -> String {
    let mut s = String::new();
    let _ = s.write_fmt(args);
    s
}

/// `format!` without `alloc::fmt::format`: that function comes precompiled with unwinding
/// landing pads, which a panic=abort no_std binary cannot link. Same syntax, a `String`.
#[macro_export]
macro_rules! text {
    ($($arg:tt)*) => {
        $crate::console::text(format_args!($($arg)*))
    };
}

/// Bytes shown in double quotes, with `"`, `\` and control characters escaped and bytes
/// that are not UTF-8 shown as `\xNN`: what `{:?}` does for error messages, without the
/// Debug machinery (its Unicode tables cost kilobytes in the init). The escapes of text are
/// JSON's, so it also writes the strings of the status reports. `{:#}` leaves out the quotes.
pub struct Quoted<T>(pub T);

impl<T: AsRef<[u8]>> fmt::Display for Quoted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        quote(self.0.as_ref(), f)
    }
}

/// [`Quoted`]'s one body, whatever it holds.
fn quote(mut rest: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let quote = if f.alternate() { "" } else { "\"" };
    f.write_str(quote)?;
    // Each turn: the longest UTF-8 text, then one byte that is not UTF-8.
    loop {
        let valid = core::str::from_utf8(rest).map_or_else(|e| e.valid_up_to(), str::len);
        let (text, tail) = rest.split_at_checked(valid).unwrap_or_default();
        for c in core::str::from_utf8(text).unwrap_or_default().chars() {
            match c {
                '"' | '\\' => f.write_str(if c == '"' { "\\\"" } else { "\\\\" })?,
                c if (c as u32) < 0x20 || c == '\u{7f}' => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        let Some((byte, tail)) = tail.split_first() else { break };
        write!(f, "\\x{byte:02x}")?;
        rest = tail;
    }
    f.write_str(quote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escapes_what_would_confuse_a_reader() {
        assert_eq!(text!("{}", Quoted("plain é")), "\"plain é\"");
        assert_eq!(text!("{}", Quoted(b"a\"b\\c\nd\x7f")), "\"a\\\"b\\\\c\\u000ad\\u007f\"");
        // Bytes that are not UTF-8 are shown by value, the text around them kept.
        let bytes = b"\xffok \xc3\xa9\xc3 \xe2\x82";
        assert_eq!(text!("{}", Quoted(bytes)), "\"\\xffok é\\xc3 \\xe2\\x82\"");
        assert_eq!(text!("{:#}", Quoted(b"a\x01")), "a\\u0001");
    }
}
