"""bf16 on the CPU: the ``--dtype auto`` rule (the CPU's bf16 units mocked), the fast bf16 generator
path against the reference path and float32, an edit in bf16 against the fp32 one, and fp32 kept
bit for bit.

Documented tolerances (README "Precision", docs/benchmarks.md): on the tiny 64 px models the fast
bf16 path is within 55 dB PSNR of the reference bf16 path and each bf16 path within 50 dB of fp32;
a bf16 reconstruction and edit are within 45 dB of the fp32 ones.
"""

from __future__ import annotations

import pytest
import torch

from vidinvert import device as D
from vidinvert.models import stylegan2, stylegan2_fast
from vidinvert.models.ops import modulated_conv2d_grouped

pytestmark = pytest.mark.usefixtures("one_thread")

FAST_VS_REF_DB = 55.0   # fast bf16 path vs the reference bf16 path (tiny generator)
BF16_VS_FP32_DB = 50.0  # either bf16 path vs float32 (tiny generator)
EDIT_DB = 45.0          # a bf16 edit (encoder + edit + synthesis) vs the fp32 one (tiny models)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 2.0) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * torch.log10(torch.tensor(peak ** 2 / max(mse, 1e-20))).item()


# ------------------------------------------------------------------------------- the auto rule
@pytest.mark.parametrize("flags, want", [
    ("fpu sse2 avx2 fma", torch.float32),
    ("fpu avx2 avx512f avx512_bf16", torch.bfloat16),
    ("fpu avx512f avx512_bf16 amx_bf16 amx_tile", torch.bfloat16),
])
def test_auto_dtype_follows_the_cpus_bf16_units(tmp_path, monkeypatch, flags, want):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    monkeypatch.setattr(D, "CPUINFO", str(info))
    monkeypatch.delenv(D.ENV_DTYPE, raising=False)
    c = D.resolve_compute("cpu", "auto")
    assert c.dtype == want
    assert c.reason.startswith("auto: " + D.dtype_name(want))
    if want == torch.bfloat16:
        assert "BF16" in c.reason and "--dtype fp32" in c.reason
    assert D.compute_record(c)["dtype_reason"] == c.reason
    assert D.dtype_name(want) in D.dtype_notice(c)


def test_fp32_by_option_or_environment_on_a_cpu_with_amx(monkeypatch):
    monkeypatch.setattr(D, "cpu_bf16_units", lambda: ("amx_bf16", "avx512_bf16"))
    monkeypatch.delenv(D.ENV_DTYPE, raising=False)
    assert D.resolve_compute("cpu", "auto").dtype == torch.bfloat16
    c = D.resolve_compute("cpu", "fp32")
    assert c.dtype == torch.float32 and c.reason == "--dtype fp32"
    monkeypatch.setenv(D.ENV_DTYPE, "fp32")
    c = D.resolve_compute("cpu", "auto")
    assert c.dtype == torch.float32 and c.reason == "VIDINVERT_DTYPE=fp32"
    assert D.resolve_compute("cpu", "bf16").dtype == torch.bfloat16  # the option wins over the environment
    monkeypatch.setenv(D.ENV_DTYPE, "fp64")
    with pytest.raises(D.VidinvertError, match="VIDINVERT_DTYPE"):
        D.resolve_compute("cpu", "auto")


def test_a_bad_vidinvert_dtype_is_refused_at_start_up(monkeypatch):
    from vidinvert.choices import ModelChoice
    from vidinvert.errors import VidinvertError

    monkeypatch.setenv("VIDINVERT_DTYPE", "half")
    with pytest.raises(VidinvertError, match="VIDINVERT_DTYPE half"):
        ModelChoice().check()


def test_doctor_reports_the_cpu_precision(monkeypatch):
    from vidinvert.cli import doctor

    monkeypatch.setattr(D, "cpu_bf16_units", lambda: ())
    rep = doctor.cpu_dtype()
    assert rep["bf16_units"] == [] and rep["auto"] == "fp32" and "no AMX-BF16" in rep["reason"]


# ---------------------------------------------------------------------------- the fast path
def _gen(seed: int = 1) -> stylegan2.Generator:
    g = stylegan2.tiny(seed)
    with torch.no_grad():  # non-trivial biases, so the folded bias is exercised
        for m in g.modules():
            if isinstance(m, stylegan2.StyledConv):
                m.activate.bias.normal_(0, 0.1)
    return g


def _run(g, w, dtype, *, fast=True, **kw):
    g.fast_path = fast
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        return g(w, **kw).float()


def test_fast_styled_conv_matches_the_per_sample_reference_in_fp32_arithmetic():
    """Each folded layer against the grouped per-sample form (fp32): bf16 relative error."""
    torch.manual_seed(0)
    for up, (i, o, r) in ((False, (16, 16, 32)), (True, (32, 16, 16))):
        layer = stylegan2.StyledConv(i, o, 64, upsample=up).eval()
        with torch.no_grad():
            layer.conv.weight.normal_()
            layer.conv.modulation.weight.normal_()
            layer.conv.modulation.bias.fill_(1.0)
            layer.activate.bias.normal_(0, 0.2)
            layer.noise.weight.fill_(0.3)
        x, w = torch.randn(3, i, r, r), torch.randn(3, 64)
        noise = torch.randn(3, 1, 2 * r if up else r, 2 * r if up else r)
        off = 0.5 * torch.randn(3, i)
        with torch.no_grad():
            s = layer.conv.styles(w, off)
            ref = modulated_conv2d_grouped(x, layer.conv.weight[0], s, upsample=up,
                                           blur_kernel=layer.conv.blur.kernel if up else None)
            ref = torch.nn.functional.leaky_relu(ref + 0.3 * noise + layer.activate.bias[None, :, None, None], 0.2) * 2 ** 0.5
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = stylegan2_fast.styled_conv(layer, x.bfloat16().contiguous(memory_format=torch.channels_last),
                                             w, noise, off)
        assert out is not None and out.dtype == torch.bfloat16
        rel = float((out.float() - ref).norm() / ref.norm())
        assert rel < 1.5e-2, (up, rel)  # bf16: 8 bits of mantissa


