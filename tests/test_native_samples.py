"""Only the faces change: FFV1 outputs keep the source's own samples outside the paste masks' support,
10-bit faces are composited at 10 bits, ``--frames-dir`` writes 16-bit PNG for deep sources, and 16-bit
photos (colour and greyscale) keep 16 bits inside the faces.

The fixtures are written and read back with PyAV directly (planes through their buffers), and the
references (support, YCbCr conversion, chroma block means) are computed here in float64, apart from the
code. The paste fields (the warped masks and syntheses) are recorded from the run with a spy.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace
from PIL import Image

from tests.face_clips import face_frame, face_patch, write_png16_grey_alpha
from vidinvert import Editor, EditRequest
from vidinvert.cli.app import main
from vidinvert.pipeline import composite
from vidinvert.pipeline import photo as photo_job

KR_KB = {"bt709": (0.2126, 0.0722)}


# ------------------------------------------------------------------------------------------ fixtures
def _plane_arrays(frame: av.VideoFrame, deep: bool) -> list[np.ndarray]:
    out = []
    for p in frame.planes:
        raw = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width * (2 if deep else 1)]
        out.append(raw.copy().view("<u2").astype(np.int64) if deep else raw.astype(np.int64))
    return out


def make_native_clip(path: Path, pix_fmt: str, n_frames: int = 3) -> Path:
    """A lossless FFV1 clip of the astronaut face in ``pix_fmt`` (BT.709, limited range). Deep formats get
    a seeded +-3 code-value texture on every plane so their samples are not 8-bit values shifted."""
    deep = "10" in pix_fmt
    rng = np.random.default_rng(5)
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 176, 144, pix_fmt
        s.codec_context.colorspace, s.codec_context.color_range = 1, 1
        for i in range(n_frames):
            f = av.VideoFrame.from_ndarray(face_frame(i), format="rgb24").reformat(
                format=pix_fmt, dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
            if deep:
                for p in f.planes:
                    buf = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width * 2]
                    vals = buf.copy().view("<u2").astype(np.int64)
                    vals = np.clip(vals + rng.integers(-3, 4, vals.shape), 0, 1023).astype("<u2")
                    buf[:] = vals.view(np.uint8)
            f.pts, f.colorspace, f.color_range = i, 1, 1
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def decoded_planes(path: Path) -> tuple[str, list[list[np.ndarray]]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    fmt = frames[0].format.name
    return fmt, [_plane_arrays(f, "10" in fmt) for f in frames]


@pytest.fixture
def spy_fields(monkeypatch):
    """Records every frame's paste fields: ``{frame index: [(box, weight [h,w], value [h,w,3])]}``."""
    seen: dict[int, list] = {}
    orig = composite.Compositor.fields

    def fields(chunk, sel, *a, **k):
        out = orig(chunk, sel, *a, **k)
        for p, flds in out.items():
            seen[chunk.frames[p].index] = [(f.box, f.weight.double().cpu().numpy(),
                                            f.value.double().cpu().permute(1, 2, 0).numpy()) for f in flds]
        return out

    monkeypatch.setattr(composite.Compositor, "fields", staticmethod(fields))
    return seen


def _models(tw):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu",
            "--no-identity"]


# ------------------------------------------------------------------------------------------ references
def _luma_support(fields, hw) -> np.ndarray:
    sup = np.zeros(hw, bool)
    for (x0, y0, x1, y1), w, _ in fields:
        sup[y0:y1, x0:x1] |= w > 0
    return sup


