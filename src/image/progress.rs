//! Progress of an image write or capture, and the one line the console shows for it.

use core::fmt;
use core::time::Duration;

/// Where a write stands; handed to the caller's hook at least once a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Image (raw, inflated) bytes produced so far.
    pub written: u64,
    /// Source bytes read so far (compressed, for a gzip image).
    pub read: u64,
    /// The source's length when known (Content-Length, a file's size).
    pub source_size: Option<u64>,
    /// The raw image's length when known (the plan's imageSize, --size, a raw source).
    pub image_size: Option<u64>,
    pub elapsed: Duration,
    /// Set on the last call, after the image is verified and in place.
    pub done: bool,
    /// A capture: `written` counts disk bytes read, and the line says "read".
    pub reading: bool,
}

impl Progress {
    /// (done, total) of what the percent and ETA count: the source when its length is
    /// known, else the image.
    fn done_of(&self) -> Option<(u64, u64)> {
        match (self.source_size, self.image_size) {
            (Some(total), _) => Some((self.read, total)),
            (None, total) => Some((self.written, total?)),
        }
    }

    /// Percent done: of the source when its length is known, else of the image.
    pub fn percent(&self) -> Option<u64> {
        let (done, total) = self.done_of()?;
        // u64 arithmetic, not u128 (whose division the init would carry): exact up to
        // 184 PB, then saturating, never wrapping.
        Some(done.min(total).saturating_mul(100).checked_div(total).unwrap_or(100))
    }

    /// Image bytes per second so far.
    pub fn rate(&self) -> u64 {
        self.written.saturating_mul(1000) / (self.elapsed.as_millis() as u64).max(1)
    }

    /// Time left at the rate so far, when the total is known and something was done.
    pub fn eta(&self) -> Option<Duration> {
        let (done, total) = self.done_of().filter(|_| !self.done)?;
        let ms = total.saturating_sub(done).saturating_mul(self.elapsed.as_millis() as u64);
        ms.checked_div(done).map(Duration::from_millis)
    }
}

/// `value / unit` with one decimal, then `suffix`: "156.2 MB/s". The one place that
/// formats the line's decimals (each formatting call site costs code in the init).
fn decimal(f: &mut fmt::Formatter<'_>, value: u64, unit: u64, suffix: &str) -> fmt::Result {
    write!(f, "{}.{}{suffix}", value / unit, value / (unit / 10) % 10)
}

/// The console line: `1234.5 MB written  45%  156.2 MB/s  ETA 0:42`.
impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.written;
        match b {
            0..=999_999 => write!(f, "{} kB", b / 1000)?,
            1_000_000..=9_999_999_999 => decimal(f, b, 1_000_000, " MB")?,
            _ => decimal(f, b, 1_000_000_000, " GB")?,
        }
        f.write_str(if self.reading { " read" } else { " written" })?;
        if let Some(p) = self.percent() {
            write!(f, "  {p:>3}%")?;
        }
        f.write_str("  ")?;
        decimal(f, self.rate(), 1_000_000, " MB/s")?;
        let (label, left) = match self.eta() {
            Some(eta) => ("ETA", eta),
            None if self.done => ("done in", self.elapsed),
            None => return Ok(()),
        };
        let s = left.as_secs();
        write!(f, "  {label} {}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn the_line_shows_bytes_percent_rate_and_eta() {
        let p = Progress {
            written: 300_000_000,
            read: 100_000_000,
            source_size: Some(400_000_000),
            image_size: None,
            elapsed: Duration::from_secs(2),
            done: false,
            reading: false,
        };
        assert_eq!(p.to_string(), "300.0 MB written   25%  150.0 MB/s  ETA 0:06");
        let unknown = Progress { source_size: None, ..p };
        assert_eq!(unknown.to_string(), "300.0 MB written  150.0 MB/s");
        let done =
            Progress { done: true, read: 400_000_000, elapsed: Duration::from_secs(75), ..p };
        assert_eq!(done.to_string(), "300.0 MB written  100%  4.0 MB/s  done in 1:15");
        let by_image = Progress { source_size: None, image_size: Some(600_000_000), ..p };
        assert_eq!(by_image.percent(), Some(50));
        assert_eq!(Progress::default().to_string(), "0 kB written  0.0 MB/s");
        assert_eq!(Progress { reading: true, ..unknown }.to_string(), "300.0 MB read  150.0 MB/s");
    }
}
