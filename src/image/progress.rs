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
    /// Percent done: of the source when its length is known, else of the image.
    pub fn percent(&self) -> Option<u64> {
        let (done, total) = match (self.source_size, self.image_size) {
            (Some(total), _) => (self.read, total),
            (None, Some(total)) => (self.written, total),
            (None, None) => return None,
        };
        Some(if total == 0 { 100 } else { (done.min(total) as u128 * 100 / total as u128) as u64 })
    }

    /// Image bytes per second so far.
    pub fn rate(&self) -> u64 {
        let ms = self.elapsed.as_millis().max(1) as u128;
        (self.written as u128 * 1000 / ms) as u64
    }

    /// Time left at the rate so far, when the total is known and something was done.
    pub fn eta(&self) -> Option<Duration> {
        let (done, total) = match (self.source_size, self.image_size) {
            (Some(total), _) => (self.read, total),
            (None, Some(total)) => (self.written, total),
            (None, None) => return None,
        };
        if done == 0 || self.done {
            return None;
        }
        let left = total.saturating_sub(done) as u128;
        Some(Duration::from_millis((left * self.elapsed.as_millis() / done as u128) as u64))
    }
}

/// A byte count in decimal units (MB as in MB/s).
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b < 1_000_000 {
            write!(f, "{} kB", b / 1000)
        } else if b < 10_000_000_000 {
            write!(f, "{}.{} MB", b / 1_000_000, b / 100_000 % 10)
        } else {
            write!(f, "{}.{} GB", b / 1_000_000_000, b / 100_000_000 % 10)
        }
    }
}

/// The console line: `1234.5 MB written  45%  156.2 MB/s  ETA 0:42`.
impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", Bytes(self.written), if self.reading { "read" } else { "written" })?;
        if let Some(p) = self.percent() {
            write!(f, "  {p:>3}%")?;
        }
        let rate = self.rate();
        write!(f, "  {}.{} MB/s", rate / 1_000_000, rate / 100_000 % 10)?;
        match self.eta() {
            Some(eta) => {
                let s = eta.as_secs();
                write!(f, "  ETA {}:{:02}", s / 60, s % 60)
            }
            None if self.done => {
                let s = self.elapsed.as_secs();
                write!(f, "  done in {}:{:02}", s / 60, s % 60)
            }
            None => Ok(()),
        }
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
        let done = Progress { done: true, read: 400_000_000, elapsed: Duration::from_secs(75), ..p };
        assert_eq!(done.to_string(), "300.0 MB written  100%  4.0 MB/s  done in 1:15");
        let by_image = Progress { source_size: None, image_size: Some(600_000_000), ..p };
        assert_eq!(by_image.percent(), Some(50));
        assert_eq!(Progress::default().to_string(), "0 kB written  0.0 MB/s");
        assert_eq!(Progress { reading: true, ..unknown }.to_string(), "300.0 MB read  150.0 MB/s");
    }
}
