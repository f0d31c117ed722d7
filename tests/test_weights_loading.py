"""Safe reading and strict loading of the official checkpoint formats, and where files are looked up.

The full-size files are built from the manifests of the official state dicts (random tensors of the
official keys, shapes and dtypes), written once per module in each official layout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import pickle
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import GOLDEN, MANIFESTS
from vidinvert.errors import VidinvertError
from vidinvert.models import fs_encoder, stylegan2
from vidinvert.weights import (
    find,
    load_arcface,
    load_encoder,
    load_generator,
    read_checkpoint,
    require,
    resolve_file,
    search_dirs,
)


def manifest_state_dict(name: str, seed: int) -> OrderedDict[str, torch.Tensor]:
    """Random tensors with the official keys, shapes and dtypes (FIR kernels: their real values)."""
    entries = json.loads((MANIFESTS / name).read_text())["state_dict"]
    kernels = np.load(MANIFESTS / "fir_kernels.npz")
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    for key, shape, dtype in entries:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(7, dtype=getattr(torch, dtype))
        elif key.endswith("kernel") and key in kernels.files:
            sd[key] = torch.from_numpy(kernels[key].copy())
        else:
            sd[key] = torch.randn(shape, generator=g).to(getattr(torch, dtype))
    return sd


def assert_state_equal(model: torch.nn.Module, sd) -> None:
    got = model.state_dict()
    assert set(got) == set(sd)
    for k, v in sd.items():
        assert torch.equal(got[k].cpu(), v), k


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """Each official file layout, full size, written once: {name: (path, state dict, latent_avg)}."""
    root = tmp_path_factory.mktemp("official")
    gen = manifest_state_dict("manifest_stylegan2_1024.json", 1)
    enc = manifest_state_dict("manifest_fs_encoder.json", 2)
    arc = manifest_state_dict("manifest_arcface_iresnet50.json", 3)
    la = torch.randn(512, generator=torch.Generator().manual_seed(4)) * 0.5
    files = {}

    def save(name, obj):
        torch.save(obj, root / name)
        return root / name

    files["rosinality"] = save("stylegan2-ffhq-config-f.pt", {"g_ema": gen, "latent_avg": la.clone()})
    psp_sd = OrderedDict([("encoder.input_layer.0.weight", torch.randn(64, 3, 3, 3))])
    psp_sd.update(("decoder." + k, v) for k, v in gen.items())
    opts = {"exp_dir": "experiments/ffhq_encode", "output_size": 1024, "start_from_latent_avg": True,
            "lpips_lambda": 0.8, "checkpoint_path": None, "device": "cuda:0"}
    files["psp"] = save("psp_ffhq_encode.pt",
                        {"state_dict": psp_sd, "opts": opts, "latent_avg": la.view(1, 512).repeat(18, 1)})
    from safetensors.torch import save_file

    save_file({**{k: v.contiguous() for k, v in gen.items()}, "latent_avg": la.clone()}, root / "gen.safetensors")
    files["safetensors"] = root / "gen.safetensors"
    files["enc_bare"] = save("143_enc.pth", enc)
    n_params = sum(1 for k in enc if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    files["enc_checkpoint"] = save("checkpoint.pth", {
        "n_epoch": 11,
        "enc_state_dict": enc,
        "enc_opt_state_dict": {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(3)}},
                               "param_groups": [{"lr": 1e-5, "betas": (0.95, 0.999), "k": 6, "eps": 1e-5,
                                                 "weight_decay": 0, "params": list(range(n_params))}]},
        "enc_scheduler_state_dict": {"step_size": 10, "gamma": 0.1, "base_lrs": [1e-4], "last_epoch": 12,
                                     "_last_lr": [1e-5], "verbose": False},
    })
    files["arcface"] = save("backbone.pth", arc)
    return {"files": files, "gen": gen, "enc": enc, "arc": arc, "la": la}


# ---------------------------------------------------------------------------------------------
# Official formats, full size, strict
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["rosinality", "psp", "safetensors"])
def test_full_size_generator_layouts_load_strictly(official, layout):
    g, latent_avg = load_generator(official["files"][layout])
    assert (g.size, g.style_dim, g.n_latent, g.channels[1024]) == (1024, 512, 18, 32)
    assert not g.training
    assert_state_equal(g, official["gen"])
    assert latent_avg.shape == (18, 512) and latent_avg.dtype == torch.float32
    assert torch.equal(latent_avg, official["la"].expand(18, 512))


@pytest.mark.parametrize("layout", ["enc_bare", "enc_checkpoint"])
def test_full_size_encoder_layouts_load_strictly(official, layout):
    enc = load_encoder(official["files"][layout], latent_avg=official["la"])
    assert (enc.n_styles, enc.style_dim, enc.feature_channels) == (18, 512, 512)
    assert enc.layers == (3, 4, 14, 3) and not enc.training
    assert_state_equal(enc, official["enc"])
    assert torch.equal(enc.latent_avg, official["la"].expand(18, 512))


def test_full_size_arcface_loads_strictly(official):
    model = load_arcface(official["files"]["arcface"])
    assert_state_equal(model, official["arc"])
    assert model.embedding_size == 512 and not model.training


def test_full_size_generator_shape_mismatch_names_key(official, tmp_path):
    sd = OrderedDict(official["gen"])
    sd["convs.3.conv.modulation.weight"] = torch.zeros(512, 256)
    path = tmp_path / "bad.pt"
    torch.save({"g_ema": sd, "latent_avg": official["la"]}, path)
    with pytest.raises(VidinvertError) as info:
        load_generator(path)
    msg = str(info.value)
    assert str(path) in msg and "generator" in msg and "\n" not in msg
    assert "convs.3.conv.modulation.weight: expected [512, 512], found [512, 256]" in msg


# ---------------------------------------------------------------------------------------------
# Smaller architectures are inferred from the shapes
# ---------------------------------------------------------------------------------------------
def test_64px_channel_multiplier_1_generator_loads(tmp_path):
    sd = manifest_state_dict("manifest_stylegan2_64_cm1.json", 5)
    torch.save({"g_ema": sd, "latent_avg": torch.ones(512)}, tmp_path / "g64.pt")
    g, la = load_generator(tmp_path / "g64.pt")
    assert (g.size, g.n_latent, g.channels[64]) == (64, 10, 256)
    assert_state_equal(g, sd)
    assert la.shape == (10, 512)


def test_tiny_generator_and_encoder_round_trip(tmp_path):
    gen, enc = stylegan2.tiny(3), fs_encoder.tiny(3)
    torch.save(gen.state_dict(), tmp_path / "g.pt")  # bare g_ema state dict: latent_avg is computed
    torch.save(enc.state_dict(), tmp_path / "enc.pth.tar")
    g2, la = load_generator(tmp_path / "g.pt")
    assert g2.channels == gen.channels and g2.style_dim == 64 and g2.n_mlp == 2
    assert_state_equal(g2, gen.state_dict())
    e2 = load_encoder(tmp_path / "enc.pth.tar", latent_avg=la)
    assert (e2.n_styles, e2.style_dim, e2.feature_channels) == (10, 64, 64)
    assert e2.layers == enc.layers and e2.widths == enc.widths
    assert_state_equal(e2, enc.state_dict())
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    w, f = e2(x)
    w_ref, f_ref = enc(x)
    assert torch.allclose(w, w_ref + la) and torch.equal(f, f_ref)


def test_training_checkpoint_without_latent_avg_computes_mean_with_notice(tmp_path, caplog):
    gen = stylegan2.tiny(1)
    ckpt = {
        "g": gen.state_dict(), "g_ema": gen.state_dict(),
        "d": {"convs.0.0.weight": torch.zeros(4, 3, 1, 1), "final_linear.0.weight": torch.zeros(1, 4)},
        "g_optim": {"state": {}, "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "params": [0, 1]}]},
        "args": argparse.Namespace(size=64, batch=16, ckpt=None, r1=10.0),
        "ada_aug_p": 0.0,
    }
    torch.save(ckpt, tmp_path / "010000.pt")
    with caplog.at_level(logging.WARNING, logger="vidinvert.weights"):
        g, la = load_generator(tmp_path / "010000.pt")
    notices = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(notices) == 1 and "latent_avg" in notices[0].getMessage()
    expected = gen.mean_latent(10_000, seed=0)
    assert la.shape == (10, 64)
    assert torch.allclose(la, expected.expand(10, 64), atol=1e-6)
    # Independent check of what "mean of the mapping over seeded z" means.
    z = torch.randn(10_000, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(la[0], gen.mapping(z).mean(0), atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Key errors and files of the wrong kind
# ---------------------------------------------------------------------------------------------
def _tiny_gen_file(tmp_path, edit) -> Path:
    sd = OrderedDict(stylegan2.tiny(0).state_dict())
    edit(sd)
    path = tmp_path / "tiny.pt"
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(64)}, path)
    return path


def test_missing_key_is_named(tmp_path):
    path = _tiny_gen_file(tmp_path, lambda sd: sd.pop("convs.1.noise.weight"))
    with pytest.raises(VidinvertError, match=r"1 missing keys \(convs\.1\.noise\.weight\)"):
        load_generator(path)


def test_unexpected_keys_are_named_with_count(tmp_path):
    def add(sd):
        for i in range(5):
            sd[f"extra.layer{i}.weight"] = torch.zeros(1)

    path = _tiny_gen_file(tmp_path, add)
    with pytest.raises(VidinvertError) as info:
        load_generator(path)
    msg = str(info.value)
    assert "5 unexpected keys (extra.layer0.weight, extra.layer1.weight, extra.layer2.weight, ... 2 more)" in msg


def test_encoder_shape_mismatch_is_named(tmp_path):
    sd = OrderedDict(fs_encoder.tiny(0).state_dict())
    sd["styles.4.bias"] = torch.zeros(65)
    torch.save({"n_epoch": 0, "enc_state_dict": sd}, tmp_path / "checkpoint.pth")
    with pytest.raises(VidinvertError, match=r"styles\.4\.bias: expected \[64\], found \[65\]"):
        load_encoder(tmp_path / "checkpoint.pth")


def test_vidinvert_training_checkpoint_loads_as_encoder(tmp_path):
    enc = fs_encoder.tiny(2)
    sd = {"_orig_mod." + k: v for k, v in enc.state_dict().items()}  # a torch.compile'd encoder
    torch.save({"format": "vidinvert-train-checkpoint", "version": 1, "iteration": 40, "encoder": sd,
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.95, 0.999)}]}},
               tmp_path / "ckpt-00000040.pt")
    assert_state_equal(load_encoder(tmp_path / "ckpt-00000040.pt"), enc.state_dict())


def test_missing_batchnorm_counters_alone_are_filled(tmp_path):
    enc = fs_encoder.tiny(0)
    sd = {k: v for k, v in enc.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "enc.pth")
    assert_state_equal(load_encoder(tmp_path / "enc.pth"), {**enc.state_dict(), **{
        k: torch.tensor(0) for k in enc.state_dict() if k.endswith("num_batches_tracked")}})


@pytest.mark.parametrize(
    "source, loader, needle",
    [
        ("enc", load_generator, "holds a Feature-Style encoder, not a StyleGAN2 generator"),
        ("gen", load_encoder, "holds a StyleGAN2 generator, not a Feature-Style encoder"),
        ("gen", load_arcface, "holds a StyleGAN2 generator, not an ArcFace"),
        ("arc", load_encoder, "holds an ArcFace IResNet, not a Feature-Style encoder"),
        ("psp", load_encoder, "holds a pSp checkpoint"),
    ],
)
def test_valid_checkpoint_of_wrong_kind_is_named(tmp_path, source, loader, needle):
    objs = {
        "enc": lambda: fs_encoder.tiny(0).state_dict(),
        "gen": lambda: {"g_ema": stylegan2.tiny(0).state_dict(), "latent_avg": torch.zeros(64)},
        "arc": lambda: {"conv1.weight": torch.zeros(8, 3, 3, 3), "layer1.0.conv1.weight": torch.zeros(8, 8, 3, 3),
                        "fc.weight": torch.zeros(4, 8), "features.weight": torch.zeros(4)},
        "psp": lambda: {"state_dict": {"encoder.a": torch.zeros(1), "decoder.input.input": torch.zeros(1)}},
    }
    path = tmp_path / f"{source}.pt"
    torch.save(objs[source](), path)
    with pytest.raises(VidinvertError, match=re.escape(needle)):
        loader(path)


# ---------------------------------------------------------------------------------------------
# Files that are not checkpoints
# ---------------------------------------------------------------------------------------------
class _TouchOnUnpickle:
    """Unpickling this calls open(marker, 'w'): a file appearing means the payload was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "suffix, tag, needle",
    [
        (".pkl", "torch_utils.persistence", "NVIDIA"),  # a stylegan2-ada-pytorch snapshot
        (".pkl", "plain", "NVIDIA"),  # any .pkl is refused by name
        (".pt", "dnnlib.tflib.network", "NVIDIA"),  # a renamed TensorFlow StyleGAN2 pickle
        (".pt", "plain", "plain Python pickle"),  # any other pickle renamed .pt
    ],
)
def test_pickles_are_never_unpickled(tmp_path, suffix, tag, needle):
    marker = tmp_path / "unpickled.marker"
    payload = pickle.dumps({"G_ema": _TouchOnUnpickle(marker), "module": tag}, protocol=4)
    path = tmp_path / f"network-snapshot{suffix}"
    path.write_bytes(payload)
    with pytest.raises(VidinvertError) as info:
        read_checkpoint(path)
    msg = _one_line(info)
    assert needle in msg and str(path) in msg
    if needle == "NVIDIA":
        assert "convert" in msg
    assert not marker.exists()
    # The payload is live: a plain unpickling of its twin does create the twin's marker.
    twin = tmp_path / "twin.marker"
    pickle.loads(pickle.dumps(_TouchOnUnpickle(twin))).close()
    assert twin.exists()


