"""Training configuration: shipped YAML files, dotted overrides with type checks, resume rules."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from vidinvert.errors import VidinvertError
from vidinvert.train.config import (
    TrainConfig,
    apply_overrides,
    dump_config,
    flatten,
    load_config,
    resume_differences,
)

CONFIGS = ROOT / "configs"


def test_paper_config_is_the_paper_recipe():
    cfg = load_config(CONFIGS / "ffhq.yaml")
    assert cfg.loss.recipe == "paper"
    assert (cfg.data.batch_real, cfg.data.batch_synthetic) == (2, 2)
    assert (cfg.loss.l2, cfg.loss.lpips, cfg.loss.identity, cfg.loss.parsing, cfg.loss.feature) == (1.0, 0.2, 0.1, 0.1, 0.01)
    assert cfg.optim.lr == 1e-4 and cfg.optim.name == "ranger"
    # 12 epochs of 10,000 iterations; lr / 10 for the last two epochs only
    assert cfg.schedule.iterations == 120_000
    assert cfg.optim.lr_step == 100_000 and cfg.optim.lr_gamma == 0.1
    assert cfg.schedule.fade_in == 0


def test_official_config_differs_exactly_where_documented():
    paper = flatten(load_config(CONFIGS / "ffhq.yaml"))
    official = flatten(load_config(CONFIGS / "ffhq_official.yaml"))
    diff = {k for k in paper if paper[k] != official[k]}
    expected = {
        "data.batch_real", "data.batch_synthetic", "loss.recipe", "schedule.fade_in",  # the recipe
        "model.generator", "data.val_fraction", "data.workers",  # pSp file, train_split 0.9
        "log.image_every", "log.val_every", "log.val_images",  # logging only
    }
    assert diff == expected
    assert (official["data.batch_real"], official["data.batch_synthetic"]) == (1, 1)
    assert official["loss.recipe"] == "official" and official["schedule.fade_in"] == 10_000
    assert official["optim.betas"] == [0.95, 0.999] and official["optim.weight_decay"] == 0.0


def test_tiny_config_needs_no_weight_files():
    cfg = load_config(CONFIGS / "tiny.yaml")
    assert cfg.model.generator == "tiny" and cfg.model.encoder == "tiny" and cfg.model.encoder_init == "random"
    assert cfg.loss.lpips_net == "random" and cfg.loss.identity_net == "random-tiny" and cfg.loss.parsing_net == "random"
    from vidinvert.train.build import resolve_files

    assert all(v is None for v in resolve_files(cfg).values())


def test_overrides_are_parsed_and_type_checked():
    cfg = apply_overrides(TrainConfig(), [
        "optim.lr=5e-5", "optim.betas=[0.9, 0.99]", "data.real_dir=/data/faces", "schedule.iterations=10",
        "loss.identity=0", "log.tensorboard=false", "seed=3", "optim.lr_gamma=1",
    ])
    assert cfg.optim.lr == 5e-5 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.9, 0.99)
    assert cfg.data.real_dir == "/data/faces"
    assert cfg.schedule.iterations == 10 and cfg.loss.identity == 0.0 and cfg.log.tensorboard is False
    assert cfg.seed == 3 and cfg.optim.lr_gamma == 1.0 and isinstance(cfg.optim.lr_gamma, float)
    assert apply_overrides(cfg, ["data.real_dir=null"]).data.real_dir is None
    assert TrainConfig().optim.lr == 1e-4  # frozen: the original is untouched


@pytest.mark.parametrize(
    "item, message",
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr': valid keys in optim are optim.name, optim.lr"),
        ("nope=1", "unknown config key 'nope'"),
        ("optim.lr=fast", "optim.lr: expected a number"),
        ("schedule.iterations=2.5", "schedule.iterations: expected an integer"),
        ("log.tensorboard=maybe", "log.tensorboard: expected true or false"),
        ("optim.betas=[0.9]", "optim.betas: expected a list of 2 values"),
        ("optim=1", "is a section"),
        ("seed.x=1", "seed is a value, not a section"),
        ("optim.lr", "expected KEY=VALUE"),
    ],
)
def test_override_errors_name_the_key(item, message):
    with pytest.raises(VidinvertError, match=message.replace("[", r"\[").replace("(", r"\(")):
        apply_overrides(TrainConfig(), [item])


def test_value_checks(tmp_path):
    with pytest.raises(VidinvertError, match="loss.recipe: choose one of paper, official"):
        load_config(CONFIGS / "tiny.yaml", ["loss.recipe=mine"])
    with pytest.raises(VidinvertError, match="loss.l2: a loss weight cannot be negative"):
        load_config(CONFIGS / "tiny.yaml", ["loss.l2=-1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: 1\n")
    with pytest.raises(VidinvertError, match=r"bad.yaml: unknown config key optim.learning_rate"):
        load_config(bad)
    bad.write_text("optim: [1, 2]\n")
    with pytest.raises(VidinvertError, match="config section optim: expected a mapping"):
        load_config(bad)
    with pytest.raises(VidinvertError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("k", ["4", "3", "6"])
def test_feature_index_other_than_five_is_refused_in_one_line(k):
    """Inference injects F at K=5 and the exported encoder cannot say otherwise, so training at
    K=4 (also a 16x16 layer) would export an encoder that inverts wrongly."""
    with pytest.raises(VidinvertError) as info:
        load_config(CONFIGS / "tiny.yaml", [f"model.feature_index={k}"])
    msg = str(info.value)
    assert "\n" not in msg and "model.feature_index: must be 5" in msg and f"got {k}" in msg
    assert load_config(CONFIGS / "tiny.yaml", ["model.feature_index=5"]).model.feature_index == 5


def test_dump_and_reload_is_identity(tmp_path):
    cfg = load_config(CONFIGS / "ffhq_official.yaml", ["optim.lr=3e-5", "data.real_dir=/x"])
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg


def test_resume_may_change_only_safe_keys():
    cfg = load_config(CONFIGS / "tiny.yaml")
    longer = apply_overrides(cfg, ["schedule.iterations=100", "log.every=5", "data.workers=3", "schedule.stop_at=50"])
    assert resume_differences(cfg, longer) == []
    changed = apply_overrides(cfg, ["optim.lr=0.5", "data.batch_synthetic=2"])
    assert sorted(resume_differences(cfg, changed)) == ["data.batch_synthetic", "optim.lr"]
