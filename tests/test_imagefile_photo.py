"""Photos read upright and written back in kind (vidinvert.imagefile.read_photo / write_photo).

References: Pillow's own exif_transpose, OpenCV's 16-bit PNG decoder, and invariants (unchanged
pixels stay bit-identical, alpha and ICC bytes are copied).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

from tests.face_clips import write_png16_grey_alpha
from vidinvert.errors import VidinvertError
from vidinvert.imagefile import orient, read_photo, write_photo


def _img(h=40, w=56, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _edit(rgb):
    """Change a block of pixels (the 'face') and leave the rest."""
    out = rgb.copy()
    out[5:15, 10:30] = 255 - out[5:15, 10:30]
    return out


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow_exif_transpose(orientation):
    a = _img(7, 11)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    ref = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(orient(a, orientation), ref)


def test_exif_rotated_jpeg_is_read_upright_and_written_upright(tmp_path):
    a = _img(30, 50)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # stored sideways; shown rotated 90 degrees clockwise
    exif[0x010F] = "TestCam"
    src = tmp_path / "rot.jpg"
    im.save(src, quality=98, exif=exif.tobytes())
    with Image.open(src) as ref_im:
        ref = np.asarray(ImageOps.exif_transpose(ref_im).convert("RGB"))
    photo = read_photo(src)
    assert photo.rgb.shape == (50, 30, 3) and np.array_equal(photo.rgb, ref)
    out = write_photo(tmp_path / "out.jpg", photo, photo.rgb, overwrite=False)
    with Image.open(out) as o:
        assert o.size == (30, 50)  # upright, no orientation tag left
        assert o.getexif().get(0x0112, 1) == 1 and o.getexif().get(0x010F) == "TestCam"
        assert JpegImagePlugin.get_sampling(o) == 0  # 4:4:4
        assert np.abs(np.asarray(o).astype(int) - ref).mean() < 3


def test_rgba_png_keeps_alpha_and_icc_and_unchanged_pixels(tmp_path):
    a = _img()
    alpha = np.random.default_rng(1).integers(0, 256, a.shape[:2], dtype=np.uint8)
    src = tmp_path / "a.png"
    icc = _srgb_icc()
    Image.fromarray(np.dstack([a, alpha]), "RGBA").save(src, icc_profile=icc)
    photo = read_photo(src)
    assert photo.alpha is not None and photo.icc == icc and photo.lossless
    edited = _edit(photo.rgb)
    for name in ("o.png", "o.webp", "o.tiff"):
        out = write_photo(tmp_path / name, photo, edited, overwrite=False)
        with Image.open(out) as o:
            got = np.asarray(o.convert("RGBA"))
            assert o.info.get("icc_profile") == icc, name
        assert np.array_equal(got[..., 3], alpha), name
        assert np.array_equal(got[..., :3], edited), name  # lossless formats, exact RGB under any alpha
    with pytest.raises(VidinvertError, match="alpha"):
        write_photo(tmp_path / "o.jpg", photo, edited, overwrite=False)


def test_greyscale_written_greyscale_with_unchanged_pixels_exact(tmp_path):
    g = _img()[..., 0]
    src = tmp_path / "g.png"
    Image.fromarray(g, "L").save(src)
    photo = read_photo(src)
    assert photo.grey and np.array_equal(photo.rgb, np.repeat(g[..., None], 3, -1))
    edited = photo.rgb.copy()
    edited[5:15, 10:30] = [200, 30, 60]
    out = write_photo(tmp_path / "o.png", photo, edited, overwrite=False)
    with Image.open(out) as o:
        assert o.mode == "L"
        got = np.asarray(o)
    ref = np.asarray(Image.fromarray(edited).convert("L"))  # Pillow's luma as the reference
    assert np.array_equal(got, ref)
    mask = np.ones(g.shape, bool)
    mask[5:15, 10:30] = False
    assert np.array_equal(got[mask], g[mask])


def _read16(path, channels: int) -> np.ndarray:
    """A 16-bit PNG's samples through OpenCV (grey+alpha: OpenCV's BGRA, grey in B, G and R -> [H,W,2])."""
    got = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if channels == 2:
        assert got.shape[2] == 4 and (got[..., 0] == got[..., 2]).all()
        assert open(path, "rb").read(26)[24:26] == b"\x10\x04"  # 16-bit grey+alpha on disk
        got = got[..., [0, 3]]
    return got


@pytest.mark.parametrize("channels", [3, 4, 1, 2])
def test_16bit_png_keeps_exact_16bit_values_outside_the_edit(tmp_path, channels):
    rng = np.random.default_rng(2)
    shape = (40, 56) if channels == 1 else (40, 56, channels)
    hi = rng.integers(0, 65536, shape, dtype=np.uint16)
    src = tmp_path / "h.png"
    if channels == 2:
        write_png16_grey_alpha(src, hi)
    else:
        assert cv2.imwrite(str(src), hi)  # OpenCV: BGR(A) order on disk
    grey = channels in (1, 2)
    photo = read_photo(src)
    assert photo.bits == 16 and photo.grey == grey and (photo.alpha is not None) == (channels in (2, 4))
    ref_rgb = np.repeat(hi[..., :1] if channels == 2 else hi[..., None], 3, -1) if grey else hi[..., [2, 1, 0]]
    assert np.array_equal(photo.rgb, np.round(ref_rgb / 257).astype(np.uint8))
    edited = _edit(photo.rgb)
    out = write_photo(tmp_path / "o.png", photo, edited, overwrite=False)
    got = _read16(out, channels)
    assert got.dtype == np.uint16 and got.shape == hi.shape
    keep = np.ones(hi.shape[:2], bool)
    keep[5:15, 10:30] = False
    assert np.array_equal(got[keep], hi[keep])
    inside = got[~keep].astype(float) / 257
    want = np.asarray(Image.fromarray(edited).convert("L"))[~keep] if grey else edited[~keep][:, ::-1]
    inside = inside[..., 0] if channels == 2 else inside if channels == 1 else inside[..., :3]
    assert np.abs(inside - want).max() < 0.51  # the 8-bit edit carried to 16 bits
    if channels in (2, 4):
        assert np.array_equal(got[..., -1], hi[..., -1])


@pytest.mark.parametrize("channels", [1, 2])
def test_16bit_grey_png_writes_the_given_16bit_samples(tmp_path, channels):
    """``high`` (the faces composited at 16 bits) is what a 16-bit grey (+alpha) PNG holds, alpha untouched."""
    rng = np.random.default_rng(4)
    hi = rng.integers(0, 65536, (30, 44) if channels == 1 else (30, 44, 2), dtype=np.uint16)
    src = tmp_path / "g.png"
    write_png16_grey_alpha(src, hi) if channels == 2 else cv2.imwrite(str(src), hi)
    photo = read_photo(src)
    high = photo.high.copy()
    high[3:9, 5:20] = rng.integers(0, 65536, (6, 15), dtype=np.uint16)
    got = _read16(write_photo(tmp_path / "o.png", photo, _edit(photo.rgb), overwrite=False, high=high), channels)
    assert np.array_equal(got, high if channels == 1 else np.dstack([high, hi[..., 1]]))
    with pytest.raises(ValueError):
        write_photo(tmp_path / "bad.png", photo, photo.rgb, overwrite=False, high=high[:-1])


def test_webp_lossless_stays_lossless_and_lossy_is_high_quality(tmp_path):
    a = _img(64, 64)
    lossless, lossy = tmp_path / "l.webp", tmp_path / "y.webp"
    Image.fromarray(a).save(lossless, lossless=True)
    Image.fromarray(a).save(lossy, quality=80)
    p1, p2 = read_photo(lossless), read_photo(lossy)
    assert p1.lossless and not p2.lossless
    edited = _edit(p1.rgb)
    out = write_photo(tmp_path / "o.webp", p1, edited, overwrite=False)
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), edited)
    from skimage import data

    smooth = tmp_path / "s.webp"
    Image.fromarray(data.astronaut()[:128, :128]).save(smooth, quality=80)
    p3 = read_photo(smooth)
    out2 = write_photo(tmp_path / "o2.webp", p3, p3.rgb, overwrite=False)
    low = tmp_path / "q50.webp"
    Image.fromarray(p3.rgb).save(low, quality=50)
    err = [np.abs(np.asarray(Image.open(o).convert("RGB")).astype(int) - p3.rgb).mean() for o in (out2, low)]
    assert err[0] < 0.6 * err[1], err


def test_jpeg_input_written_as_png_by_suffix_and_palette_read_as_rgb(tmp_path):
    a = _img()
    src = tmp_path / "a.jpg"
    Image.fromarray(a).save(src, quality=95)
    photo = read_photo(src)
    out = write_photo(tmp_path / "a.png", photo, photo.rgb, overwrite=False)
    with Image.open(out) as o:
        assert o.format == "PNG" and np.array_equal(np.asarray(o), photo.rgb)
    pal = tmp_path / "p.png"
    Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(pal)
    with Image.open(pal) as ref:
        want = np.asarray(ref.convert("RGB"))
    assert np.array_equal(read_photo(pal).rgb, want)


def test_unsupported_modes_are_refused_with_one_line(tmp_path):
    cmyk = tmp_path / "c.jpg"
    Image.fromarray(_img()).convert("CMYK").save(cmyk)
    with pytest.raises(VidinvertError, match="CMYK JPEG"):
        read_photo(cmyk)
    t16 = tmp_path / "t.tiff"
    cv2.imwrite(str(t16), np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(VidinvertError, match="16-bit colour TIFF"):
        read_photo(t16)
    txt = tmp_path / "x.png"
    txt.write_text("not an image")
    with pytest.raises(VidinvertError, match="not an image"):
        read_photo(txt)
