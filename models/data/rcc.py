"""Reader for Qt binary resource bundles (.rcc files, as written by `rcc -binary`).

Layout (Qt's rcc.cpp / qresource.cpp; all integers big endian):
  header : "qres", u32 version (1, 2 or 3), u32 tree offset, u32 data offset, u32 names offset,
           and for version >= 3 a u32 of overall flags.
  tree   : fixed-size nodes, node 0 is the root directory.  Each node is
             u32 name offset, u16 flags,
             directory (flags & 2): u32 child count, u32 index of the first child node,
             file              : u16 territory, u16 language, u32 data offset,
           and for version >= 2 a trailing u64 modification time (14 or 22 bytes a node).
  names  : u16 length (in UTF-16 units), u32 hash, then the name in UTF-16BE.
  data   : u32 size, then the bytes.  flags & 1: zlib (qCompress: u32 uncompressed size, then a
           zlib stream); flags & 4: a zstd frame; otherwise stored.

Usage: python3 rcc.py bundle.rcc [outdir]   (lists the files, or extracts them to outdir)
"""

import os
import struct
import sys
import zlib

FLAG_ZLIB = 1
FLAG_DIR = 2
FLAG_ZSTD = 4


class RccError(ValueError):
    pass


def _zstd_decompress(raw):
    try:
        import zstandard
    except ImportError as e:  # python3-zstandard (Debian) provides it
        raise RccError("zstd-compressed entry: install python3-zstandard") from e
    return zstandard.ZstdDecompressor().decompressobj().decompress(raw)


class Rcc:
    def __init__(self, data):
        if data[:4] != b"qres":
            raise RccError("not a Qt resource bundle (no 'qres' magic)")
        self.data = data
        self.version, self.tree, self.payload, self.names = struct.unpack(">IIII", data[4:20])
        if self.version not in (1, 2, 3):
            raise RccError(f"unsupported rcc version {self.version}")
        self.node_size = 14 if self.version == 1 else 22

    @classmethod
    def open(cls, path):
        with open(path, "rb") as f:
            return cls(f.read())

    def _name(self, off):
        p = self.names + off
        (n,) = struct.unpack(">H", self.data[p:p + 2])
        return self.data[p + 6:p + 6 + 2 * n].decode("utf-16-be")

    def _node(self, index):
        p = self.tree + index * self.node_size
        name_off, flags = struct.unpack(">IH", self.data[p:p + 6])
        if flags & FLAG_DIR:
            count, first = struct.unpack(">II", self.data[p + 6:p + 14])
            return name_off, flags, (count, first)
        _terr, _lang, data_off = struct.unpack(">HHI", self.data[p + 6:p + 14])
        return name_off, flags, data_off

    def _read(self, flags, data_off):
        p = self.payload + data_off
        (size,) = struct.unpack(">I", self.data[p:p + 4])
        raw = self.data[p + 4:p + 4 + size]
        if flags & FLAG_ZLIB:
            (expect,) = struct.unpack(">I", raw[:4])
            out = zlib.decompress(raw[4:])
            if len(out) != expect:
                raise RccError(f"zlib entry: {len(out)} bytes, header says {expect}")
            return out
        if flags & FLAG_ZSTD:
            return _zstd_decompress(raw)
        return raw

    def files(self):
        """Yields (path, flags, data offset) for every file, depth first."""
        stack = [(0, "")]
        while stack:
            index, prefix = stack.pop()
            name_off, flags, info = self._node(index)
            name = "" if index == 0 else self._name(name_off)
            path = f"{prefix}/{name}" if prefix else name
            if flags & FLAG_DIR:
                count, first = info
                for child in reversed(range(first, first + count)):
                    stack.append((child, path))
            else:
                yield path, flags, info

    def read(self, path):
        for p, flags, off in self.files():
            if p == path:
                return self._read(flags, off)
        raise KeyError(path)

    def items(self, want=None):
        """Yields (path, bytes) for every file (or those for which want(path) is true)."""
        for path, flags, off in self.files():
            if want is None or want(path):
                yield path, self._read(flags, off)


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    rcc = Rcc.open(argv[1])
    if len(argv) == 2:
        for path, flags, _ in rcc.files():
            print(f"{flags:3d} {path}")
        return 0
    for path, blob in rcc.items():
        dst = os.path.join(argv[2], path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as f:
            f.write(blob)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
