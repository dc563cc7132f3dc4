//! Printing to the console (standard output and error) without std.
//!
//! In PID 1 mode both are `/dev/console`; in tool mode they are the caller's.

use crate::sys::fd::{write_all_raw, STDERR, STDOUT};
use core::fmt::{self, Write as _};

/// A `fmt::Write` over a descriptor. Write errors are dropped: there is nowhere else to
/// report them, and the console must never stop the boot.
pub struct Out(pub i32);

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let _ = write_all_raw(self.0, s.as_bytes());
        Ok(())
    }
}

pub fn stdout() -> Out {
    Out(STDOUT)
}

pub fn stderr() -> Out {
    Out(STDERR)
}

/// Prints to standard output (the console in PID 1 mode).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::console::stdout(), $($arg)*);
    }};
}

/// Prints a line to standard output (the console in PID 1 mode).
#[macro_export]
macro_rules! sayln {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::stdout(), $($arg)*);
    }};
}

/// Prints a line to standard error.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::stderr(), $($arg)*);
    }};
}

/// `format!` without `alloc::fmt::format`: that function comes precompiled with unwinding
/// landing pads, which a panic=abort no_std binary cannot link. Same syntax, a `String`.
#[macro_export]
macro_rules! text {
    ($($arg:tt)*) => {{
        let mut s = alloc::string::String::new();
        let _ = core::fmt::Write::write_fmt(&mut s, format_args!($($arg)*));
        s
    }};
}

/// A string shown in double quotes, with `"`, `\` and control characters escaped: what
/// `{:?}` does for error messages, without the Debug machinery (its Unicode tables cost
/// kilobytes in the init).
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x20 || c == '\u{7f}' => write!(f, "\\x{:02x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_str("\"")
    }
}

/// Formats into a fixed buffer, truncating what does not fit: for the panic path, which
/// must not allocate (the panic may be an allocation failure).
pub struct FixedBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedBuf<N> {
    pub fn new() -> Self {
        FixedBuf { buf: [0; N], len: 0 }
    }
    pub fn as_str(&self) -> &str {
        // Truncation happens only at char boundaries (see write_str), so this holds.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for FixedBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn quoted_escapes_what_would_confuse_a_reader() {
        assert_eq!(text!("{}", Quoted("plain é")), "\"plain é\"");
        assert_eq!(text!("{}", Quoted("a\"b\\c\nd\x7f")), "\"a\\\"b\\\\c\\x0ad\\x7f\"");
    }

    #[test]
    fn fixed_buf_truncates_at_char_boundaries() {
        let mut b = FixedBuf::<5>::new();
        write!(b, "ab€cd").unwrap(); // € is 3 bytes: "ab€" is exactly 5
        assert_eq!(b.as_str(), "ab€");
        let mut b = FixedBuf::<4>::new();
        write!(b, "ab€").unwrap();
        assert_eq!(b.as_str(), "ab");
    }
}
