"""StyleGAN2 generator against outputs of the official code (../shared/reference/golden).

The weights are rebuilt bit for bit by the reference folder's make_weights.py (checked by digest);
tolerances are the README's: rel L2 <= 1e-4 for float32 arrays, uint8 PSNR >= 45 dB for the float16
1024 images after the official uint8 conversion.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import GOLDEN, load_make_weights, rel_l2, requires_golden
from vidinvert.models.stylegan2 import Generator

pytestmark = [pytest.mark.golden, requires_golden]

REL_TOL = 1e-4
PSNR_MIN_DB = 45.0
SALT = "golden-v1"


@pytest.fixture(scope="module")
def make_weights():
    return load_make_weights()


def _official_uint8(x: torch.Tensor) -> torch.Tensor:
    """``save_image(clip_img(x))``: clamp((x+1)/2, 0, 1) * 255 + 0.5, clamp to [0, 255], truncate."""
    return (torch.clamp((x.float() + 1) / 2, 0, 1) * 255 + 0.5).clamp(0, 255).to(torch.uint8)


def _uint8_psnr(ours: torch.Tensor, ref: np.ndarray) -> float:
    a = _official_uint8(ours).double()
    b = _official_uint8(torch.from_numpy(np.asarray(ref, dtype=np.float32))).double()
    mse = float((a - b).square().mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _edit_through_inverter(g: Generator, ref, tmp_path):
    """``Inverter.edit`` of the golden (w+, F) with the golden direction file at the golden strength.

    The encoder is not used by an edit (the latents are the golden ones), so a placeholder stands in.
    """
    from vidinvert.device import resolve_compute
    from vidinvert.edit.directions import load_direction
    from vidinvert.engine import Inverter, Latents

    np.save(tmp_path / "direction.npy", ref["direction"])
    d = load_direction(tmp_path / "direction.npy", g.n_latent, g.style_dim)
    inv = Inverter(torch.nn.Identity(), g, resolve_compute("cpu", "fp32"))
    lat = Latents(torch.from_numpy(ref["w_plus"]), torch.from_numpy(ref["F"]))
    return inv, inv.edit(lat, d.scaled(1.0), float(ref["edit_strength"]))


def test_tiny_generator_matches_official(make_weights, tmp_path):
    ref = np.load(GOLDEN / "golden_tiny.npz")
    sd, latent_avg = make_weights.build_tiny(salt=SALT)
    assert make_weights.digest_tiny(sd, latent_avg) == str(ref["weights_digest"]), "weights rebuilt wrongly"
    g = Generator(64, 512, 8, channel_multiplier=1).eval()
    g.load_state_dict(sd, strict=True)
    for i, n in enumerate(g.stored_noise()):
        assert np.array_equal(n.numpy(), ref[f"noise_{i}"])
    k = int(ref["idx_k"])
    assert k == 5 and [int(i) for i in ref["outs_16x16_indices"]] == [4, 5]

    z, w = torch.from_numpy(ref["z"]), torch.from_numpy(ref["w_plus"])
    feat, w_edit = torch.from_numpy(ref["F"]), torch.from_numpy(ref["w_edit"])
    with torch.no_grad():
        w_map = g.mapping(z)
        results = {"w_map": w_map, "image_z": g(w_map)}
        image, outs = g(w, return_features=True)
        results["image"] = image
        results.update({f"outs_{i}": o for i, o in enumerate(outs)})
        results["image_F"] = g(w, feat, feature_index=k)
        results["image_F_half"] = g(w, feat, feature_index=k, feature_scale=0.5)
        results["G5_w_edit"] = g.forward_until(w_edit, index=k)
    # the edit through the public path: the direction file, Inverter.edit, Inverter.synthesize
    inv, edited = _edit_through_inverter(g, ref, tmp_path)
    results["w_edit"], results["F_edit"] = edited.w, edited.f
    results["edited"] = inv.synthesize(edited)
    g.grouped_modconv = True  # the reference form must agree with the official numbers too
    results["edited_grouped"] = inv.synthesize(edited)
    assert torch.equal(outs[0], torch.from_numpy(ref["outs_0"]).expand_as(outs[0]))
    errors = {name: rel_l2(v, ref[name.replace("_grouped", "")]) for name, v in results.items()}
    bad = {name: e for name, e in errors.items() if not e <= REL_TOL}
    assert not bad, f"rel L2 above {REL_TOL}: {bad}"


@pytest.mark.slow
def test_1024_generator_edit_and_reconstruction_match_official(make_weights, tmp_path):
    ref = np.load(GOLDEN / "golden_1024.npz")
    enc_sd, sd, latent_avg = make_weights.build_all(salt=SALT)
    assert make_weights.digest_full(enc_sd, sd, latent_avg) == str(ref["weights_digest"]), "weights rebuilt wrongly"
    del enc_sd
    g = Generator(1024).eval()
    g.load_state_dict(sd, strict=True)
    del sd

    w, w_edit = torch.from_numpy(ref["w_plus"]), torch.from_numpy(ref["w_edit"])
    feat = torch.from_numpy(ref["F"])
    with torch.no_grad():
        g5 = g.forward_until(torch.cat([w, w_edit]))  # G_K(w), G_K(w~): the two early-exit passes
    # the edit through the public path: the direction file, Inverter.edit
    _, edited = _edit_through_inverter(g, ref, tmp_path)
    with torch.no_grad():
        # One batched pass: reconstruction G(w, F), edit G(w~, F~), and G(w) via a per-sample scale of 0.
        images = g(torch.cat([w, edited.w, w]), torch.cat([feat, edited.f, feat]),
                   feature_scale=torch.tensor([1.0, 1.0, 0.0]))
    assert rel_l2(g5[:1], ref["G5_w"]) <= REL_TOL
    assert rel_l2(g5[1:], ref["G5_w_edit"]) <= REL_TOL
    assert rel_l2(edited.w, ref["w_edit"]) <= REL_TOL
    assert rel_l2(edited.f, ref["F_edit"]) <= REL_TOL
    assert images.shape == (3, 3, 1024, 1024) and images.dtype == torch.float32
    pooled = F.avg_pool2d(images, 4)
    for i, name in enumerate(["recon", "edited", "recon_w"]):
        psnr = _uint8_psnr(images[i:i + 1], ref[name])
        assert psnr >= PSNR_MIN_DB, f"{name}: uint8 PSNR {psnr:.1f} dB"
        assert rel_l2(pooled[i:i + 1], ref[f"{name}_256"]) <= REL_TOL, name
