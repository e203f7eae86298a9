"""videojob.transcoder.mp4: the MP4 index moved to the front, on boxes built by hand.

The byte-for-byte comparison with FFmpeg's own `+faststart` is in tests/integration/test_streaming.py.
"""

from __future__ import annotations

import struct

import pytest

from videojob.transcoder import mp4
from videojob.transcoder.mp4 import NotMP4, faststart_layout, relocated_moov, top_level_boxes


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def stco(offsets: list[int]) -> bytes:
    return box(b"stco", b"\0\0\0\0" + struct.pack(f">I{len(offsets)}I", len(offsets), *offsets))


def co64(offsets: list[int]) -> bytes:
    return box(b"co64", b"\0\0\0\0" + struct.pack(f">I{len(offsets)}Q", len(offsets), *offsets))


def moov(*tables: bytes) -> bytes:
    traks = b"".join(
        box(
            b"trak",
            box(b"tkhd", b"\0" * 84) + box(b"mdia", box(b"minf", box(b"stbl", box(b"stsz", b"\0" * 12) + table))),
        )
        for table in tables
    )
    return box(b"moov", box(b"mvhd", b"\0" * 100) + traks + box(b"udta", box(b"meta", b"\0" * 20)))


def offsets_in(moved: bytes) -> dict[bytes, list[list[int]]]:
    found: dict[bytes, list[list[int]]] = {b"stco": [], b"co64": []}
    for kind in found:
        at = moved.find(kind)
        while at >= 0:
            count = struct.unpack_from(">I", moved, at + 8)[0]
            fmt = "I" if kind == b"stco" else "Q"
            found[kind].append(list(struct.unpack_from(f">{count}{fmt}", moved, at + 12)))
            at = moved.find(kind, at + 1)
    return found


def test_every_chunk_offset_moves_by_the_size_of_the_index() -> None:
    original = moov(stco([40, 1000, 5000]), co64([48, 2000]))
    moved = relocated_moov(original)
    assert len(moved) == len(original)
    assert offsets_in(moved) == {
        b"stco": [[40 + len(original), 1000 + len(original), 5000 + len(original)]],
        b"co64": [[48 + len(original), 2000 + len(original)]],
    }
    assert moved[len(moved) - 28 :] == original[len(original) - 28 :]  # udta/meta untouched


def test_offsets_that_outgrow_32_bits_get_a_co64_and_the_index_grows_to_fit() -> None:
    near = mp4.UINT32_MAX - 100
    original = moov(stco([40, near]), stco([44, 1000]))
    moved = relocated_moov(original)
    assert len(moved) == len(original) + 2 * 4  # two offsets became 8 bytes wide
    found = offsets_in(moved)
    assert found[b"co64"] == [[40 + len(moved), near + len(moved)]]  # shifted by the grown size
    assert found[b"stco"] == [[44 + len(moved), 1000 + len(moved)]]  # the other track still fits
    assert struct.unpack_from(">I", moved, 0)[0] == len(moved)


def test_a_file_is_read_as_its_top_level_boxes() -> None:
    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 10) + b"x" * 10
    data = box(b"ftyp", b"isom") + box(b"free", b"") + large + moov(stco([36]))
    boxes = top_level_boxes(lambda o, n: data[o : o + n], len(data))
    assert [(b.kind, b.offset) for b in boxes] == [(b"ftyp", 0), (b"free", 12), (b"mdat", 20), (b"moov", 46)]
    layout = faststart_layout(boxes, lambda o, n: data[o : o + n])
    moved = relocated_moov(moov(stco([36])))
    assert layout.prefix == box(b"ftyp", b"isom") + moved
    assert layout.body == (12, 46) and layout.tail is None


def test_an_index_already_in_front_stays() -> None:
    data = box(b"ftyp", b"isom") + moov(stco([100])) + box(b"mdat", b"x" * 10)
    layout = faststart_layout(top_level_boxes(lambda o, n: data[o : o + n], len(data)), lambda o, n: data[o : o + n])
    assert layout.prefix + data[layout.body[0] : layout.body[1]] == data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0\0\0\x05ftyp",
        b"\0\0\0\x10ftyp",
        box(b"ftyp", b"") + box(b"mdat", b""),
        box(b"free", b"") + box(b"ftyp", b"") + box(b"mdat", b"") + moov(),
    ],
    ids=["nothing", "a box smaller than its header", "a box past the end", "no index", "ftyp not first"],
)
def test_what_is_not_an_ffmpeg_mp4_is_refused(data: bytes) -> None:
    with pytest.raises(NotMP4):
        faststart_layout(top_level_boxes(lambda o, n: data[o : o + n], len(data)), lambda o, n: data[o : o + n])
