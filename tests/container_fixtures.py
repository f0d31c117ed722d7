"""Clips that carry more than frames, written with PyAV directly (an independent input):

* :func:`make_anamorphic` stores frames whose pixel aspect only the **container** gives (MOV/MP4
  ``pasp`` from ProRes/AV1, whose bitstreams say nothing; Matroska/WebM display size for
  FFV1/VP9, whose bitstreams say nothing either: FFmpeg's muxer cannot be told it through PyAV,
  so the display size is put into the header with :mod:`vidinvert.video.matroska` and read back
  by FFmpeg's demuxer);
* :func:`make_rich` writes H.264 + AAC with two subtitle events (language, title, default +
  forced), chapters, container and stream tags, a start timecode, a cover picture (MP4) or a font
  attachment and a cover (Matroska);
* :func:`make_with_data_stream` writes H.264 with an opaque data stream (MPEG-TS);
* :func:`read_subtitles`, :func:`read_chapters` read them back with plain PyAV.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from tests.video_fixtures import _add_audio_stream, _write_audio, pattern

ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
    b"MarginR, MarginV, Encoding\n"
    b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)
# (start ms, end ms, text) of the subtitle events; the clip lasts 1 s
EVENTS = ((100, 300, "Bonjour"), (450, 800, "Au revoir"))
CHAPTERS = ((0, 400, "Intro"), (400, 1000, "Main"))
TAGS = {"title": "A test clip", "creation_time": "2024-05-01T10:00:00.000000Z", "comment": "made for a test"}
TIMECODE = "01:02:03:04"
FONT = b"not really a font, but bytes to carry" * 8
_AV_CODEC = {"mov": ("prores_ks", "yuv422p10le", {}), "mp4": ("libsvtav1", "yuv420p", {"preset": "12"}),
             "mkv": ("ffv1", "yuv420p", {}), "webm": ("libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"})}


def cover_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.tile(np.arange(16, dtype=np.uint8)[:, None, None] * 15, (1, 16, 3))).save(buf, format="PNG")
    return buf.getvalue()


def _encode_video(c, v, frames, pix_fmt: str) -> None:
    for i, img in enumerate(frames):
        f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").reformat(format=pix_fmt)
        f.pts = i
        for pk in v.encode(f):
            c.mux(pk)
    for pk in v.encode():
        c.mux(pk)


def make_anamorphic(path: str | Path, sar: Fraction = Fraction(128, 117), size=(176, 144), n_frames: int = 4,
                    frames=None) -> Path:
    """``size`` (stored) frames with the pixel aspect ``sar`` in the container only (see the module doc).
    ``frames``: stored uint8 RGB arrays (default: :func:`pattern`)."""
    from vidinvert.video.matroska import set_display_size

    path = Path(path)
    codec, pix_fmt, opts = _AV_CODEC[path.suffix.lstrip(".")]
    w, h = size
    frames = frames if frames is not None else [pattern(i, w, h) for i in range(n_frames)]
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=25)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        v.codec_context.sample_aspect_ratio = sar  # MP4/MOV write it as pasp; Matroska ignores it
        v.codec_context.options = opts
        _encode_video(c, v, frames, pix_fmt)
    if path.suffix in (".mkv", ".webm"):
        assert set_display_size(path, round(w * sar), h)
    return path


@dataclass(frozen=True)
class Rich:
    path: Path
    n_frames: int = 25


def make_rich(path: str | Path, *, subtitle_codec: str | None = None, n_frames: int = 25) -> Rich:
    """1 s of H.264 (25 fps, 64x48) + AAC with subtitles, chapters, tags, a timecode and a cover (MP4/MOV)
    or a font attachment and a cover (Matroska). ``subtitle_codec``: mov_text (MP4/MOV), ass (Matroska)."""
    path = Path(path)
    mkv = path.suffix == ".mkv"
    sub_codec = subtitle_codec or ("ass" if mkv else "mov_text")
    with av.open(str(path), "w") as c:
        c.metadata.update(TAGS)
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.metadata.update({"timecode": TIMECODE, "title": "the picture"})
        a = _add_audio_stream(c, "aac", 48000, 1)
        a.metadata.update({"language": "spa", "title": "Spanish"})
        s = c.add_stream(sub_codec)
        s.metadata.update({"language": "fra", "title": "French"})
        s.disposition = av.stream.Disposition.default | av.stream.Disposition.forced
        s.codec_context.subtitle_header = ASS_HEADER
        s.codec_context.time_base = Fraction(1, 1000)
        if mkv:
            c.add_attachment("font.ttf", "application/x-truetype-font", FONT)
            c.add_attachment("cover.png", "image/png", cover_png())
        elif path.suffix == ".mp4":
            p = c.add_stream("png")
            p.width, p.height, p.pix_fmt = 16, 16, "rgb24"
            p.disposition = av.stream.Disposition.attached_pic
            pk = av.Packet(cover_png())
            pk.stream, pk.pts, pk.dts, pk.time_base, pk.is_keyframe = p, 0, 0, Fraction(1, 90000), True
            c.mux(pk)
        for k, (start, end, text) in enumerate(EVENTS):
            line = f"{k},0,Default,,0,0,0,,{text}".encode()
            pk = s.codec_context.encode_subtitle(av.subtitles.subtitle.SubtitleSet.create(line, 0, end - start, start))
            pk.stream, pk.time_base, pk.pts, pk.dts, pk.duration = s, Fraction(1, 1000), start, start, end - start
            c.mux(pk)
        _encode_video(c, v, [pattern(i, 64, 48) for i in range(n_frames)], "yuv420p")
        _write_audio(c, a, n_frames / 25)
        c.set_chapters([{"id": i + 1, "start": s0, "end": e0, "time_base": Fraction(1, 1000), "metadata": {"title": t}}
                        for i, (s0, e0, t) in enumerate(CHAPTERS)])
    return Rich(path, n_frames)


def make_with_data_stream(path: str | Path, n_frames: int = 5) -> Path:
    """H.264 (25 fps, 64x48) with a data stream of opaque packets (``bin_data``) beside it, one per
    frame; MPEG-TS holds it, MP4 and Matroska do not."""
    path = Path(path)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        d = c.add_data_stream()
        for i in range(n_frames):
            pk = av.Packet(b"sensor %d" % i)
            pk.stream, pk.pts, pk.dts, pk.time_base = d, i * 40, i * 40, Fraction(1, 1000)
            c.mux(pk)
        _encode_video(c, v, [pattern(i, 64, 48) for i in range(n_frames)], "yuv420p")
    return path


def read_subtitles(path) -> list[dict]:
    """Each subtitle stream: codec, language, title, disposition flags and its events
    ``(start s, end s, text)`` (empty events left out)."""
    out = []
    with av.open(str(path)) as c:
        for s in c.streams.subtitles:
            events = []
            for pk in c.demux(s):
                if not pk.size or pk.pts is None:
                    continue
                for r in s.decode(pk):
                    text = bytes(r.ass).split(b",", 8)[-1].decode()
                    start = float(pk.pts * pk.time_base)
                    events.append((round(start, 3), round(start + float(pk.duration * pk.time_base), 3), text))
            md = {k.lower(): v for k, v in s.metadata.items()}
            out.append({"codec": s.codec_context.name, "language": s.language, "title": md.get("title") or md.get("name"),
                        "default": bool(int(s.disposition) & int(av.stream.Disposition.default)),
                        "forced": bool(int(s.disposition) & int(av.stream.Disposition.forced)), "events": events})
    return out


def read_chapters(path) -> list[tuple[float, float, str]]:
    with av.open(str(path)) as c:
        return [(round(float(ch["start"] * ch["time_base"]), 3), round(float(ch["end"] * ch["time_base"]), 3),
                 ch["metadata"].get("title", "")) for ch in c.chapters()]
