"""``eval --images`` refuses the video-only options the user gave (and only those): no models needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vidinvert.cli import eval_cmd
from vidinvert.cli.app import main
from vidinvert.errors import VidinvertError


@pytest.mark.parametrize(("option", "value"), [("--modality", "audio-video"), ("--modality", "video-only"),
                                               ("--detector", "dlib"), ("--detector", "auto")])
def test_images_refuse_video_options_given_on_the_command_line(tmp_path, capfd, option, value):
    # The default value given explicitly is refused too: what counts is that the user gave it.
    assert main(["eval", "--images", str(tmp_path), option, value, "--device", "cpu"]) == 1
    err = capfd.readouterr().err.strip()
    assert option in err and "--images" in err and len(err.splitlines()) == 1


def test_both_named_in_turn_and_videos_keep_them(tmp_path, capfd):
    assert main(["eval", "--images", str(tmp_path), "--detector", "dlib", "--modality", "audio-video"]) == 1
    assert "--modality" in capfd.readouterr().err  # the first one is named; fixing it shows the next
    assert main(["eval", "--images", str(tmp_path), "--detector", "dlib"]) == 1
    assert "--detector" in capfd.readouterr().err
    # A video source takes both: the run gets past the check (and fails later, on the missing folder).
    assert main(["eval", str(tmp_path / "missing"), "--modality", "audio-video", "--detector", "dlib"]) == 1
    err = capfd.readouterr().err
    assert "not found" in err and "applies to videos" not in err


def test_images_without_them_pass_the_check(tmp_path, capfd):
    assert main(["eval", "--images", str(tmp_path), "--device", "cpu"]) == 1  # an empty folder: another error
    err = capfd.readouterr().err
    assert err.strip() and "applies to videos" not in err


def test_environment_counts_as_given_a_default_does_not():
    class Ctx:  # what refuse_video_options reads of typer's context: the source of each parameter
        def __init__(self, sources):
            self.sources = sources

        def get_parameter_source(self, name):
            return SimpleNamespace(name=self.sources.get(name, "DEFAULT"))

    with pytest.raises(VidinvertError, match="--detector"):
        eval_cmd.refuse_video_options(Ctx({"detector": "ENVIRONMENT"}))
    eval_cmd.refuse_video_options(Ctx({"detector": "DEFAULT_MAP", "modality": "DEFAULT"}))