def _grown_block_support(sup: np.ndarray, sx: int, sy: int) -> np.ndarray:
    """Chroma samples whose block touches ``sup``, grown by one chroma block each way."""
    h, w = sup.shape
    blocks = np.zeros((-(-h // sy), -(-w // sx)), bool)
    for y, x in zip(*np.nonzero(sup)):
        blocks[y // sy, x // sx] = True
    grown = blocks.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            grown |= np.roll(np.roll(blocks, dy, 0), dx, 1)
    return grown


def _reference_10bit(src: list[np.ndarray], fields, sub: tuple[int, int]) -> list[np.ndarray]:
    """Source samples plus the fields' RGB change turned into BT.709 limited-range 10-bit YCbCr (float64):
    luma per sample, chroma the mean change over each block."""
    kr, kb = KR_KB["bt709"]
    kg = 1 - kr - kb
    h, w = src[0].shape
    d = np.zeros((h, w, 3))
    for (x0, y0, x1, y1), wt, val in fields:  # one face: the fields do not overlap
        d[y0:y1, x0:x1] += wt[..., None] * val / 2
    m = np.array([[kr, kg, kb], [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                  [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]])
    ycc = np.einsum("ij,hwj->hwi", m, d) * np.array([219 * 4, 224 * 4, 224 * 4])
    sx, sy = sub
    out = [src[0] + ycc[..., 0]]
    for c in (1, 2):
        ch = src[c].astype(np.float64).copy()
        for by in range(ch.shape[0]):
            for bx in range(ch.shape[1]):
                ch[by, bx] += ycc[by * sy : (by + 1) * sy, bx * sx : (bx + 1) * sx, c].mean()
        out.append(ch)
    return [np.clip(o, 0, 1023) for o in out]


def _rgb16_reference(planes: list[np.ndarray], sub) -> np.ndarray:
    """BT.709 limited 10-bit planes -> RGB in 16 bits, chroma by sample replication (float64)."""
    kr, kb = KR_KB["bt709"]
    sx, sy = sub
    y = (planes[0] - 64) / 876
    cb = (np.repeat(np.repeat(planes[1], sy, 0), sx, 1) - 512) / 896
    cr = (np.repeat(np.repeat(planes[2], sy, 0), sx, 1) - 512) / 896
    r, b = y + 2 * (1 - kr) * cr, y + 2 * (1 - kb) * cb
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.stack([r, g, b], -1), 0, 1) * 65535


# ------------------------------------------------------------------------------------------ tests
SUBS = {"yuv420p": (2, 2), "yuv422p": (2, 1), "yuv420p10le": (2, 2), "yuv444p10le": (1, 1)}


@pytest.mark.parametrize("pix_fmt", list(SUBS))
def test_ffv1_keeps_every_sample_outside_the_faces(tmp_path, tiny_weights, direction, spy_fields, pix_fmt):
    src_path = make_native_clip(tmp_path / f"src.{pix_fmt}.mkv", pix_fmt)
    out, frames_dir = tmp_path / "out.mkv", tmp_path / "frames"
    extra = ["--frames-dir", str(frames_dir)] if pix_fmt == "yuv420p10le" else []
    assert main(["edit", str(src_path), "--direction", str(direction), "--strength", "3", "--paste", "delta",
                 "-o", str(out), "--codec", "ffv1", *extra, *_models(tiny_weights)]) == 0
    src_fmt, src = decoded_planes(src_path)
    out_fmt, got = decoded_planes(out)
    assert out_fmt == src_fmt == pix_fmt and len(got) == len(src)
    sx, sy = SUBS[pix_fmt]
    changed_any = 0
    for i, (a, b) in enumerate(zip(src, got)):
        sup = _luma_support(spy_fields.get(i, []), a[0].shape)
        supports = [sup] + [_grown_block_support(sup, sx, sy)] * 2
        for k in range(3):
            diff = a[k] != b[k]
            assert not (diff & ~supports[k]).any(), (i, k)  # outside the (grown) support: the source's sample
            assert diff.sum() <= supports[k].sum()
            changed_any += int(diff.sum())
        if pix_fmt == "yuv420p10le":
            ref = _reference_10bit(a, spy_fields[i], (sx, sy))
            for k in range(3):
                inside = supports[k] if k == 0 else _grown_block_support(sup, sx, sy)
                assert np.abs(b[k] - ref[k])[inside].max() <= 1.0, (i, k)
            png = cv2.imread(str(frames_dir / "smile" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED)
            assert png.dtype == np.uint16
            assert np.abs(png[..., ::-1] - _rgb16_reference(b, (sx, sy))).max() <= 1.0
    assert len(spy_fields) == len(src) and changed_any > 0  # every frame has its face; the edit shows


def test_strength_zero_delta_keeps_a_10_bit_clip_exactly(tmp_path, tiny_weights, direction):
    src_path = make_native_clip(tmp_path / "src.mkv", "yuv420p10le", n_frames=2)
    out = tmp_path / "out.mkv"
    assert main(["edit", str(src_path), "--direction", str(direction), "--strength", "0", "--paste", "delta",
                 "-o", str(out), "--codec", "ffv1", *_models(tiny_weights)]) == 0
    _, src = decoded_planes(src_path)
    fmt, got = decoded_planes(out)
    assert fmt == "yuv420p10le"
    assert all(np.array_equal(a, b) for fa, fb in zip(src, got) for a, b in zip(fa, fb))


@pytest.fixture
def photo_fields(monkeypatch):
    """Records the photo job's paste fields: ``[(box, weight [h,w], value [h,w,3])]`` (float64)."""
    seen: list = []
    orig = photo_job.depth_fields

    def spy(*a, **k):
        out = orig(*a, **k)
        seen.extend((f.box, f.weight.double().cpu().numpy(), f.value.double().cpu().permute(1, 2, 0).numpy())
                    for f in out)
        return out

    monkeypatch.setattr(photo_job, "depth_fields", spy)
    return seen


def _face16(grey: bool) -> np.ndarray:
    """The astronaut's face on a flat ground in 16 bits with a seeded +-100 texture (so the samples are
    not 8-bit values scaled): uint16 ``[200,200,3]`` RGB, or ``[200,200]`` (Rec. 601 luma) for ``grey``."""
    rng = np.random.default_rng(3)
    img = np.full((200, 200, 3), 120, np.uint8)
    img[10:190, 10:190] = face_patch(180)
    base = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) if grey else img.astype(np.float64)
    return np.clip(np.rint(base * 257) + rng.integers(-100, 101, base.shape), 0, 65535).astype(np.uint16)


def test_16_bit_photo_faces_are_composited_at_16_bits(tmp_path, tiny_weights, direction, photo_fields):
    high = _face16(grey=False)
    src = tmp_path / "face16.png"
    cv2.imwrite(str(src), high[..., ::-1])
    out = tmp_path / "out.png"
    assert main(["edit", str(src), "--direction", str(direction), "--strength", "3", "--paste", "delta",
                 "-o", str(out), *_models(tiny_weights)]) == 0
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.float64)
    assert len(photo_fields) == 1
    (x0, y0, x1, y1), w, val = photo_fields[0]
    ref = high.astype(np.float64)
    ref[y0:y1, x0:x1] += 65535 * w[..., None] * val / 2
    ref = np.clip(ref, 0, 65535)
    sup = _luma_support(photo_fields, high.shape[:2])
    assert np.array_equal(got[~sup], high[~sup])  # outside the faces: the source's 16-bit samples
    assert np.abs(got - ref)[sup].max() <= 1.0
    change = (got - high)[sup]
    assert (change % 257 != 0).any()  # not an 8-bit change moved onto 16 bits


@pytest.mark.parametrize("kind", ["png", "png+alpha", "tif"])
def test_16_bit_grey_photo_faces_are_composited_at_16_bits(tmp_path, tiny_weights, direction, photo_fields, kind):
    high = _face16(grey=True)
    alpha = np.random.default_rng(6).integers(30000, 65536, high.shape, dtype=np.uint16)
    suffix = ".tif" if kind == "tif" else ".png"
    src = tmp_path / f"grey16{suffix}"
    if kind == "png":
        cv2.imwrite(str(src), high)
    elif kind == "png+alpha":
        write_png16_grey_alpha(src, np.dstack([high, alpha]))
    else:
        Image.fromarray(high).save(src)  # I;16 TIFF
    out = tmp_path / f"out{suffix}"
    assert main(["edit", str(src), "--direction", str(direction), "--strength", "3", "--paste", "delta",
                 "-o", str(out), *_models(tiny_weights)]) == 0
    if kind == "png+alpha":  # OpenCV decodes grey+alpha as BGRA, the grey in B, G and R
        bgra = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(bgra[..., 3], alpha) and (bgra[..., 0] == bgra[..., 2]).all()
        written, got = bgra[..., [0, 3]], bgra[..., 0].astype(np.float64)
    else:
        with Image.open(out) as im:
            assert im.mode.startswith("I;16")
            written = np.asarray(im)
        got = written.astype(np.float64)
    assert got.shape == high.shape
    assert len(photo_fields) == 1
    (x0, y0, x1, y1), w, val = photo_fields[0]
    ref = high.astype(np.float64)  # the grey source as RGB plus the change, clipped, back to Rec. 601 luma
    rgb = np.clip(ref[y0:y1, x0:x1, None] / 65535 + w[..., None] * val / 2, 0, 1)
    ref[y0:y1, x0:x1] = 65535 * (rgb @ np.array([0.299, 0.587, 0.114]))
    sup = _luma_support(photo_fields, high.shape)
    assert sup.sum() > 1000
    assert np.array_equal(got[~sup], high[~sup])  # outside the face: the source's 16-bit samples
    assert np.abs(got - ref)[sup].max() <= 1.0
    change = (got - high)[sup]
    assert np.abs(change).max() > 257 and (change % 257 != 0).any()  # not an 8-bit change moved onto 16 bits
    models = dict(encoder=str(tiny_weights["encoder"]), generator=str(tiny_weights["generator"]), device="cpu")
    editor = Editor.from_request(EditRequest(inputs=(), **models))
    shown = editor.render(editor.open(src), 0, EditRequest(inputs=(), direction=(direction,), strength="3", **models))
    (samples,) = shown.samples.values()
    assert samples.dtype == np.uint16 and np.array_equal(samples, written)  # the session holds what the job wrote


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                                     "yuv420p12le", "gbrp10le"])
def test_the_8_bit_copy_of_a_face_box_equals_the_whole_frame_conversion(pix_fmt):
    """The composite's 8-bit RGB converts only the faces' boxes: it must equal converting the whole frame
    (what a reader of a lossless output gets)."""
    from vidinvert.video.colour import ColourSpec, RGBConverter
    from vidinvert.video.planes import Planes

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (270, 481, 3), dtype=np.uint8) if "444" in pix_fmt or "gbr" in pix_fmt else \
        rng.integers(0, 256, (270, 480, 3), dtype=np.uint8)
    f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
        format=pix_fmt, dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
    planes = Planes.from_frame(f, ColourSpec("bt709", "limited"))
    whole = RGBConverter(planes.spec)(planes.to_frame())
    comp = composite.Compositor()
    for box in [(0, 0, 64, 50), (200, 100, 330, 222), (400, 200, img.shape[1], 270), (17, 33, 95, 101)]:
        out = np.zeros_like(whole)
        comp.rgb8_into(out, planes, box)
        x0, y0, x1, y1 = box
        assert np.array_equal(out[y0:y1, x0:x1], whole[y0:y1, x0:x1]), box
