#!/usr/bin/env python3
"""Write the seed corpus of tests/fuzz/fuzz-extract.c into tests/fuzz/corpus/extract/.

    tests/fuzz/make-corpus-extract.py

The seeds are the hostile archives of SECURITY.md (../ and absolute names, symlinks and hard
links pointing outside, writes through a symlink, device nodes, setuid files) plus ordinary
and malformed ones, in plain and compressed forms, so that a replay exercises every refusal
path and fuzzing starts from meaningful shapes. Deterministic: same bytes every run.
"""

import gzip
import io
import os
import tarfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "extract")


def tar_bytes(entries, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            kind, name = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "file":
                data = e[2] if len(e) > 2 else b"data\n"
                ti.size = len(data)
                ti.mode = e[3] if len(e) > 3 else 0o644
                t.addfile(ti, io.BytesIO(data))
                continue
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, e[2]
            elif kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, e[2]
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "blk":
                ti.type, ti.devmajor, ti.devminor = tarfile.BLKTYPE, 8, 0
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            t.addfile(ti)
    return buf.getvalue()


SEEDS = {
    "plain": [("dir", "a"), ("file", "a/b.txt"), ("file", "c")],
    "dotdot": [("file", "../escape")],
    "dotdot-deep": [("dir", "a"), ("file", "a/../../escape")],
    "absolute": [("file", "/tmp/cordon-fuzz-absolute-escape")],
    "symlink-out-then-write": [("symlink", "link", ".."), ("file", "link/escape")],
    "symlink-abs-then-write": [("symlink", "link", "/tmp"), ("file", "link/cordon-fuzz-escape")],
    "symlink-dangling": [("symlink", "link", "../../nowhere")],
    "hardlink-out": [("hardlink", "h", "../../etc/passwd")],
    "hardlink-abs": [("hardlink", "h", "/etc/passwd")],
    "hardlink-inside": [("file", "f"), ("hardlink", "h", "f")],
    "devices": [("chr", "null"), ("blk", "sda"), ("fifo", "pipe")],
    "setuid": [("file", "suid", b"#!/bin/sh\n", 0o4755), ("file", "sgid", b"x", 0o2755)],
    "dot-names": [("dir", "./"), ("file", "./x"), ("file", ".//y//z")],
    "long-name": [("file", "n" * 250 + "/" + "m" * 250)],
    "deep": [("file", "/".join(["d"] * 300))],
    "file-then-dir": [("file", "x"), ("dir", "x"), ("file", "x/y")],
    "dir-then-symlink": [("dir", "d"), ("symlink", "d", "/"), ("file", "d/etc-escape")],
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, entries in SEEDS.items():
        data = tar_bytes(entries)
        with open(os.path.join(OUT, name + ".tar"), "wb") as f:
            f.write(data)
    plain = tar_bytes(SEEDS["plain"])
    with open(os.path.join(OUT, "plain.tar.gz"), "wb") as f:
        f.write(gzip.compress(plain, mtime=0))
    with open(os.path.join(OUT, "dotdot.tar.gz"), "wb") as f:
        f.write(gzip.compress(tar_bytes(SEEDS["dotdot"]), mtime=0))
    with open(os.path.join(OUT, "pax-plain.tar"), "wb") as f:
        f.write(tar_bytes(SEEDS["plain"], fmt=tarfile.PAX_FORMAT))
    with open(os.path.join(OUT, "truncated.tar"), "wb") as f:
        f.write(plain[: len(plain) // 3 + 100])
    with open(os.path.join(OUT, "garbage"), "wb") as f:
        f.write(bytes((i * 37 + 11) % 256 for i in range(3000)))
    with open(os.path.join(OUT, "empty"), "wb") as f:
        pass


if __name__ == "__main__":
    main()
