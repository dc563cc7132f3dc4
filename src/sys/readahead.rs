//! Reading a disk front to back with O_DIRECT, the next block already on its way (Linux
//! AIO) while the caller works on this one: direct reads get no read-ahead from the
//! kernel, so a capture would otherwise wait for every read before deflating it. Without
//! AIO in the kernel (ENOSYS, as in a tinyconfig kernel) every read is a plain pread.

use super::block::{aio_destroy, aio_events, aio_setup, AlignedBuf, IoEvent, Iocb};
use super::fd::Fd;
use super::{Errno, Result};

const IOCB_CMD_PREAD: u16 = 0;

/// Two page-aligned buffers: the caller reads one while the kernel fills the other.
pub struct ReadAhead {
    bufs: [AlignedBuf; 2],
    ctx: Option<libc::c_ulong>,
    /// A background read into `bufs[next]` is in flight.
    in_flight: bool,
    /// The buffer the next block goes into.
    next: usize,
    /// Offset of the next block.
    offset: u64,
    /// Length of the block `next` returned last, in the other buffer.
    current_len: usize,
    ended: bool,
}

impl ReadAhead {
    /// Two buffers of `block` bytes (a multiple of the logical block size).
    pub fn new(block: usize) -> Result<ReadAhead> {
        let bufs = [AlignedBuf::zeroed(block)?, AlignedBuf::zeroed(block)?];
        Ok(ReadAhead {
            bufs,
            ctx: aio_setup(1),
            in_flight: false,
            next: 0,
            offset: 0,
            current_len: 0,
            ended: false,
        })
    }

    /// The next block of `fd` (the same fd on every call, open with O_DIRECT for reads
    /// to run in the background); a short block is the last, then empty ones follow.
    pub fn next(&mut self, fd: &Fd) -> Result<&[u8]> {
        if self.ended {
            self.current_len = 0;
            return Ok(&[]);
        }
        let index = self.next;
        let n = if self.in_flight {
            let n = self.wait()?;
            self.in_flight = false;
            n
        } else {
            super::block::pread(fd, &mut self.bufs[index], self.offset)?
        };
        self.offset += n as u64;
        self.next = 1 - index;
        self.current_len = n;
        // Direct reads of a disk or a file come back short only at its end.
        self.ended = n < self.bufs[index].len();
        if !self.ended {
            self.start(fd);
        }
        Ok(&self.bufs[index][..n])
    }

    /// The block the last `next` returned.
    pub fn current(&self) -> &[u8] {
        &self.bufs[1 - self.next][..self.current_len]
    }

    /// Starts reading the block after this one into the other buffer; if the kernel
    /// refuses, the next call reads it in the foreground.
    fn start(&mut self, fd: &Fd) {
        let Some(ctx) = self.ctx else { return };
        let buf = &mut self.bufs[self.next];
        let iocb = Iocb {
            aio_lio_opcode: IOCB_CMD_PREAD,
            aio_fildes: fd.raw() as u32,
            aio_buf: buf.as_mut_ptr() as u64,
            aio_nbytes: buf.len() as u64,
            aio_offset: self.offset as i64,
            ..Iocb::default()
        };
        let mut list = [&iocb as *const Iocb];
        // SAFETY: `list` points to one valid iocb, which the kernel copies during the call.
        // The buffer it names stays allocated until the read completes (Drop destroys the
        // context, which waits for it, before the buffers are freed) and is not touched
        // meanwhile: `next` hands out the other buffer and waits before using this one.
        let ret = unsafe {
            libc::syscall(libc::SYS_io_submit, ctx, 1 as libc::c_long, list.as_mut_ptr())
        };
        self.in_flight = ret == 1;
    }

    /// Waits for the read in flight; its length.
    fn wait(&mut self) -> Result<usize> {
        let Some(ctx) = self.ctx else { return Err(Errno::EINVAL) };
        let mut event = [IoEvent::default()];
        aio_events(ctx, 1, &mut event)?;
        match event[0].res {
            res if res < 0 => Err(Errno(-res as i32)),
            res => Ok(res as usize),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx {
            // The read in flight is cancelled or waited for; the buffers are freed after.
            aio_destroy(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_in_order_then_a_short_one_then_nothing() {
        let dir =
            std::env::temp_dir().join(std::format!("imprint-readahead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        let data: std::vec::Vec<u8> =
            (0..(5 * 16 * 4096 + 4096u32)).map(|i| (i / 4096 * 7 + i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let p = path.to_str().unwrap();
        let fd = super::super::block::open_file(p, true)
            .or_else(|_| super::super::block::open_file(p, false))
            .unwrap();
        let mut reader = ReadAhead::new(16 * 4096).unwrap();
        let mut got = std::vec::Vec::new();
        let mut sizes = std::vec::Vec::new();
        loop {
            let block = reader.next(&fd).unwrap();
            sizes.push(block.len());
            if block.is_empty() {
                break;
            }
            got.extend_from_slice(block);
            assert!(reader.current() == &data[got.len() - reader.current().len()..got.len()]);
        }
        assert!(got == data);
        assert_eq!(sizes, [65536, 65536, 65536, 65536, 65536, 4096, 0]);
        assert!(reader.next(&fd).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