def test_pickle_with_foreign_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "unpickled.marker"
    path = tmp_path / "model.pt"
    torch.save({"state": _TouchOnUnpickle(marker)}, path, _use_new_zipfile_serialization=True)
    marker.unlink(missing_ok=True)  # torch.save does not create it, but be sure
    with pytest.raises(VidinvertError) as info:
        read_checkpoint(path)
    assert "weights-only" in _one_line(info) and not marker.exists()


class _Settings:
    """A custom class instance saved whole (what torch.save(model) or a config object gives)."""

    def __init__(self) -> None:
        self.size = 64


def _object_file(tmp_path: Path, kind: str, marker: Path) -> Path:
    """A torch file whose unpickling would run code or build Python objects: a custom class
    instance, a function, and a reduce call (to a module torch blocks / to open(marker, 'w'))."""
    payload = {
        "instance": {"g_ema": _Settings(), "w": torch.zeros(2)},
        "function": {"g_ema": _one_line, "w": torch.zeros(2)},
        "reduce_open": {"state": _TouchOnUnpickle(marker)},
        "reduce_blocked": {"state": _CallOnUnpickle()},
    }[kind]
    path = tmp_path / f"{kind}.pt"
    torch.save(payload, path)
    marker.unlink(missing_ok=True)
    return path


