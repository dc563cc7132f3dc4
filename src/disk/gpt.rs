//! GPT edits after an image is written: an image made for a small disk has its backup
//! header where its own disk ended, not where this one ends (the kernel warns, and tools
//! call the table damaged). [`relocate_and_grow`] moves the backup header and entries to
//! the end of the disk, makes the rest of the disk usable and, when asked, lets one
//! partition extend over it (BOOTy's `growPartition`). Both copies get fresh CRCs.
//!
//! Layout (UEFI 2.10, section 5.3): the header at LBA 1 (92 bytes used), its entries from
//! `entries_lba`; the backup entries end just before the backup header at the last LBA.

use crate::image::crc32;
use crate::sys::block;
use crate::sys::fd::Fd;

const HEADER_SIZE: usize = 92;

/// Errors are their message: "the image's GPT is damaged: ...", "growing partition 2: ...".
type Result<T, E = alloc::string::String> = core::result::Result<T, E>;

fn damaged(why: &str) -> alloc::string::String {
    text!("the image's GPT is damaged: {why}")
}

/// The little-endian u32 at `at`; 0 past the end (every caller checked the length).
pub(super) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b.get(at..at + 4).and_then(|s| s.try_into().ok()).unwrap_or_default())
}

pub(super) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(to) = b.get_mut(at..at + v.len()) {
        to.copy_from_slice(v);
    }
}

/// The header's CRC: over its 92 bytes with the CRC field zeroed.
fn header_crc(header: &[u8]) -> u32 {
    let mut copy = [0u8; HEADER_SIZE];
    copy.copy_from_slice(&header[..HEADER_SIZE]);
    put(&mut copy, 16, &[0; 4]);
    crc32::checksum(&copy)
}

/// What the primary header says about the entries: (first LBA, count, entry size); `None`
/// when LBA 1 holds no GPT header (an MBR-only or unpartitioned image).
pub fn entries_of(header: &[u8]) -> Result<Option<(u64, u32, u32)>> {
    if header.len() < HEADER_SIZE || &header[..8] != b"EFI PART" {
        return Ok(None);
    }
    if u32_at(header, 12) as usize != HEADER_SIZE || header_crc(header) != u32_at(header, 16) {
        return Err(damaged("the header's CRC does not match"));
    }
    let (lba, count, size) = (u64_at(header, 72), u32_at(header, 80), u32_at(header, 84));
    if size < 128 || size % 8 != 0 || count == 0 || count > 1024 || lba < 2 {
        return Err(damaged("the partition entry array is out of range"));
    }
    Ok(Some((lba, count, size)))
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
) -> Result<([u8; HEADER_SIZE], [u8; HEADER_SIZE], u64)> {
    let (_, count, size) = entries_of(header)?.ok_or("the disk has no GPT")?;
    let array = count as usize * size as usize;
    if entries.len() < array || crc32::checksum(&entries[..array]) != u32_at(header, 88) {
        return Err(damaged("the partition entries' CRC does not match"));
    }
    let array_lbas = (array as u64).div_ceil(block);
    let last = disk_lbas.checked_sub(1).ok_or_else(|| damaged("empty disk"))?;
    let backup_entries = last.checked_sub(array_lbas).ok_or_else(|| damaged("disk too small"))?;
    let last_usable = backup_entries - 1;
    if last_usable < u64_at(header, 48) {
        return Err(damaged("the disk is smaller than the image's table says"));
    }
    if let Some(number) = grow {
        grow_entry(&mut entries[..array], size as usize, number, last_usable)
            .map_err(|why| text!("growing partition {number}: {why}"))?;
    }
    let mut primary = [0u8; HEADER_SIZE];
    primary.copy_from_slice(&header[..HEADER_SIZE]);
    put(&mut primary, 32, &last.to_le_bytes()); // where the backup header is
    put(&mut primary, 48, &last_usable.to_le_bytes());
    put(&mut primary, 88, &crc32::checksum(&entries[..array]).to_le_bytes());
    let mut backup = primary;
    put(&mut backup, 24, &last.to_le_bytes()); // the backup's own LBA ...
    put(&mut backup, 32, &1u64.to_le_bytes()); // ... and the primary's
    put(&mut backup, 72, &backup_entries.to_le_bytes());
    for h in [&mut primary, &mut backup] {
        let crc = header_crc(h);
        put(h, 16, &crc.to_le_bytes());
    }
    Ok((primary, backup, backup_entries))
}

