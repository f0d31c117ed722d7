"""The Feature-Style encoder against the official code's outputs (../shared/reference/golden).

Weights: ``make_weights.py`` rebuilds the deterministic synthetic encoder state dict and latent_avg bit
for bit (digest checked); the input is ``golden_1024.npz['image_u8']``. Tolerances from the golden
README: x256 max abs <= 1e-5; w_delta, w_plus, F relative L2 <= 1e-4 (float32 CPU). One full-size
encoder forward for the whole file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import GOLDEN, load_make_weights, rel_l2, requires_golden
from vidinvert.models.fs_encoder import FeatureStyleEncoder, prepare_encoder_input

pytestmark = [requires_golden, pytest.mark.golden, pytest.mark.slow]

SALT = "golden-v1"


@pytest.fixture(scope="module")
def golden() -> dict:
    with np.load(GOLDEN / "golden_1024.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def run(golden) -> dict:
    mw = load_make_weights()
    enc_sd = mw.encoder_state_dict(SALT)
    latent_avg = mw.latent_avg_512(SALT)
    gen_sd = mw.generator_state_dict(mw.load_kernels(), SALT)  # only for the digest (~30M values)
    digest = mw.digest_full(enc_sd, gen_sd, latent_avg)
    del gen_sd
    with torch.device("meta"):
        enc = FeatureStyleEncoder()
    enc = enc.to_empty(device="cpu")  # skip the random init of 114M parameters
    enc.load_state_dict(enc_sd, strict=True)
    del enc_sd
    enc.eval().set_latent_avg(latent_avg)
    image = torch.from_numpy(golden["image_u8"]).permute(2, 0, 1)[None].float()
    x = (image / 255 - 0.5) / 0.5
    x256 = prepare_encoder_input(x)
    with torch.no_grad():
        w_delta, feature = enc.forward_offsets(x256)
    return {"digest": digest, "latent_avg": latent_avg, "x256": x256, "w_delta": w_delta,
            "w_plus": w_delta + enc.latent_avg, "F": feature}


def test_weights_are_rebuilt_bit_for_bit(run, golden):
    assert run["digest"] == str(golden["weights_digest"]), "make_weights rebuilt different weights"
    assert torch.equal(run["latent_avg"], torch.from_numpy(golden["latent_avg"]))


def test_encoder_input_from_the_1024_image(run, golden):
    assert run["x256"].shape == (1, 3, 256, 256)
    assert (run["x256"] - torch.from_numpy(golden["x256"])).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["w_delta", "w_plus", "F"])
def test_encoder_outputs(run, golden, name):
    assert run[name].shape == golden[name].shape
    assert rel_l2(run[name], golden[name]) <= 1e-4
