#!/usr/bin/env python3
"""Drops the section headers of a static ELF64 executable, in place, and the bytes only
they pointed at (.comment, .shstrtab): about 1.1 KB of the init. The kernel loads a
program by its program headers alone; section headers are for linkers and debuggers
(build/audit/init.unstripped keeps everything for those)."""
import struct
import sys

path = sys.argv[1]
with open(path, "rb") as f:
    elf = bytearray(f.read())
if elf[:6] != b"\x7fELF\x02\x01":
    sys.exit(f"strip-sections: {path}: not a little-endian ELF64 file")
phoff, shoff = struct.unpack_from("<QQ", elf, 0x20)
phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
end = phoff + phentsize * phnum
for i in range(phnum):
    offset, filesz = struct.unpack_from("<Q16xQ", elf, phoff + i * phentsize + 8)
    end = max(end, offset + filesz)
if shoff and shoff < end:
    sys.exit(f"strip-sections: {path}: section headers inside a segment")
struct.pack_into("<Q", elf, 0x28, 0)  # e_shoff
struct.pack_into("<HHH", elf, 0x3A, 0, 0, 0)  # e_shentsize, e_shnum, e_shstrndx
with open(path, "wb") as f:
    f.write(elf[:end])
