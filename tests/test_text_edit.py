"""Edits described in words (StyleCLIP global directions): the CLIP loader, the template average, the
channel selection and the output tags, with a small random CLIP in the official key layout (random weights
carry no meaning; the tests check the mechanism against independent computations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")

from vidinvert.edit import text  # noqa: E402
from vidinvert.errors import VidinvertError  # noqa: E402
from vidinvert.models import clip  # noqa: E402


def tiny_clip_state() -> dict[str, torch.Tensor]:
    """A small CLIP (text width 64, one layer; ViT 32 px, patch 16) in CLIP's key layout, random weights."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    m = CLIP(32, vision_cfg=CLIPVisionCfg(layers=1, width=64, patch_size=16, image_size=32, head_width=64),
             text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1), quick_gelu=True)
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    from safetensors.torch import save_file

    p = tmp_path_factory.mktemp("clip") / "open_clip_model.safetensors"
    save_file(tiny_clip_state(), str(p))
    return p


@pytest.fixture(scope="module")
def model(clip_file):
    return clip.load_clip(clip_file)


def test_an_open_clip_file_loads_strictly_and_torchscript_is_refused(clip_file, model, tmp_path):
    sd = tiny_clip_state()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    torch.save({"model": sd}, tmp_path / "wrapped.pt")  # a torch file, wrapped, read weights-only
    assert torch.equal(clip.load_clip(tmp_path / "wrapped.pt").token_embedding.weight, sd["token_embedding.weight"])
    bad = dict(sd)
    bad["transformer.resblocks.0.extra"] = torch.zeros(1)
    torch.save(bad, tmp_path / "extra.pt")
    with pytest.raises(VidinvertError, match="does not match the ViT layout"):
        clip.load_clip(tmp_path / "extra.pt")
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    scripted.save(str(tmp_path / "ViT-B-32.pt"))
    with pytest.raises(VidinvertError, match="TorchScript") as e:
        clip.load_clip(tmp_path / "ViT-B-32.pt")
    assert "open_clip_model.safetensors" in str(e.value) and "\n" not in str(e.value)


def test_the_template_average_matches_an_independent_computation(model):
    tpl = text.templates()
    assert len(tpl) == 79 and "a photo of many {}." not in tpl and "a bad photo of a {}." in tpl
    tok = clip.tokenizer()
    rows = []
    for t in tpl:  # one template at a time, normalised in numpy
        e = model.encode_text(tok([t.format("a face with a beard")])).detach().numpy()[0].astype(np.float64)
        rows.append(e / np.linalg.norm(e))
    mean = np.mean(rows, axis=0)
    want = mean / np.linalg.norm(mean)
    got = text.phrase_embedding(model, "a face with a beard").numpy()
    assert np.abs(got - want).max() < 1e-5
    dt = text.text_delta(model, "a face with a beard")
    assert abs(float(dt.norm()) - 1) < 1e-6
    neutral = text.phrase_embedding(model, text.NEUTRAL)
    ref = torch.from_numpy(want).float() - neutral
    assert torch.allclose(dt, ref / ref.norm(), atol=1e-5)
    assert text.phrase_embedding(model, "un visage souriant, très joyeux").shape == got.shape  # non-ASCII works


def test_planted_channels_are_selected_with_their_signs_and_beta_shrinks_the_set(model):
    dt = text.text_delta(model, "a face with a beard")
    g = torch.Generator().manual_seed(1)
    m = torch.randn(300, dt.numel(), generator=g)
    m -= (m @ dt)[:, None] * dt[None]  # rows orthogonal to the text direction: relevance 0
    m /= m.norm(dim=1, keepdim=True)
    planted = {7: 0.9, 42: -0.6, 199: 0.3}
    for c, v in planted.items():  # these rows lean towards the text direction by v
        m[c] = m[c] * (1 - v * v) ** 0.5 + v * dt
    r, kept = text.select_channels(m, dt, beta=0.2)
    assert set(torch.nonzero(kept).flatten().tolist()) == set(planted)
    assert all(np.sign(float(r[c])) == np.sign(v) for c, v in planted.items())
    sizes = [int(text.select_channels(m, dt, beta=b)[1].sum()) for b in (0.05, 0.2, 0.5, 0.8, 0.95)]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 0 and sizes[2] == 2
    std = torch.rand(300, generator=g) + 0.5
    ds = text.style_change(r, kept, std)
    assert float(ds[7]) == pytest.approx(float(std[7]))  # the strongest channel moves by one std
    assert float(ds[42]) == pytest.approx(float(r[42] / r[7] * std[42]))
    assert int((ds != 0).sum()) == 3
    with pytest.raises(VidinvertError, match="lower --text-beta"):
        text.style_change(r, r.abs() > 2, std)


def test_prompt_tags():
    assert text.prompt_tag("A face with a BEARD!") == "a-face-with-a-beard"
    long = "a very old man with a long grey beard and thick glasses, smiling widely"
    tag = text.prompt_tag(long)
    assert len(tag) <= text.TAG_CHARS and tag.startswith("a-very-old-man") and tag != text.prompt_tag(long + " too")
    a, b = "smile!", "smile?"
    assert text.prompt_tag(a, (a, b)) != text.prompt_tag(b, (a, b)) and len({text.prompt_tag(a), text.prompt_tag(b)}) == 1
    assert all(set(t) <= set("abcdefghijklmnopqrstuvwxyz0123456789-") for t in (tag, text.prompt_tag("über café")))


def test_a_prompt_that_fits_bare_but_not_in_a_template_is_refused_not_cut():
    tok = __import__("open_clip").get_tokenizer("ViT-B-32")
    prompt = "a " * 72
    assert len(tok.encode(prompt)) + 2 <= 77 and clip.check_prompt(prompt) == prompt  # bare, it fits
    assert max(len(tok.encode(t.format(prompt))) + 2 for t in text.templates()) > 77  # templated, it would be cut
    with pytest.raises(VidinvertError, match="inside the template"):
        text.check_phrase(prompt)
    ok = "a " * 60
    assert max(len(tok.encode(t.format(ok))) + 2 for t in text.templates()) <= 77 and text.check_phrase(ok) == ok


@pytest.mark.parametrize("call, words", [
    (lambda: clip.check_prompt("   "), "empty"),
    (lambda: clip.check_prompt("a " * 80), "more than CLIP's 77"),
    (lambda: text.check_phrase("a " * 72), "inside the template"),  # fits bare, not inside the longest template
    (lambda: text.check_beta(1.0), "--text-beta"),
    (lambda: text.check_beta(0), "--text-beta"),
    (lambda: text.check_beta(float("nan")), "--text-beta"),
])
def test_bad_prompts_and_beta_are_one_line(call, words):
    with pytest.raises(VidinvertError, match=words) as e:
        call()
    assert "\n" not in str(e.value)