/// Extends partition `number` (1-based) to `end` (the last usable LBA), if it is in use and no other
/// partition lies after it.
fn grow_entry(entries: &mut [u8], size: usize, number: u32, end: u64) -> Result<(), &'static str> {
    let used = |e: &[u8]| e.iter().take(16).any(|&b| b != 0);
    let index = (number as usize).checked_sub(1).filter(|i| (i + 1) * size <= entries.len());
    let entry = index.ok_or("the table has no such partition")? * size;
    if !used(entries.get(entry..).unwrap_or_default()) {
        return Err("the partition is empty");
    }
    let first = u64_at(entries, entry + 32);
    let later = entries.chunks_exact(size).any(|e| used(e) && u64_at(e, 32) > first);
    if later {
        return Err("another partition lies after it");
    }
    if end < u64_at(entries, entry + 40) {
        return Err("it would shrink");
    }
    put(entries, entry + 40, &end.to_le_bytes());
    Ok(())
}

/// Moves the backup GPT of the disk open as `fd` to its end and grows partition `grow`
/// if asked. `Ok(false)`: the disk has no GPT (nothing done).
pub fn relocate_and_grow(fd: &Fd, grow: Option<u32>) -> Result<bool> {
    let io = |doing| move |errno| text!("{doing}: {errno}");
    let block = u64::from(block::logical_block_size(fd).map_err(io("reading the block size"))?);
    let disk_lbas = block::device_size(fd).map_err(io("reading the disk size"))? / block;
    let mut header = alloc::vec![0u8; block as usize];
    block::pread_exact(fd, &mut header, block).map_err(io("reading the GPT header"))?;
    let Some((entries_lba, count, size)) = entries_of(&header)? else { return Ok(false) };
    let array_len = (u64::from(count) * u64::from(size)).div_ceil(block) * block;
    let mut entries = alloc::vec![0u8; array_len as usize];
    block::pread_exact(fd, &mut entries, entries_lba * block)
        .map_err(io("reading the GPT entries"))?;
    let (primary, backup, backup_entries) = plan(&header, &mut entries, disk_lbas, block, grow)?;
    // Backup first, primary last: until the primary is rewritten the old table stands. The
    // headers go out in the block read from LBA 1, its reserved rest zeroed.
    header[HEADER_SIZE..].fill(0);
    let copies =
        [("backup ", backup, backup_entries, disk_lbas - 1), ("", primary, entries_lba, 1)];
    for (which, new, entries_at, header_at) in copies {
        let failed = |what| move |errno| text!("writing the {which}GPT {what}: {errno}");
        block::pwrite_all(fd, &entries, entries_at * block).map_err(failed("entries"))?;
        header[..HEADER_SIZE].copy_from_slice(&new);
        block::pwrite_all(fd, &header, header_at * block).map_err(failed("header"))?;
    }
    block::fsync(fd).map_err(io("flushing the GPT"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

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
        assert_eq!(entries_of(&header), Ok(Some((2, 128, 128))));
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
        assert_eq!(entries_of(&primary), Ok(Some((2, 128, 128))));
    }

    #[test]
    fn only_the_last_partition_in_use_can_grow() {
        let (header, mut entries) = sfdisk_table();
        let err = plan(&header, &mut entries.clone(), 262_144, 512, Some(1)).unwrap_err();
        assert_eq!(err, "growing partition 1: another partition lies after it");
        let err = plan(&header, &mut entries.clone(), 262_144, 512, Some(3)).unwrap_err();
        assert_eq!(err, "growing partition 3: the partition is empty");
        let err = plan(&header, &mut entries.clone(), 262_144, 512, Some(200)).unwrap_err();
        assert_eq!(err, "growing partition 200: the table has no such partition");
        // Without growing, the same disk size leaves the entries as they were.
        let before = entries.clone();
        plan(&header, &mut entries, 131_072, 512, None).unwrap();
        assert_eq!(entries, before);
    }

    #[test]
    fn damage_is_detected() {
        let (mut header, mut entries) = sfdisk_table();
        assert_eq!(entries_of(&[0u8; 512]), Ok(None));
        entries[200] ^= 1;
        assert_eq!(
            plan(&header, &mut entries, 262_144, 512, None).unwrap_err(),
            "the image's GPT is damaged: the partition entries' CRC does not match"
        );
        header[40] ^= 1;
        assert_eq!(
            entries_of(&header),
            Err("the image's GPT is damaged: the header's CRC does not match".into())
        );
        let (header, mut entries) = sfdisk_table();
        assert_eq!(
            plan(&header, &mut entries, 100_000, 512, None).unwrap_err(),
            "the image's GPT is damaged: the disk is smaller than the image's table says"
        );
    }
}