def test_fast_bf16_generator_matches_its_reference_path(monkeypatch):
    g = _gen()
    torch.manual_seed(1)
    w = 0.7 * torch.randn(2, g.n_latent, g.style_dim)
    feat = torch.randn(2, g.channels[16], 16, 16)
    calls = []
    real = stylegan2_fast.styled_conv
    monkeypatch.setattr(stylegan2_fast, "styled_conv", lambda *a: calls.append(r := real(*a)) or r)
    fast = _run(g, w, torch.bfloat16, feature=feat, feature_scale=0.7)
    assert sum(r is not None for r in calls) >= 2  # the folded 32 and 64 px layers ran fast
    ref = _run(g, w, torch.bfloat16, fast=False, feature=feat, feature_scale=0.7)
    fp32 = _run(g, w, torch.float32, feature=feat, feature_scale=0.7)
    assert psnr(fast, ref) > FAST_VS_REF_DB
    assert psnr(fast, fp32) > BF16_VS_FP32_DB and psnr(ref, fp32) > BF16_VS_FP32_DB


def test_stylespace_offsets_edit_alike_on_both_paths():
    """A StyleSpace channel edit (offsets on folded and unfolded layers) gives the same result on the
    fast and the reference bf16 path, and the change it makes is the fp32 one."""
    from vidinvert.models.stylespace import CONV, generator_layout, parse_channels

    g = _gen(2)
    layout = generator_layout(g)
    torch.manual_seed(2)
    w = 0.7 * torch.randn(2, g.n_latent, g.style_dim)
    conv = {lay.resolution: lay.index for lay in layout.layers if lay.kind == CONV}  # the last per resolution
    edits = parse_channels([f"{conv[64]}_3=3", f"{conv[32]}_5=-3", f"{conv[8]}_2=3"])  # folded, folded, early
    ds = torch.zeros(1, layout.total)
    for e in edits:
        ds[0, layout.flat_index(e.layer, e.channel)] = e.amount
    out = {}
    for name, dt, fast in (("fast", torch.bfloat16, True), ("ref", torch.bfloat16, False), ("fp32", torch.float32, True)):
        base, edited = _run(g, w, dt, fast=fast), _run(g, w, dt, fast=fast, style_offset=ds)
        out[name] = (edited, edited - base)
    assert psnr(out["fast"][0], out["ref"][0]) > FAST_VS_REF_DB
    change = out["fp32"][1]
    assert float(change.abs().mean()) > 1e-3  # the offsets do move the image
    for name in ("fast", "ref"):
        rel = float((out[name][1] - change).norm() / change.norm())
        assert rel < 0.1, (name, rel)


def test_bf16_edit_is_within_the_documented_psnr_of_fp32(tiny_weights, astronaut_face, monkeypatch):
    from vidinvert.convert import to_tensor
    from vidinvert.engine import Inverter
    from vidinvert.imagefile import read_image

    monkeypatch.setattr(D, "cpu_bf16_units", lambda: ("amx_bf16",))
    monkeypatch.delenv(D.ENV_DTYPE, raising=False)
    x = to_tensor(read_image(astronaut_face))
    d = torch.randn(10, 64, generator=torch.Generator().manual_seed(3))
    imgs = {}
    for dt in ("auto", "fp32"):
        inv = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], D.resolve_compute("cpu", dt))
        lat = inv.invert(x)
        imgs[inv.compute.dtype] = (inv.synthesize(lat), inv.synthesize(inv.edit(lat, d, 1.5)))
    (rec16, ed16), (rec32, ed32) = imgs[torch.bfloat16], imgs[torch.float32]
    assert psnr(rec16, rec32) > EDIT_DB and psnr(ed16, ed32) > EDIT_DB


def test_fp32_is_bit_for_bit_the_reference_path(tiny_weights, astronaut_face, monkeypatch):
    """On a CPU with AMX, ``VIDINVERT_DTYPE=fp32`` (and ``--dtype fp32``) give exactly the outputs of
    the generator with the fast path switched off, and of an independent fresh fp32 run."""
    from vidinvert.convert import to_tensor
    from vidinvert.engine import Inverter
    from vidinvert.imagefile import read_image

    monkeypatch.setattr(D, "cpu_bf16_units", lambda: ("amx_bf16",))
    monkeypatch.setenv(D.ENV_DTYPE, "fp32")
    x = to_tensor(read_image(astronaut_face))
    d = torch.randn(10, 64, generator=torch.Generator().manual_seed(4))
    outs = []
    for dt, fast in (("auto", True), ("fp32", True), ("fp32", False)):
        inv = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], D.resolve_compute("cpu", dt))
        assert inv.compute.dtype == torch.float32
        inv.generator.fast_path = fast
        lat = inv.invert(x)
        outs.append(inv.synthesize(inv.edit(lat, d, 1.5)))
    assert torch.equal(outs[0], outs[2]) and torch.equal(outs[1], outs[2])
