"""The ArcFace IResNet-50 against the official code's outputs (../shared/reference/golden).

Weights rebuilt by ``make_weights.arcface_state_dict('golden-v1')`` (digest checked). Inputs: the golden
1024 image and the official reconstruction (``golden_1024.npz['recon']``, float16), both resized to 112
with mode nearest as the official identity loss. Stages and embeddings: relative L2 <= 1e-4; the
multi-layer identity loss (1 - cosine per flattened stage, eps 1e-6): abs <= 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import GOLDEN, load_make_weights, rel_l2, requires_golden
from vidinvert.models.iresnet import iresnet50, prepare_arcface_input

pytestmark = [requires_golden, pytest.mark.golden]

SALT = "golden-v1"
STAGES = ["layer1", "layer2", "layer3", "layer4", "embedding"]


@pytest.fixture(scope="module")
def golden() -> dict:
    with np.load(GOLDEN / "golden_arcface.npz") as z:
        out = {k: z[k] for k in z.files}
    with np.load(GOLDEN / "golden_1024.npz") as z:
        out["image_u8"] = z["image_u8"]
        out["recon"] = z["recon"]
    return out


@pytest.fixture(scope="module")
def run(golden) -> dict:
    mw = load_make_weights()
    sd = mw.arcface_state_dict(SALT)
    digest = mw.digest_arcface(sd)
    net = iresnet50()
    net.load_state_dict(sd, strict=True)
    net.eval()
    image = torch.from_numpy(golden["image_u8"]).permute(2, 0, 1)[None].float()
    x112 = prepare_arcface_input((image / 255 - 0.5) / 0.5)
    x112_recon = prepare_arcface_input(torch.from_numpy(golden["recon"].astype(np.float32)))
    with torch.no_grad():
        feats = net.forward_features(x112)
        feats_recon = net.forward_features(x112_recon)
    return {"digest": digest, "x112": x112, "x112_recon": x112_recon, "feats": feats,
            "feats_recon": feats_recon}


def test_weights_are_rebuilt_bit_for_bit(run, golden):
    if "weights_digest" not in golden:
        pytest.skip("golden_arcface.npz carries no weights_digest")
    assert run["digest"] == str(golden["weights_digest"]), "make_weights rebuilt different weights"


@pytest.mark.parametrize("name", ["x112", "x112_recon"])
def test_identity_input_is_the_nearest_112_resize(run, golden, name):
    assert (run[name] - torch.from_numpy(golden[name])).abs().max().item() <= 1e-6


@pytest.mark.parametrize("index", range(5), ids=STAGES)
def test_stages_and_embedding(run, golden, index):
    ours, ref = run["feats"][index], golden[STAGES[index]]
    assert ours.shape == ref.shape
    assert rel_l2(ours, ref) <= 1e-4


def test_embedding_of_the_reconstruction(run, golden):
    assert rel_l2(run["feats_recon"][4], golden["embedding_recon"]) <= 1e-4


def test_multi_layer_identity_loss(run, golden):
    cos = torch.nn.CosineSimilarity(dim=1, eps=1e-6)
    terms = torch.stack([
        1 - cos(r.flatten(1), s.flatten(1))[0] for r, s in zip(run["feats_recon"], run["feats"])
    ])
    ref_terms = torch.from_numpy(golden["idloss_terms"])
    assert (terms - ref_terms).abs().max().item() <= 1e-4
    assert abs(terms.sum().item() - float(golden["idloss"][0])) <= 1e-4
