"""Loading builds the networks on the meta device and assigns the file's (memory-mapped) tensors.

The reference is the obvious slower way the loaders used before: construct the module with its
random initialisation, then ``load_state_dict(strict=True)`` copies the file into it. Both must give
the same tensors (values, dtype, shape, device, layout, Parameter-ness) and bit-identical outputs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import ROOT
from tests.test_weights_loading import manifest_state_dict
from vidinvert.models import fs_encoder
from vidinvert.models.iresnet import IResNet
from vidinvert.models.stylegan2 import Generator
from vidinvert.weights import load_arcface, load_encoder, load_generator, strict_load
from vidinvert.weights.loading import build_on_meta, infer_generator_config


def copied(cls, sd, **config) -> nn.Module:
    """The reference: a randomly initialised module, the file copied into it (strict)."""
    model = cls(**config)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def assert_same_tensors(ours: nn.Module, ref: nn.Module) -> None:
    """Every parameter and buffer (persistent or not): name, kind, dtype, shape, device, layout, values."""
    for kind, ours_named, ref_named in (("parameter", ours.named_parameters, ref.named_parameters),
                                        ("buffer", ours.named_buffers, ref.named_buffers)):
        a, b = dict(ours_named()), dict(ref_named())
        assert a.keys() == b.keys(), kind
        for name, t in a.items():
            r = b[name]
            assert type(t) is type(r), name
            assert (t.dtype, t.shape, t.device, t.requires_grad) == (r.dtype, r.shape, r.device, r.requires_grad), name
            assert t.is_contiguous() and not t.is_meta, name
            assert torch.equal(t, r), name
    assert ours.training == ref.training


def random_generator_file(tmp_path: Path, layout: str):
    """A 64 px, 512-d generator file with random official-layout tensors (+ its state dict)."""
    sd = manifest_state_dict("manifest_stylegan2_64_cm1.json", 11)
    la = torch.randn(512, generator=torch.Generator().manual_seed(12))
    if layout == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "g.safetensors"
        save_file({**sd, "latent_avg": la}, path)
    elif layout == "legacy":  # torch's pre-1.6 format: read without memory mapping
        path = tmp_path / "g_legacy.pt"
        torch.save({"g_ema": sd, "latent_avg": la}, path, _use_new_zipfile_serialization=False)
    else:
        path = tmp_path / "g.pt"
        torch.save({"g_ema": sd, "latent_avg": la}, path)
    return path, sd, la


@pytest.mark.parametrize("layout", ["rosinality", "safetensors", "legacy"])
def test_generator_equals_random_init_plus_strict_copy(tmp_path, layout):
    path, sd, la = random_generator_file(tmp_path, layout)
    gen, latent_avg = load_generator(path)
    ref = copied(Generator, sd, **infer_generator_config(sd))
    assert_same_tensors(gen, ref)
    assert len(gen.stored_noise()) == ref.num_layers and torch.equal(latent_avg, la.expand(gen.n_latent, 512))
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, gen.n_latent, 512, generator=g)
    feature = torch.randn(2, gen.channels[16], 16, 16, generator=g)
    with torch.no_grad():
        assert torch.equal(gen(w, feature, feature_index=5), ref(w, feature, feature_index=5))
        assert torch.equal(gen(w), ref(w))
        assert torch.equal(gen.forward_until(w, 5), ref.forward_until(w, 5))


def test_encoder_and_latent_avg_equal_the_copy_path(tmp_path):
    src = fs_encoder.tiny(5, n_styles=10, style_dim=512, feature_channels=256)
    sd = src.state_dict()
    torch.save(sd, tmp_path / "enc.pth")
    config = {"n_styles": 10, "style_dim": 512, "feature_channels": 256, "layers": (1, 1, 1, 1),
              "widths": (8, 16, 32, 64)}

    # No latent_avg anywhere: the non-persistent buffer is the constructor's zeros, on the CPU.
    enc = load_encoder(tmp_path / "enc.pth")
    ref = copied(fs_encoder.FeatureStyleEncoder, sd, **config)
    assert_same_tensors(enc, ref)
    assert torch.equal(enc.latent_avg, torch.zeros(10, 512))

    la = torch.randn(512, generator=torch.Generator().manual_seed(6))
    enc = load_encoder(tmp_path / "enc.pth", latent_avg=la)
    ref.set_latent_avg(la)
    assert_same_tensors(enc, ref)
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(7)) * 2 - 1
    with torch.no_grad():
        (w, f), (w_ref, f_ref) = enc(x), ref(x)
    assert torch.equal(w, w_ref) and torch.equal(f, f_ref)


def test_arcface_equals_the_copy_path(tmp_path):
    config = {"layers": (1, 1, 1, 1), "widths": (8, 16, 32, 64), "embedding_size": 128, "input_size": 112}
    g = torch.Generator().manual_seed(8)
    src = IResNet(**config)
    sd = {k: (torch.randn(v.shape, generator=g).abs() + 0.5 if v.is_floating_point() else v + 3)
          for k, v in src.state_dict().items()}  # random weights and BN statistics (variances > 0)
    torch.save(sd, tmp_path / "backbone.pth")
    model = load_arcface(tmp_path / "backbone.pth")
    ref = copied(IResNet, sd, **config)
    assert_same_tensors(model, ref)
    x = torch.rand(2, 3, 112, 112, generator=g) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))


def test_half_precision_file_is_cast_like_a_copy(tmp_path):
    sd = {k: v.half() if v.is_floating_point() else v
          for k, v in manifest_state_dict("manifest_stylegan2_64_cm1.json", 13).items()}
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(512)}, tmp_path / "g16.pt")
    gen, _ = load_generator(tmp_path / "g16.pt")
    ref = copied(Generator, sd, **infer_generator_config(sd))
    assert next(gen.parameters()).dtype == torch.float32
    assert_same_tensors(gen, ref)


def test_tensors_shared_in_the_file_become_separate_parameters(tmp_path):
    src = fs_encoder.tiny(2)
    sd = dict(src.state_dict())
    sd["styles.1.bias"] = sd["styles.0.bias"]  # one tensor stored under two keys (torch.save keeps the sharing)
    torch.save(sd, tmp_path / "tied.pth")
    enc = load_encoder(tmp_path / "tied.pth")
    a, b = enc.styles[0].bias, enc.styles[1].bias
    assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    with torch.no_grad():
        a.add_(1.0)  # independent, as after a copy
    assert not torch.equal(a, b)


class _WithScratch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("scratch", torch.ones(2), persistent=False)


def test_a_buffer_nobody_rebuilds_is_an_error_not_garbage():
    model = build_on_meta(_WithScratch)
    sd = {"lin.weight": torch.ones(2, 3), "lin.bias": torch.zeros(2)}
    with pytest.raises(RuntimeError, match="scratch"):
        strict_load(model, sd, "x.pt", "unknown")


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_loading_does_not_import_the_compiler_stack(tmp_path):
    # An op on meta tensors (e.g. torch.outer) imports torch._dynamo: about 1.5 s of a short job.
    path, _, _ = random_generator_file(tmp_path, "rosinality")
    torch.save(fs_encoder.tiny(1, n_styles=10, style_dim=512).state_dict(), tmp_path / "e.pth")
    _run(
        "import sys, torch; before = 'torch._dynamo' in sys.modules\n"
        "from vidinvert.weights import load_encoder, load_generator\n"
        f"g, la = load_generator({str(path)!r}); load_encoder({str(tmp_path / 'e.pth')!r}, latent_avg=la)\n"
        "assert before or 'torch._dynamo' not in sys.modules, 'loading imported torch._dynamo'"
    )


def test_cli_app_and_info_do_not_import_torch(tmp_path):
    from tests.video_fixtures import make_clip

    clip = make_clip(tmp_path / "clip.mp4", n_frames=3).path
    _run("import sys, vidinvert.cli.app; assert 'torch' not in sys.modules, 'import vidinvert.cli.app imported torch'")
    _run(
        "import sys; from vidinvert.cli.app import main\n"
        f"assert main(['--quiet', 'info', {str(clip)!r}]) == 0\n"
        "assert 'torch' not in sys.modules, 'vidinvert info imported torch'"
    )
