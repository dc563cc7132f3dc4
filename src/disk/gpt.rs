//! GPT edits after an image is written: an image made for a small disk has its backup
//! header where its own disk ended, not where this one ends (the kernel warns, and tools
//! call the table damaged). [`grow`] moves the backup header and entries to the end of the
//! disk, makes the rest of the disk usable and, when asked, lets one partition extend
//! over it (BOOTy's `growPartition`). Both copies get fresh CRCs.
//!
//! Layout (UEFI 2.10, section 5.3): the header at LBA 1 (92 bytes used), its entries from
//! `entries_lba`; the backup entries end just before the backup header at the last LBA.

use crate::image::crc32;
use crate::sys::fd::Fd;
use crate::sys::{block, Errno};
use alloc::vec;
#[cfg(test)]
use alloc::vec::Vec;

use core::fmt;

const SIGNATURE: &[u8; 8] = b"EFI PART";
const HEADER_SIZE: usize = 92;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GptError {
    /// LBA 1 holds no GPT header (an MBR-only or unpartitioned image): nothing to do.
    NotGpt,
    /// The header or the entries fail their CRC, or fields are out of range.
    Damaged(&'static str),
    /// `growPartition` names a partition that is empty or not the last on the disk.
    CannotGrow {
        number: u32,
        why: &'static str,
    },
    Io {
        doing: &'static str,
        errno: Errno,
    },
}

impl fmt::Display for GptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GptError::NotGpt => f.write_str("the disk has no GPT"),
            GptError::Damaged(why) => write!(f, "the image's GPT is damaged: {why}"),
            GptError::CannotGrow { number, why } => write!(f, "growing partition {number}: {why}"),
            GptError::Io { doing, errno } => write!(f, "{doing}: {errno}"),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The header's CRC: over its 92 bytes with the CRC field zeroed.
fn header_crc(header: &[u8]) -> u32 {
    let mut copy = [0u8; HEADER_SIZE];
    copy.copy_from_slice(&header[..HEADER_SIZE]);
    put_u32(&mut copy, 16, 0);
    crc32::checksum(&copy)
}

/// What the primary header says about the entries: (first LBA, count, entry size).
pub fn entries_of(header: &[u8]) -> Result<(u64, u32, u32), GptError> {
    if header.len() < HEADER_SIZE || &header[..8] != SIGNATURE {
        return Err(GptError::NotGpt);
    }
    if u32_at(header, 12) as usize != HEADER_SIZE || header_crc(header) != u32_at(header, 16) {
        return Err(GptError::Damaged("the header's CRC does not match"));
    }
    let (lba, count, size) = (u64_at(header, 72), u32_at(header, 80), u32_at(header, 84));
    if size < 128 || size % 8 != 0 || count == 0 || count > 1024 || lba < 2 {
        return Err(GptError::Damaged("the partition entry array is out of range"));
    }
    Ok((lba, count, size))
}

/// The new primary and backup headers for a disk of `disk_lbas` blocks of `block` bytes,
/// with `entries` (the primary array, checked and updated in place when a partition
/// grows). Returns (primary header, backup header, LBA of the backup entries).
pub fn plan(
    header: &[u8],
    entries: &mut [u8],
    disk_lbas: u64,
    block: u64,
    grow: Option<u32>,
) -> Result<([u8; HEADER_SIZE], [u8; HEADER_SIZE], u64), GptError> {
    let (entries_lba, count, size) = entries_of(header)?;
    let array = count as usize * size as usize;
    if entries.len() < array || crc32::checksum(&entries[..array]) != u32_at(header, 88) {
        return Err(GptError::Damaged("the partition entries' CRC does not match"));
    }
    let array_lbas = (array as u64).div_ceil(block);
    let last = disk_lbas.checked_sub(1).ok_or(GptError::Damaged("empty disk"))?;
    let backup_entries = last.checked_sub(array_lbas).ok_or(GptError::Damaged("disk too small"))?;
    let last_usable = backup_entries - 1;
    if last_usable < u64_at(header, 48) {
        return Err(GptError::Damaged("the disk is smaller than the image's table says"));
    }
    if let Some(number) = grow {
        grow_entry(&mut entries[..array], size as usize, number, last_usable)?;
    }
    let mut primary = [0u8; HEADER_SIZE];
    primary.copy_from_slice(&header[..HEADER_SIZE]);
    put_u64(&mut primary, 32, last); // where the backup header is
    put_u64(&mut primary, 48, last_usable);
    put_u32(&mut primary, 88, crc32::checksum(&entries[..array]));
    let mut backup = primary;
    put_u64(&mut backup, 24, last); // the backup's own LBA ...
    put_u64(&mut backup, 32, 1); // ... and the primary's
    put_u64(&mut backup, 72, backup_entries);
    for h in [&mut primary, &mut backup] {
        let crc = header_crc(h);
        put_u32(h, 16, crc);
    }
    debug_assert!(entries_lba >= 2);
    Ok((primary, backup, backup_entries))
}

/// Extends partition `number` (1-based) to `last_usable`, if it is in use and no other
/// partition lies after it.
fn grow_entry(
    entries: &mut [u8],
    size: usize,
    number: u32,
    last_usable: u64,
) -> Result<(), GptError> {
    let index = (number as usize).checked_sub(1).filter(|i| (i + 1) * size <= entries.len());
    let Some(index) = index else {
        return Err(GptError::CannotGrow { number, why: "the table has no such partition" });
    };
    let entry = index * size;
    if entries[entry..entry + 16].iter().all(|&b| b == 0) {
        return Err(GptError::CannotGrow { number, why: "the partition is empty" });
    }
    let first = u64_at(entries, entry + 32);
    let later = (0..entries.len() / size).any(|i| {
        i != index
            && entries[i * size..i * size + 16].iter().any(|&b| b != 0)
            && u64_at(entries, i * size + 32) > first
    });
    if later {
        return Err(GptError::CannotGrow { number, why: "another partition lies after it" });
    }
    if last_usable < u64_at(entries, entry + 40) {
        return Err(GptError::CannotGrow { number, why: "it would shrink" });
    }
    put_u64(entries, entry + 40, last_usable);
    Ok(())
}

/// Moves the backup GPT of the disk open as `fd` to its end and grows partition `grow`
/// if asked. `Ok(false)`: the disk has no GPT (nothing done).
pub fn relocate_and_grow(fd: &Fd, grow: Option<u32>) -> Result<bool, GptError> {
    let io = |doing| move |errno| GptError::Io { doing, errno };
    let block = u64::from(block::logical_block_size(fd).map_err(io("reading the block size"))?);
    let disk_lbas = block::device_size(fd).map_err(io("reading the disk size"))? / block;
    let mut header = vec![0u8; block as usize];
    block::pread_exact(fd, &mut header, block).map_err(io("reading the GPT header"))?;
    let (entries_lba, count, size) = match entries_of(&header) {
        Err(GptError::NotGpt) => return Ok(false),
        other => other?,
    };
    let array_len = (u64::from(count) * u64::from(size)).div_ceil(block) * block;
    let mut entries = vec![0u8; array_len as usize];
    block::pread_exact(fd, &mut entries, entries_lba * block)
        .map_err(io("reading the GPT entries"))?;
    let (primary, backup, backup_entries) = plan(&header, &mut entries, disk_lbas, block, grow)?;
    // Backup first, primary last: until the primary is rewritten the old table stands.
    block::pwrite_all(fd, &entries, backup_entries * block)
        .map_err(io("writing the backup GPT entries"))?;
    write_header(fd, &backup, (disk_lbas - 1) * block, block)
        .map_err(io("writing the backup GPT header"))?;
    block::pwrite_all(fd, &entries, entries_lba * block).map_err(io("writing the GPT entries"))?;
    write_header(fd, &primary, block, block).map_err(io("writing the GPT header"))?;
    block::fsync(fd).map_err(io("flushing the GPT"))?;
    Ok(true)
}

fn write_header(
    fd: &Fd,
    header: &[u8; HEADER_SIZE],
    offset: u64,
    block: u64,
) -> crate::sys::Result<()> {
    let mut sector = vec![0u8; block as usize];
    sector[..HEADER_SIZE].copy_from_slice(header);
    block::pwrite_all(fd, &sector, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// The header and first two entries sfdisk wrote for the demo image (64 MiB: /boot
    /// from LBA 2048, root from 34816 to 131038).
    const HEADER: &str = "4546492050415254000001005c000000c772abb5000000000100000000000000ffff0100000000000008000000000000deff010000000000368e4a2c1f5b2b4d9a771e0c5d3b8f100200000000000000800000008000000092caeff9";
    const ENTRIES: &str = "ffc213bce6596242a352b275fd6f71724a3b2c1d6e5f8b4a9c0d1e2f3a4b5c6d0008000000000000ff87000000000000040000000000000062006f006f00740000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000af3dc60f838472478e793d69d8477de46c7d8e9f4a5b924381706f5e4d3c2b1a0088000000000000fff7010000000000000000000000000072006f006f00740000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    fn sfdisk_table() -> (Vec<u8>, Vec<u8>) {
        let mut entries = hex(ENTRIES);
        entries.resize(128 * 128, 0);
        (hex(HEADER), entries)
    }

    #[test]
    fn reads_a_real_sfdisk_table() {
        let (header, entries) = sfdisk_table();
        assert_eq!(entries_of(&header), Ok((2, 128, 128)));
        assert_eq!(crc32::checksum(&entries), u32_at(&header, 88));
    }

    #[test]
    fn relocates_the_backup_and_grows_the_last_partition() {
        let (header, mut entries) = sfdisk_table();
        let disk = 262_144; // 128 MiB of 512-byte blocks
        let (primary, backup, backup_entries) =
            plan(&header, &mut entries, disk, 512, Some(2)).unwrap();
        assert_eq!(backup_entries, disk - 1 - 32);
        assert_eq!(u64_at(&primary, 32), disk - 1, "the primary points at the new backup");
        assert_eq!(u64_at(&primary, 48), disk - 34, "the rest of the disk is usable");
        assert_eq!(u64_at(&entries, 128 + 40), disk - 34, "partition 2 reaches the end");
        assert_eq!(u64_at(&entries, 40), 34_815, "partition 1 is unchanged");
        assert_eq!(
            (u64_at(&backup, 24), u64_at(&backup, 32), u64_at(&backup, 72)),
            (disk - 1, 1, disk - 33)
        );
        // Both headers check out again, against the updated entries.
        for h in [&primary[..], &backup[..]] {
            assert_eq!(header_crc(h), u32_at(h, 16));
            assert_eq!(crc32::checksum(&entries), u32_at(h, 88));
        }
        assert_eq!(entries_of(&primary), Ok((2, 128, 128)));
    }

    #[test]
    fn only_the_last_partition_in_use_can_grow() {
        let (header, mut entries) = sfdisk_table();
        let err = plan(&header, &mut entries.clone(), 262_144, 512, Some(1)).unwrap_err();
        assert_eq!(err, GptError::CannotGrow { number: 1, why: "another partition lies after it" });
        let err = plan(&header, &mut entries.clone(), 262_144, 512, Some(3)).unwrap_err();
        assert_eq!(err, GptError::CannotGrow { number: 3, why: "the partition is empty" });
        let err = plan(&header, &mut entries.clone(), 262_144, 512, Some(200)).unwrap_err();
        assert_eq!(
            err,
            GptError::CannotGrow { number: 200, why: "the table has no such partition" }
        );
        // Without growing, the same disk size leaves the entries as they were.
        let before = entries.clone();
        plan(&header, &mut entries, 131_072, 512, None).unwrap();
        assert_eq!(entries, before);
    }

    #[test]
    fn damage_is_detected() {
        let (mut header, mut entries) = sfdisk_table();
        assert_eq!(entries_of(&[0u8; 512]), Err(GptError::NotGpt));
        entries[200] ^= 1;
        assert_eq!(
            plan(&header, &mut entries, 262_144, 512, None).unwrap_err(),
            GptError::Damaged("the partition entries' CRC does not match")
        );
        header[40] ^= 1;
        assert_eq!(entries_of(&header), Err(GptError::Damaged("the header's CRC does not match")));
        let (header, mut entries) = sfdisk_table();
        assert_eq!(
            plan(&header, &mut entries, 100_000, 512, None).unwrap_err(),
            GptError::Damaged("the disk is smaller than the image's table says")
        );
    }
}
