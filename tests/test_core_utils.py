import numpy as np
import pytest
import torch

from vidinvert.convert import to_tensor, to_uint8
from vidinvert.device import resolve_compute
from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path, check_output


def test_uint8_roundtrip_is_exact():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    t = to_tensor(img)
    assert t.shape == (2, 3, 5, 7) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(to_uint8(t), img)


def test_to_uint8_official_rounding():
    # clamp((x+1)/2,0,1)*255 + 0.5 truncated
    x = torch.tensor([-2.0, -1.0, 0.0, 0.999, 1.0, 3.0]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    got = to_uint8(x)[0, 0, :, 0]
    ref = np.floor(np.clip((x[0, 0, 0].numpy() + 1) / 2, 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(got, ref)


def test_resolve_compute():
    c = resolve_compute("cpu", "auto")
    assert c.device.type == "cpu" and c.dtype == torch.float32 and not c.fell_back
    c = resolve_compute("cpu", "bf16")
    assert c.dtype == torch.bfloat16 and c.autocast_enabled
    if not torch.cuda.is_available():
        c = resolve_compute("cuda", "auto")
        assert c.fell_back and c.device.type == "cpu"
    with pytest.raises(VidinvertError):
        resolve_compute("tpu", "auto")
    with pytest.raises(VidinvertError):
        resolve_compute("cpu", "int8")


def test_atomic_output(tmp_path):
    dest = tmp_path / "out.txt"
    with atomic_path(dest, overwrite=False) as tmp:
        tmp.write_text("ok")
        assert not dest.exists()
    assert dest.read_text() == "ok"
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.txt", overwrite=False) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert not (tmp_path / "b.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp left behind
    with pytest.raises(VidinvertError, match="--overwrite"):
        check_output(dest, overwrite=False)
    with pytest.raises(VidinvertError, match="input"):
        check_output(dest, overwrite=True, inputs=[dest])
    with pytest.raises(VidinvertError, match="does not exist"):
        check_output(tmp_path / "nope" / "x.png", overwrite=False)
