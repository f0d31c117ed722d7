"""`vidinvert weights` (listing) and `vidinvert weights download`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_weights_download import PAYLOAD, PAYLOAD_SHA, server, srv  # noqa: F401 - fixtures
from vidinvert.cli.app import main
from vidinvert.weights import REGISTRY, registry
from vidinvert.weights.registry import WeightSpec

ROOT = Path(__file__).resolve().parents[1]


def _json(capsys, argv) -> tuple[int, dict]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_listing_json_shows_every_entry_missing_with_place_path(capsys):
    home = Path(os.environ["VIDINVERT_HOME"])
    code, data = _json(capsys, ["weights", "--json"])
    assert code == 0
    assert data["search_dirs"] == [str(home)]  # the user cache is off in tests
    rows = {r["name"]: r for r in data["weights"]}
    assert set(rows) == set(REGISTRY)
    for name, row in rows.items():
        assert row["status"] == "missing" and row["path"] is None
        assert row["place_at"] == str(home / REGISTRY[name].filename)
        assert row["url"] == REGISTRY[name].url


def test_file_in_weights_dir_is_found_and_verified(capsys, tmp_path):
    spec = REGISTRY["boundary-smiling"]  # a small file whose sha256 is known
    (tmp_path / spec.filename).write_bytes(b"not the real boundary")
    code, data = _json(capsys, ["weights", "--weights-dir", str(tmp_path), "--json"])
    rows = {r["name"]: r for r in data["weights"]}
    assert code == 0
    assert rows["boundary-smiling"]["status"] == "found"
    assert rows["boundary-smiling"]["path"] == str(tmp_path / spec.filename)
    assert rows["fs-encoder"]["status"] == "missing"
    assert rows["fs-encoder"]["place_at"] == str(tmp_path / "143_enc.pth")  # --weights-dir comes first
    assert data["search_dirs"][0] == str(tmp_path)

    code, data = _json(capsys, ["weights", "--weights-dir", str(tmp_path), "--json", "--verify"])
    row = {r["name"]: r for r in data["weights"]}["boundary-smiling"]
    assert row["status"] == "mismatch" and row["sha256"] != spec.sha256


def test_plain_listing_names_the_path_to_place_a_missing_file(capsys, tmp_path):
    assert main(["weights", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("fs-encoder"))
    assert "missing" in line and str(tmp_path / "143_enc.pth") in line


def test_download_research_only_without_accept_fails_in_one_line(capsys, tmp_path):
    code = main(["weights", "download", "fs-encoder", "--weights-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--accept-license" in errors[0]
    assert "InterDigital" in err  # the licence is printed
    assert list(tmp_path.iterdir()) == []


def test_download_unknown_name_lists_known_names(capsys):
    assert main(["weights", "download", "no-such-model"]) != 0
    err = capsys.readouterr().err
    assert "unknown weights name 'no-such-model'" in err and "fs-encoder" in err


def test_download_through_cli_then_listing_verifies(srv, capsys, tmp_path, monkeypatch):  # noqa: F811
    base, _ = srv
    spec = WeightSpec("t-cli", "t-cli.bin", f"{base}/file.bin", PAYLOAD_SHA, "Test NC", True, "test", "test file")
    monkeypatch.setitem(registry.REGISTRY, "t-cli", spec)
    code = main(["weights", "download", "t-cli", "--accept-license", "--weights-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (tmp_path / "t-cli.bin").read_bytes() == PAYLOAD
    assert str(tmp_path / "t-cli.bin") in captured.out and "Test NC" in captured.err
    code, data = _json(capsys, ["weights", "--weights-dir", str(tmp_path), "--json", "--verify"])
    assert {r["name"]: r for r in data["weights"]}["t-cli"]["status"] == "verified"


def test_offline_download_via_subprocess_is_one_red_line(tmp_path):
    env = dict(os.environ, VIDINVERT_HOME=str(tmp_path), VIDINVERT_NO_USER_CACHE="1")
    # A registry name whose URL is unreachable: point the process at a closed local port.
    code = (
        "import sys; from vidinvert.weights import registry as r; import dataclasses as d;"
        "r.REGISTRY['retinaface'] = d.replace(r.REGISTRY['retinaface'], url='http://127.0.0.1:1/x.pth');"
        "from vidinvert.cli.app import main; sys.exit(main(['weights', 'download', 'retinaface']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "http://127.0.0.1:1/x.pth" in errors[0]
    assert str(tmp_path / "detection_Resnet50_Final.pth") in errors[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["weights", "--help"], ["weights", "download", "--help"]])
def test_help(argv, capsys):
    assert main(argv) == 0
    assert "weights" in capsys.readouterr().out
