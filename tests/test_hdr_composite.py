"""HDR faces composited through R: x' = R⁻¹(R(x) + Δ) on the source's 10-bit samples, against a
per-pixel reference written out here from the standards (BT.2100 YUV, ST 2084, BT.2390 solved by
bisection, BT.2020/BT.709 primaries); and an end-to-end edit at strength 0 that keeps every sample."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch

from tests.hdr_fixtures import make_hdr_clip, make_hdr_face_clip
from vidinvert.cli.app import main
from vidinvert.face.paste import PasteField
from vidinvert.pipeline.composite import composite_field
from vidinvert.video import probe
from vidinvert.video.planes import Planes
from vidinvert.video.rendering_hdr import rendering_for

KR, KB = 0.2627, 0.0593  # BT.2020 NCL


def _pq(nits):  # ST 2084 inverse EOTF
    y = (nits / 10000) ** (2610 / 16384)
    return ((3424 / 4096 + 2413 / 128 * y) / (1 + 2392 / 128 * y)) ** (2523 / 32)


def _pq_nits(e):  # ST 2084 EOTF
    p = e ** (32 / 2523)
    return 10000 * (max(p - 3424 / 4096, 0) / (2413 / 128 - 2392 / 128 * p)) ** (16384 / 2610)


def _npm(prim, white=(0.3127, 0.3290)):
    m = np.array([[x / y, 1, (1 - x - y) / y] for x, y in prim]).T
    w = np.array([white[0] / white[1], 1, (1 - sum(white)) / white[1]])
    return m * np.linalg.solve(m, w)


TO709 = np.linalg.inv(_npm([(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)])) @ _npm([(0.708, 0.292), (0.170, 0.797),
                                                                                  (0.131, 0.046)])
LW, LMAX = _pq(1000.0), _pq(100.0)
M = LMAX / LW
KS = 1.5 * M - 0.5


def _eetf(e):  # BT.2390 Hermite knee (PQ domain), the cubic continued past the peak as the code documents
    e1 = e / LW
    if e1 < KS:
        return e
    t = (e1 - KS) / (1 - KS)
    return ((2 * t**3 - 3 * t**2 + 1) * KS + (t**3 - 2 * t**2 + t) * (1 - KS) + (-2 * t**3 + 3 * t**2) * M) * LW


def _eetf_inverse(v):  # by bisection: the knee is increasing
    lo, hi = 0.0, 1.9
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _eetf(mid) < v else (lo, mid)
    return (lo + hi) / 2


def _render(rgb):  # R for one pixel: PQ signal RGB -> SDR R'G'B' (unclipped)
    light = np.array([_pq_nits(_eetf(c)) / 100 for c in rgb])
    return np.array([math.copysign(abs(c) ** (1 / 2.4), c) for c in TO709 @ light])


def _unrender(v):
    light = np.linalg.solve(TO709, np.array([math.copysign(abs(c) ** 2.4, c) for c in v]))
    return np.array([_eetf_inverse(_pq(max(c, 0) * 100)) for c in light])


def _yuv_to_rgb(y, u, v):  # 10-bit limited range codes -> signal R'G'B'
    ey, cb, cr = (y - 64) / 876, (u - 512) / 896, (v - 512) / 896
    r, b = ey + 2 * (1 - KR) * cr, ey + 2 * (1 - KB) * cb
    return np.array([r, (ey - KR * r - KB * b) / (1 - KR - KB), b])


def _rgb_to_yuv(rgb):
    r, g, b = rgb
    ey = KR * r + (1 - KR - KB) * g + KB * b
    return np.array([64 + 876 * ey, 512 + 896 * (b - ey) / (2 * (1 - KB)), 512 + 896 * (r - ey) / (2 * (1 - KR))])


def _planes(path):
    info = probe(path, count_frames=False)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return info, Planes.from_frame(frame, info.colour)


def test_hdr_composite_follows_the_per_pixel_reference(tmp_path):
    info, planes = _planes(make_hdr_clip(tmp_path / "pq444.mkv", chroma="444"))
    before = [p.copy() for p in planes.data]
    box = (12, 8, 52, 40)
    h, w = box[3] - box[1], box[2] - box[0]
    yy, xx = np.mgrid[0:h, 0:w]
    weight = np.where((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (h / 2.2) ** 2, 0.4 + 0.5 * xx / w, 0.0)
    value = np.stack([0.10 * np.ones((h, w)), -0.04 * np.ones((h, w)), 0.06 * yy / h])  # Δ in [-1, 1] units
    fld = PasteField(box, torch.tensor(weight, dtype=torch.float32), torch.tensor(value, dtype=torch.float32),
                     "delta")
    composite_field(planes, fld, rendering_for(info))
    wt, val = fld.weight.double().numpy(), fld.value.double().numpy()
    changed = 0
    for j in range(h):
        for i in range(w):
            y, x = box[1] + j, box[0] + i
            src = np.array([float(before[k][y, x]) for k in range(3)])
            got = np.array([float(planes.data[k][y, x]) for k in range(3)])
            if wt[j, i] == 0:
                assert np.array_equal(got, src)
                continue
            sig = _yuv_to_rgb(*src)
            ref = _rgb_to_yuv(_unrender(_render(sig) + wt[j, i] * val[:, j, i] * 0.5))
            assert np.abs(got - np.clip(ref, 0, 1023)).max() <= 1.0, (y, x, got, ref)
            changed += int(not np.array_equal(got, src))
    assert changed > 100
    outside = np.ones(planes.data[0].shape, bool)
    outside[box[1]:box[3], box[0]:box[2]] = False
    assert all(np.array_equal(a[outside], b[outside]) for a, b in zip(planes.data, before))


def test_zero_delta_keeps_every_hdr_sample(tmp_path):
    info, planes = _planes(make_hdr_clip(tmp_path / "pq.mkv"))
    before = [p.copy() for p in planes.data]
    box = (0, 0, planes.width, planes.height)
    fld = PasteField(box, torch.full((planes.height, planes.width), 0.8), torch.zeros(3, planes.height, planes.width),
                     "delta")
    composite_field(planes, fld, rendering_for(info))  # highlights above the peak included
    assert all(np.array_equal(a, b) for a, b in zip(planes.data, before))


def _decoded_planes(path):
    with av.open(str(path)) as c:
        return [[p.copy() for p in Planes.from_frame(f, probe(path, count_frames=False).colour).data]
                for f in c.decode(video=0)]


def test_strength_zero_edit_of_an_hdr_clip_is_the_source(tmp_path, tiny_weights, direction):
    clip = make_hdr_face_clip(tmp_path / "hdr.mkv", n_frames=3)
    out = tmp_path / "same.mkv"
    assert main(["edit", str(clip), "--direction", str(direction), "--strength", "0", "--paste", "delta", "-o",
                 str(out), "--codec", "ffv1", "--encoder", str(tiny_weights["encoder"]), "--generator",
                 str(tiny_weights["generator"]), "--device", "cpu"]) == 0
    assert probe(out).pix_fmt == "yuv420p10le" and probe(out).colour.trc == 16
    src, got = _decoded_planes(clip), _decoded_planes(out)
    assert len(src) == len(got) == 3
    for a, b in zip(src, got):
        assert all(np.array_equal(p, q) for p, q in zip(a, b))


def test_session_render_of_an_hdr_frame_equals_the_job(tmp_path, tiny_weights, direction):
    pytest.importorskip("dlib")
    import cv2

    from vidinvert import Editor, EditRequest, run_edit
    from vidinvert.pipeline.side_outputs import png16_of

    clip = make_hdr_face_clip(tmp_path / "hdr.mkv", n_frames=3)
    models = {"encoder": str(tiny_weights["encoder"]), "generator": str(tiny_weights["generator"]), "device": "cpu"}
    settings = {"direction": (direction,), "strength": "2"}
    req = EditRequest(inputs=(clip,), output=tmp_path / "out.mkv", codec="ffv1", frames_dir=tmp_path / "frames",
                      identity=False, batch_size=1, **models, **settings)
    assert run_edit(req).exit_code == 0
    tag = req.tags[0]
    job = cv2.imread(str(tmp_path / "frames" / tag / "000001.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    editor = Editor.from_request(EditRequest(inputs=(), **models))
    shown = editor.render(editor.open(clip), 1, EditRequest(inputs=(), **settings))
    assert job.dtype == np.uint16 and np.array_equal(png16_of(shown.planes[tag]), job)
    source = [p.data for p in (_nth_planes(clip, 1),)][0]
    assert any(not np.array_equal(a, b) for a, b in zip(shown.planes[tag].data, source))  # the edit shows


def _nth_planes(path, n):
    info = probe(path, count_frames=False)
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == n:
                return Planes.from_frame(frame, info.colour)