class _CallOnUnpickle:
    def __reduce__(self):
        import os

        return (os.getcwd, ())  # posix.getcwd: a module torch's weights-only unpickler blocks


OBJECTS_REFUSED = "holds Python objects that a weights-only load refuses; not loaded"


@pytest.mark.parametrize("kind", ["instance", "function", "reduce_open", "reduce_blocked"])
@pytest.mark.parametrize("loader", [load_generator, load_encoder], ids=["generator", "encoder"])
def test_torch_file_of_python_objects_is_named_as_such(tmp_path, kind, loader):
    marker = tmp_path / "ran.marker"
    path = _object_file(tmp_path, kind, marker)
    with pytest.raises(VidinvertError) as info:
        loader(path)
    msg = _one_line(info)
    assert f"{path} {OBJECTS_REFUSED}" in msg and "truncated" not in msg and "corrupt" not in msg
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>", "HTML page"),
        (b"\n  <html lang='en'><body>404</body></html>", "HTML page"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 133817807\n", "git-lfs pointer"),
        (b"", "empty"),
        (b"GIF89a not a model at all", "not a PyTorch checkpoint"),
    ],
)
def test_non_checkpoint_files_get_their_own_message(tmp_path, content, needle):
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    path.write_bytes(content)
    with pytest.raises(VidinvertError) as info:
        load_generator(path)
    msg = _one_line(info)
    assert needle in msg and str(path) in msg


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "enc.pth"
    torch.save({"a": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VidinvertError) as info:
        read_checkpoint(path)
    assert "truncated" in _one_line(info)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(VidinvertError, match="not found"):
        read_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(VidinvertError, match="is a directory"):
        load_encoder(tmp_path)


def test_legacy_format_and_optimizer_tuples_load(tmp_path):
    obj = {"g_ema": {"w": torch.arange(3.0)}, "betas": (0.9, 0.99), "od": OrderedDict(a=1), "n": None}
    torch.save(obj, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    back = read_checkpoint(tmp_path / "legacy.pt")
    assert back["betas"] == (0.9, 0.99) and torch.equal(back["g_ema"]["w"], torch.arange(3.0))


@pytest.mark.skipif(not (GOLDEN / "make_weights.py").exists(), reason=f"{GOLDEN}/make_weights.py not found")
def test_files_written_by_the_reference_make_weights_load(tmp_path):
    spec = importlib.util.spec_from_file_location("make_weights", GOLDEN / "make_weights.py")
    mw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mw)
    gen_sd, la = mw.build_tiny(salt="golden-v1")  # 64 px, style_dim 512: latent_avg (512,)
    enc_sd = fs_encoder.tiny(0).state_dict()  # the real layout, small: enough to exercise the containers
    paths = mw.write_all(str(tmp_path), enc_sd, gen_sd, la)
    g, got_la = load_generator(paths["gen_rosinality"])
    assert g.size == 64 and torch.equal(got_la, la.expand(10, 512))
    psp = read_checkpoint(paths["gen_psp"])  # weights_only accepts its 'opts' dict
    assert psp["opts"]["output_size"] == 1024 and psp["latent_avg"].shape == (18, 512)
    for key in ("enc_bare", "enc_checkpoint"):  # the training checkpoint holds tuples and lists
        assert_state_equal(load_encoder(paths[key]), enc_sd)


# ---------------------------------------------------------------------------------------------
# Where files are looked up
# ---------------------------------------------------------------------------------------------
def test_search_order_and_place_path(tmp_path, monkeypatch):
    wd, home, user = tmp_path / "wd", tmp_path / "home", tmp_path / "user"
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("VIDINVERT_HOME", str(home))
    monkeypatch.delenv("VIDINVERT_NO_USER_CACHE")
    cache = user / ".cache" / "vidinvert"
    assert search_dirs(wd) == [wd, home, cache]
    assert search_dirs() == [home, cache]
    monkeypatch.setenv("VIDINVERT_NO_USER_CACHE", "1")
    assert search_dirs(wd) == [wd, home]
    monkeypatch.delenv("VIDINVERT_NO_USER_CACHE")

    name = "143_enc.pth"
    with pytest.raises(VidinvertError) as info:
        require("fs-encoder", wd)
    assert f"place 143_enc.pth at {wd / name} " in _one_line(info)
    assert "vidinvert weights download fs-encoder" in str(info.value)
    with pytest.raises(VidinvertError, match=re.escape(f"at {home / name} ")):
        require("fs-encoder")
    monkeypatch.delenv("VIDINVERT_HOME")
    with pytest.raises(VidinvertError, match=re.escape(f"at {cache / name} ")):
        require("fs-encoder")
    monkeypatch.setenv("VIDINVERT_HOME", str(home))

    for d in (cache, home, wd):
        d.mkdir(parents=True)
    (cache / name).write_bytes(b"c")
    assert find("fs-encoder", wd) == cache / name
    (home / name).write_bytes(b"h")
    assert find("fs-encoder", wd) == home / name
    (wd / name).write_bytes(b"w")
    assert find("fs-encoder", wd) == wd / name
    assert find("fs-encoder") == home / name


def test_resolve_file(tmp_path, monkeypatch):
    home = Path(monkeypatch.setenv("VIDINVERT_HOME", str(tmp_path / "home")) or tmp_path / "home")
    home.mkdir()
    (home / "backbone.pth").write_bytes(b"x")
    own = tmp_path / "my_gen.pt"
    own.write_bytes(b"x")
    assert resolve_file(None, "arcface") == home / "backbone.pth"
    assert resolve_file("arcface", "fs-encoder") == home / "backbone.pth"
    assert resolve_file(str(own), "stylegan2-ffhq") == own
    assert resolve_file("backbone.pth", "fs-encoder") == home / "backbone.pth"  # a bare name in the search dirs
    with pytest.raises(VidinvertError, match="not found"):
        resolve_file(None, "stylegan2-ffhq")
    with pytest.raises(VidinvertError, match="known weights names"):
        resolve_file(tmp_path / "missing.pt", "stylegan2-ffhq")
    with pytest.raises(VidinvertError, match="directory"):
        resolve_file(tmp_path, "stylegan2-ffhq")
