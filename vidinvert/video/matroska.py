"""The display size of a Matroska (or WebM) video track, written into a finished file in place.

FFmpeg's Matroska muxer writes a track's ``DisplayWidth``/``DisplayHeight`` from the *stream's*
sample aspect ratio, which PyAV cannot set (only the codec's, which MP4/MOV store as ``pasp``).
:func:`set_display_size` therefore edits the file once the muxer has closed it: it rewrites the
video track's ``Video`` element with the display size (dropping ``DisplayUnit``, so it counts in
pixels) and takes the extra bytes from the ``Void`` element FFmpeg reserves after the
``SeekHead``. Nothing after the ``Tracks`` element moves (clusters, cues, chapters, tags); the
elements between the ``Void`` and the end of ``Tracks`` move earlier by the same amount, and the
``SeekHead`` entries that point at them (and the ``CRC-32`` elements of every rewritten element)
are updated. When the file does not have that layout the file is left as it was and False is
returned (the codec's own aspect, e.g. H.264's VUI, still reaches players).

EBML basics used here: an element is an ID (1-4 bytes, marker bits kept), a size (a variable
length integer whose leading 1-bit gives its length) and the payload; unsigned integers are
big-endian of any length (leading zero bytes allowed).
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

log = logging.getLogger(__name__)

SEGMENT, SEEKHEAD, SEEK, SEEK_POSITION = 0x18538067, 0x114D9B74, 0x4DBB, 0x53AC
VOID, CRC32, TRACKS, TRACK_ENTRY, TRACK_TYPE, VIDEO = 0xEC, 0xBF, 0x1654AE6B, 0xAE, 0x83, 0xE0
DISPLAY_WIDTH, DISPLAY_HEIGHT, DISPLAY_UNIT, CLUSTER = 0x54B0, 0x54BA, 0x54B2, 0x1F43B675
_HEAD_BYTES = 1 << 20  # the header elements of the files written here sit well within this


class _Layout(Exception):
    """The file is not laid out as expected (nothing is written)."""


def _vint(buf: bytes, i: int, keep_marker: bool) -> tuple[int, int]:
    if i >= len(buf) or buf[i] == 0:
        raise _Layout("bad variable-length integer")
    first, n, mask = buf[i], 1, 0x80
    while not first & mask:
        n, mask = n + 1, mask >> 1
    value = first if keep_marker else first & (mask - 1)
    for k in range(1, n):
        value = (value << 8) | buf[i + k]
    return value, n


def _elements(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """Children in ``buf[start:end]`` as (id, offset, header length, payload size)."""
    out, i = [], start
    while i < end:
        eid, n_id = _vint(buf, i, True)
        size, n_size = _vint(buf, i + n_id, False)
        if size == (1 << (7 * n_size)) - 1:
            raise _Layout("element of unknown size")
        out.append((eid, i, n_id + n_size, size))
        i += n_id + n_size + size
    if i != end:
        raise _Layout("children overrun their parent")
    return out


def _size_field(value: int, length: int) -> bytes:
    if value >= (1 << (7 * length)) - 1:
        raise _Layout("size does not fit its field")
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def _id_bytes(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def _uint_element(eid: int, value: int) -> bytes:
    payload = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return _id_bytes(eid) + _size_field(len(payload), 1) + payload


def _with_crc(payload_children: bytes, had_crc: bool) -> bytes:
    """A master's payload: a fresh CRC-32 element (when it had one) before the children."""
    if not had_crc:
        return payload_children
    return bytes([CRC32, 0x84]) + zlib.crc32(payload_children).to_bytes(4, "little") + payload_children


def _rebuild(buf: bytes, elem: tuple[int, int, int, int], children: bytes, had_crc: bool) -> bytes:
    """Element ``elem`` of ``buf`` with new children, its size field as long as before."""
    eid, off, hdr, _ = elem
    n_id = len(_id_bytes(eid))
    payload = _with_crc(children, had_crc)
    return buf[off : off + n_id] + _size_field(len(payload), hdr - n_id) + payload


def _children_bytes(buf: bytes, kids: list[tuple[int, int, int, int]], replace: dict[int, bytes]) -> tuple[bytes, bool]:
    """The children (CRC-32 left out) with some replaced (by offset); and whether there was a CRC."""
    had_crc = any(k[0] == CRC32 for k in kids)
    parts = [replace.get(off, buf[off : off + hdr + size]) for eid, off, hdr, size in kids if eid != CRC32]
    return b"".join(parts), had_crc


def _void(length: int) -> bytes:
    if length < 2:
        raise _Layout("no room left in the reserved space")
    n = 8 if length >= 9 else 1
    return bytes([VOID]) + _size_field(length - 1 - n, n) + bytes(length - 1 - n)


