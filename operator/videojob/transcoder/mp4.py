"""The MP4/QuickTime index moved to the front of a file: what FFmpeg's `-movflags +faststart` does, done by us.

FFmpeg writes an MP4 as `ftyp`, `free`, `mdat` (the samples), then `moov` (the index) at the end. With
`+faststart` it then rewrites the whole file to put `moov` first, so a player can start before the file has
arrived; that second pass reads and writes every byte after encoding and keeps anything from uploading while
FFmpeg runs. Instead the runner lets FFmpeg write `moov` at the end and builds the object as

    ftyp + moov' + (everything between ftyp and moov) + (anything after moov)

where `moov'` is `moov` with every chunk offset (`stco`, `co64`) shifted by its own size. The samples are the same
bytes at a fixed shift, so they upload while FFmpeg still writes them, and the object is byte for byte the file
`+faststart` makes (tests/integration/test_streaming.py compares them). Like FFmpeg, a track whose shifted offsets
no longer fit in 32 bits gets a `co64` box instead of its `stco`, which makes `moov` larger: repeated until stable.

Pure: `relocated_moov` and `faststart_layout` take bytes and box positions; `top_level_boxes` reads box headers
through a `read(offset, n)` callable.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

# Boxes whose payload is boxes, on the way from moov down to the chunk offset tables (and those beside them
# that FFmpeg writes, so that the walk does not misread their payload).
CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex", b"udta"})
UINT32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class Box:
    kind: bytes
    offset: int
    size: int  # header included

    @property
    def end(self) -> int:
        return self.offset + self.size


class NotMP4(ValueError):
    """The bytes are not a well-formed sequence of boxes (or lack ftyp/moov/mdat)."""


def top_level_boxes(read: Callable[[int, int], bytes], size: int) -> list[Box]:
    """The top-level boxes of a file of `size` bytes, reading only their headers."""
    boxes: list[Box] = []
    offset = 0
    while offset < size:
        header = read(offset, 16)
        if len(header) < 8:
            raise NotMP4(f"a box header at byte {offset} is cut short")
        length, kind = struct.unpack(">I4s", header[:8])
        if length == 1:
            if len(header) < 16:
                raise NotMP4(f"a 64-bit box header at byte {offset} is cut short")
            length = struct.unpack(">Q", header[8:16])[0]
        elif length == 0:  # "to the end of the file"
            length = size - offset
        if length < 8 or offset + length > size:
            raise NotMP4(f"box {kind!r} at byte {offset} has an impossible size {length}")
        boxes.append(Box(kind, offset, length))
        offset += length
    return boxes


def _children(data: bytearray | bytes, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """(kind, offset, header size, size) of the boxes in data[start:end]."""
    found = []
    offset = start
    while offset + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if length == 1:
            length, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif length == 0:
            length = end - offset
        if length < header or offset + length > end:
            raise NotMP4(f"box {kind!r} inside moov has an impossible size {length}")
        found.append((bytes(kind), offset, header, length))
        offset += length
    return found


def _rebuild(data: bytes, start: int, end: int, shift: int) -> tuple[bytes, bool]:
    """The boxes in data[start:end] with chunk offsets shifted; True if an stco had to become a co64."""
    out = bytearray()
    widened = False
    for kind, offset, header, length in _children(data, start, end):
        if kind in CONTAINERS:
            inner, grew = _rebuild(data, offset + header, offset + length, shift)
            widened |= grew
            out += _box(kind, inner)
        elif kind == b"stco":
            version_flags, count = struct.unpack_from(">4sI", data, offset + header)
            offsets = struct.unpack_from(f">{count}I", data, offset + header + 8)
            shifted = [value + shift for value in offsets]
            if shifted and shifted[-1] > UINT32_MAX:
                widened = True
                out += _box(b"co64", version_flags + struct.pack(f">I{count}Q", count, *shifted))
            else:
                out += _box(b"stco", version_flags + struct.pack(f">I{count}I", count, *shifted))
        elif kind == b"co64":
            version_flags, count = struct.unpack_from(">4sI", data, offset + header)
            offsets = struct.unpack_from(f">{count}Q", data, offset + header + 8)
            out += _box(b"co64", version_flags + struct.pack(f">I{count}Q", count, *(v + shift for v in offsets)))
        else:
            out += data[offset : offset + length]
    return bytes(out), widened


def _box(kind: bytes, payload: bytes) -> bytes:
    size = 8 + len(payload)
    if size > UINT32_MAX:
        return struct.pack(">I4sQ", 1, kind, size + 8) + payload
    return struct.pack(">I4s", size, kind) + payload


def relocated_moov(moov: bytes) -> bytes:
    """`moov` (the whole box) as it must read once it sits right before the data it indexes: every chunk offset
    grows by the size of the new `moov` itself (which grows when an `stco` must become a `co64`)."""
    kind = moov[4:8]
    if kind != b"moov":
        raise NotMP4(f"expected a moov box, found {kind!r}")
    shift = len(moov)
    for _ in range(8):
        inner, _ = _rebuild(moov, 8, len(moov), shift)
        moved = _box(b"moov", inner)
        if len(moved) == shift:
            return moved
        shift = len(moved)  # a co64 made it larger: shift by the new size
    raise NotMP4("the index does not settle on a size")


@dataclass(frozen=True)
class FaststartLayout:
    """The object: ftyp bytes + moov' bytes (`prefix`), then the file's `body` range, then its `tail` range."""

    prefix: bytes
    body: tuple[int, int]
    tail: tuple[int, int] | None


def faststart_layout(boxes: list[Box], read: Callable[[int, int], bytes]) -> FaststartLayout:
    """Where each byte of the faststart object comes from, for a file whose top-level `boxes` are given.

    A file whose moov already comes before its mdat is left as it is (prefix = ftyp, body = the rest)."""
    kinds = [b.kind for b in boxes]
    if not boxes or boxes[0].kind != b"ftyp" or b"moov" not in kinds or b"mdat" not in kinds:
        raise NotMP4(f"not an MP4 written by FFmpeg: top-level boxes {[k.decode('latin-1') for k in kinds]}")
    ftyp = boxes[0]
    moov = boxes[kinds.index(b"moov")]
    mdat = boxes[kinds.index(b"mdat")]
    if moov.offset < mdat.offset:
        return FaststartLayout(read(0, ftyp.size), (ftyp.end, boxes[-1].end), None)
    prefix = read(0, ftyp.size) + relocated_moov(read(moov.offset, moov.size))
    tail = (moov.end, boxes[-1].end) if moov.end < boxes[-1].end else None
    return FaststartLayout(prefix, (ftyp.end, moov.offset), tail)
