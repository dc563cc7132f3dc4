//! The partition table on a disk, as the kernel's parsers would read it: for setting the
//! partitions one by one (BLKPG) when one of them is in use and the kernel refuses to
//! re-read the whole table. GPT (behind its protective MBR), else MBR's four primary
//! entries (logical partitions inside an extended one are not followed).

use super::gpt::{self, u32_at, u64_at};
use crate::sys::block;
use crate::sys::fd::Fd;
use alloc::vec::Vec;

/// A partition: its number (1-based), first byte and length in bytes.
pub type Partition = (u32, u64, u64);

/// The partitions of the disk open as `fd` (O_DIRECT or not: aligned reads of whole
/// pages); none when it has no table, `None` when it cannot be read.
pub fn read(fd: &Fd) -> Option<Vec<Partition>> {
    let block = u64::from(block::logical_block_size(fd).ok()?);
    let read = |at: u64, len: u64| {
        let mut buf = block::AlignedBuf::zeroed(len as usize).ok()?;
        block::pread_exact(fd, &mut buf, at).ok().map(|_| buf)
    };
    let head = read(0, 2 * block)?;
    let (mbr, header) = head.split_at(block as usize);
    let Some((lba, count, size)) = gpt::entries_of(header).ok()? else {
        return Some(primaries(mbr, block));
    };
    let entries = read(lba * block, u64::from(count) * u64::from(size))?;
    let mut table = Vec::new();
    for (e, n) in entries.chunks_exact(size as usize).zip(1..) {
        if n > count {
            break; // the buffer is whole pages: what follows the entries is not theirs
        }
        let (first, last) = (u64_at(e, 32), u64_at(e, 40));
        // A used entry: its type GUID is not all zeros.
        if u64_at(e, 0) | u64_at(e, 8) != 0 && last >= first {
            table.push((n, first * block, (last - first + 1) * block));
        }
    }
    Some(table)
}

/// MBR's primary partitions (none without the 0x55AA signature).
fn primaries(mbr: &[u8], block: u64) -> Vec<Partition> {
    let mut table = Vec::new();
    if mbr.get(510..512) == Some(&[0x55, 0xAA]) {
        for (e, n) in mbr.get(446..510).unwrap_or_default().chunks_exact(16).zip(1..) {
            let (start, len) = (u64::from(u32_at(e, 8)), u64::from(u32_at(e, 12)));
            // A used entry: it has a type and a length.
            if e.get(4).is_some_and(|&kind| kind != 0) && len != 0 {
                table.push((n, start * block, len * block));
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_primaries_are_read_and_empty_ones_skipped() {
        let mut mbr = [0u8; 512];
        let mut entry = |i: usize, kind: u8, start: u32, len: u32| {
            let e = &mut mbr[446 + 16 * i..][..16];
            e[4] = kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&len.to_le_bytes());
        };
        entry(0, 0x83, 2048, 8192);
        entry(1, 0, 10240, 100); // no type: unused
        entry(3, 0x8e, 0x1_0000, 0xFFFF_0000);
        assert!(primaries(&mbr, 512).is_empty(), "no signature, no table");
        mbr[510..].copy_from_slice(&[0x55, 0xAA]);
        let want = [(1, 2048 * 512, 8192 * 512), (4, 0x1_0000 * 4096, 0xFFFF_0000 * 4096)];
        assert_eq!(primaries(&mbr, 512)[..1], want[..1]);
        assert_eq!(primaries(&mbr, 4096)[1], want[1]);
    }
}