def _video_track(buf: bytes, tracks) -> tuple[tuple, list, tuple, list]:
    """The first video TrackEntry of ``tracks`` and its Video element (each with its children)."""
    for entry in _elements(buf, tracks[1] + tracks[2], tracks[1] + tracks[2] + tracks[3]):
        if entry[0] != TRACK_ENTRY:
            continue
        kids = _elements(buf, entry[1] + entry[2], entry[1] + entry[2] + entry[3])
        types = [int.from_bytes(buf[o + h : o + h + s], "big") for e, o, h, s in kids if e == TRACK_TYPE]
        video = [k for k in kids if k[0] == VIDEO]
        if types == [1] and video:
            v = video[0]
            return entry, kids, v, _elements(buf, v[1] + v[2], v[1] + v[2] + v[3])
    raise _Layout("no video track")


def _patched_head(buf: bytes, width: int, height: int) -> tuple[int, bytes]:
    """(offset, new bytes) replacing ``buf[offset : offset + len(new)]``: the SeekHead .. Tracks span."""
    _, n_id = _vint(buf, 0, True)
    size, n_size = _vint(buf, n_id, False)
    seg = n_id + n_size + size  # the Segment follows the EBML header
    seg_id, n_id = _vint(buf, seg, True)
    if seg_id != SEGMENT:
        raise _Layout("no Segment")
    _, n_size = _vint(buf, seg + n_id, False)
    data0 = seg + n_id + n_size  # SeekPositions count from here
    top, i = [], data0
    while i < len(buf):
        eid, n1 = _vint(buf, i, True)
        if eid == CLUSTER:
            break
        sz, n2 = _vint(buf, i + n1, False)
        top.append((eid, i, n1 + n2, sz))
        i += n1 + n2 + sz
        if eid == TRACKS:
            break
    ids = [e[0] for e in top]
    if len(top) < 3 or ids[0] != SEEKHEAD or ids[1] != VOID or TRACKS not in ids or top[-1][0] != TRACKS:
        raise _Layout("not the SeekHead, Void, ..., Tracks layout")
    seekhead, void, tracks = top[0], top[1], top[-1]
    tracks_end = tracks[1] + tracks[2] + tracks[3]
    if tracks_end > len(buf):
        raise _Layout("Tracks beyond the bytes read")
    entry, entry_kids, video, video_kids = _video_track(buf, tracks)
    kept = b"".join(buf[o : o + h + s] for e, o, h, s in video_kids if e not in (DISPLAY_WIDTH, DISPLAY_HEIGHT, DISPLAY_UNIT))
    new_video = _rebuild(buf, video, kept + _uint_element(DISPLAY_WIDTH, width) + _uint_element(DISPLAY_HEIGHT, height),
                         False)
    children, crc = _children_bytes(buf, entry_kids, {video[1]: new_video})
    new_entry = _rebuild(buf, entry, children, crc)
    children, crc = _children_bytes(buf, _elements(buf, tracks[1] + tracks[2], tracks_end), {entry[1]: new_entry})
    new_tracks = _rebuild(buf, tracks, children, crc)
    delta = len(new_tracks) - (tracks[2] + tracks[3])
    void_end = void[1] + void[2] + void[3]
    new_void = _void(void[2] + void[3] - delta)
    # SeekHead entries of the elements that move (between the Void and the end of Tracks) move with them
    seek_kids = _elements(buf, seekhead[1] + seekhead[2], seekhead[1] + seekhead[2] + seekhead[3])
    replace = {}
    for s in seek_kids:
        if s[0] != SEEK:
            continue
        for e, o, h, sz in _elements(buf, s[1] + s[2], s[1] + s[2] + s[3]):
            pos = int.from_bytes(buf[o + h : o + h + sz], "big")
            if e == SEEK_POSITION and void_end <= data0 + pos < tracks_end:
                if pos - delta < 0:
                    raise _Layout("bad SeekPosition")
                replace[o] = buf[o : o + h] + (pos - delta).to_bytes(sz, "big")
        if replace:
            inner, _ = _children_bytes(buf, _elements(buf, s[1] + s[2], s[1] + s[2] + s[3]), replace)
            replace[s[1]] = buf[s[1] : s[1] + s[2]] + inner
    children, crc = _children_bytes(buf, seek_kids, replace)
    new_seekhead = _rebuild(buf, seekhead, children, crc)
    if len(new_seekhead) != seekhead[2] + seekhead[3]:
        raise _Layout("SeekHead changed size")
    head = new_seekhead + new_void + buf[void_end : tracks[1]] + new_tracks
    if len(head) != tracks_end - seekhead[1]:
        raise _Layout("rewritten span changed size")  # pragma: no cover - guarded by the steps above
    return seekhead[1], head


def set_display_size(path: str | Path, width: int, height: int) -> bool:
    """Write ``width`` x ``height`` as the display size of the first video track of the Matroska /
    WebM file ``path`` (in place; see the module doc). Returns whether the file was changed."""
    path = Path(path)
    with open(path, "r+b") as f:
        buf = f.read(_HEAD_BYTES)
        try:
            offset, head = _patched_head(buf, int(width), int(height))
        except (_Layout, IndexError) as exc:
            log.info("%s: display size not written into the Matroska header (%s)", path.name, exc)
            return False
        f.seek(offset)
        f.write(head)
    return True
