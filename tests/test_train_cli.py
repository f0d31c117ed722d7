"""``vidinvert train CONFIG`` / ``train run`` / ``train export`` / ``--resume`` through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from tests.test_train_loop import train_records, write_faces

TINY = ROOT / "configs" / "tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def main():
    """``vidinvert.cli.app.main`` (the train and directions groups are part of the app)."""
    from vidinvert.cli.app import main as cli_main

    return cli_main


@pytest.mark.parametrize(
    "argv, text",
    [
        (["train", "--help"], "export"),
        (["train", "run", "--help"], "--resume"),
        (["train", "export", "--help"], "bare encoder state dict"),
        (["train", str(TINY), "--help"], "--set"),  # the short form reaches `run`
        (["directions", "fit", "--help"], "--labels"),
    ],
)
def test_help(main, capsys, argv, text):
    assert main(argv) == 0
    assert text in capsys.readouterr().out


def test_train_resume_export_via_cli(main, capsys, tmp_path):
    faces = write_faces(tmp_path / "faces", n=4)
    run = tmp_path / "run"
    sets = ["--set", f"data.real_dir={faces}", "--set", "data.batch_real=1", "--set", "data.batch_synthetic=1",
            "--set", "log.tensorboard=false", "--set", "log.val_every=100", "--set", "log.image_every=100"]
    assert main(["train", str(TINY), "--run-dir", str(run), "--set", "schedule.iterations=1", *sets]) == 0
    assert "finished at iteration 1" in capsys.readouterr().out
    # a second start into the same folder is refused with one line
    assert main(["train", str(TINY), "--run-dir", str(run), *sets]) == 1
    err = capsys.readouterr().err
    assert "is not empty: pass --resume" in err and "Traceback" not in err
    # resume without CONFIG, longer schedule
    assert main(["train", "--resume", "--run-dir", str(run), "--set", "schedule.iterations=2"]) == 0
    capsys.readouterr()
    assert [r["iteration"] for r in train_records(run)] == [1, 2]
    # export writes the bare state dict of the latest checkpoint
    out = tmp_path / "enc.pth"
    assert main(["train", "export", str(run), str(out)]) == 0
    assert "iteration 2" in capsys.readouterr().out
    sd = torch.load(out, weights_only=True)
    assert "styles.0.weight" in sd and not any(k.startswith(("module.", "_orig_mod.")) for k in sd)
    assert all(torch.equal(sd[k], v) for k, v in torch.load(run / "encoder.pth", weights_only=True).items())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "optim.lrr=1"], "unknown config key 'optim.lrr'"),
        (["--set", "optim.lr=abc"], "optim.lr: expected a number"),
        (["--resume"], "config.yaml not found"),
    ],
)
def test_bad_input_is_one_red_line(main, capsys, tmp_path, extra, message):
    assert main(["train", str(TINY), "--run-dir", str(tmp_path / "r"), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_export_of_a_folder_without_checkpoints(main, capsys, tmp_path):
    assert main(["train", "export", str(tmp_path), str(tmp_path / "x.pth")]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_python_m_vidinvert_train_is_vidinvert_train(args):
    """``python -m vidinvert.train ARGS`` prints what the ``vidinvert`` console script prints for
    ``vidinvert train ARGS`` (the script is ``vidinvert.cli.app:entry``)."""
    script = Path(sys.executable).with_name("vidinvert")
    console = [str(script)] if script.exists() else [sys.executable, "-c", "from vidinvert.cli.app import entry; entry()"]
    a = _run([sys.executable, "-m", "vidinvert.train", *args])
    b = _run([*console, "train", *args])
    assert a.returncode == b.returncode == 0, a.stderr[-2000:] + b.stderr[-2000:]
    assert "Usage: vidinvert train" in a.stdout
    assert a.stdout == b.stdout and a.stderr == b.stderr


def test_importing_vidinvert_train_does_not_import_the_cli():
    code = ("import sys, vidinvert.train, vidinvert.train.__main__; "
            "print(sorted(m for m in sys.modules if m.startswith('vidinvert.cli')))")
    r = _run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"
