//! Disks: choosing the target (and, to come, partition table edits, filesystem and LVM
//! growth after a write).

pub mod gpt;
pub mod select;
pub mod table;
