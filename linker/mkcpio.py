#!/usr/bin/env python3
"""Writes a reproducible cpio (newc) archive for the kernel's initramfs, to stdout.

linker/ holds what turns compiled code into the boot artifact: the link arguments of
the init and this archive writer. We write the cpio ourselves instead of `find | cpio`
so that the bytes depend only on the inputs' contents: fixed owners (0:0), mtimes (0),
inode numbers (in order) and entry order (as listed), and device nodes without root.

Spec lines on stdin, in the syntax of the kernel's usr/gen_init_cpio:
    dir  <name> <mode>
    nod  <name> <mode> c|b <major> <minor>
    file <name> <source> <mode>
"""
import sys


def header(out, ino, mode, size, name, rmajor=0, rminor=0):
    name_bytes = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, rmajor, rminor, len(name_bytes), 0]
    out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
    out.write(name_bytes)
    pad(out, 110 + len(name_bytes))


def pad(out, length):
    out.write(b"\0" * (-length % 4))


def main():
    out = sys.stdout.buffer
    ino = 0
    for lineno, line in enumerate(sys.stdin, 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        ino += 1
        kind, name = words[0], words[1].lstrip("/")
        if kind == "dir":
            header(out, ino, 0o040000 | int(words[2], 8), 0, name)
        elif kind == "nod":
            typ = {"c": 0o020000, "b": 0o060000}[words[3]]
            header(out, ino, typ | int(words[2], 8), 0, name, int(words[4]), int(words[5]))
        elif kind == "file":
            with open(words[2], "rb") as f:
                data = f.read()
            header(out, ino, 0o100000 | int(words[3], 8), len(data), name)
            out.write(data)
            pad(out, len(data))
        else:
            sys.exit(f"mkcpio: line {lineno}: unknown entry {kind!r}")
    header(out, 0, 0, 0, "TRAILER!!!")


if __name__ == "__main__":
    main()
