"""Which videos and images the benchmark takes: RAVDESS modality rule, folders, globs, list files, sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidinvert.errors import VidinvertError
from vidinvert.evaluate.datasets import MediaItem, dedupe_ravdess, discover_images, discover_videos, sample_items


def _touch(root: Path, *names: str) -> list[Path]:
    out = []
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
        out.append(p)
    return out


@pytest.fixture()
def ravdess(tmp_path):
    root = tmp_path / "ravdess"
    _touch(root,
           "Actor_01/01-01-01-01-01-01-01.mp4", "Actor_01/02-01-01-01-01-01-01.mp4",  # both modalities
           "Actor_01/01-01-02-01-01-01-01.mp4",                                       # audio-video only
           "Actor_01/02-01-03-01-01-02-01.mp4",                                       # video-only only
           "Actor_02/01-02-01-01-01-01-02.mp4", "Actor_02/02-02-01-01-01-01-02.mp4",  # song, both
           "Actor_02/03-01-01-01-01-01-02.wav",                                       # audio only: not a video
           "Actor_02/notes.txt", "other/interview.mov")
    return root


def test_each_ravdess_clip_is_counted_once_video_only_first(ravdess):
    items, info = discover_videos(ravdess)
    keys = [it.key for it in items]
    assert keys == sorted(keys)
    assert keys == [
        "Actor_01/01-01-02-01-01-01-01.mp4",  # fallback: no video-only file of this clip
        "Actor_01/02-01-01-01-01-01-01.mp4",
        "Actor_01/02-01-03-01-01-02-01.mp4",
        "Actor_02/02-02-01-01-01-01-02.mp4",
        "other/interview.mov",  # not RAVDESS-named: kept as it is
    ]
    assert info["files_found"] == 7 and info["clips"] == 5 and info["duplicates_dropped"] == 2
    assert info["ravdess_clips"] == 4 and info["selected"] == 5


def test_modality_audio_video_prefers_01_and_falls_back_to_02(ravdess):
    items, _ = discover_videos(ravdess, modality="audio-video")
    assert [it.key for it in items] == [
        "Actor_01/01-01-01-01-01-01-01.mp4",
        "Actor_01/01-01-02-01-01-01-01.mp4",
        "Actor_01/02-01-03-01-01-02-01.mp4",  # fallback
        "Actor_02/01-02-01-01-01-01-02.mp4",
        "other/interview.mov",
    ]
    with pytest.raises(VidinvertError, match="modality"):
        discover_videos(ravdess, modality="audio")


def test_same_name_in_two_actor_folders_is_two_clips(tmp_path):
    files = _touch(tmp_path, "A/02-01-01-01-01-01-01.mp4", "B/02-01-01-01-01-01-01.mp4")
    assert dedupe_ravdess(files) == files


def test_glob_and_list_file(ravdess, tmp_path):
    items, _ = discover_videos(str(ravdess / "Actor_01" / "02-*.mp4"))
    assert [it.path.name for it in items] == ["02-01-01-01-01-01-01.mp4", "02-01-03-01-01-02-01.mp4"]
    lst = tmp_path / "clips.txt"
    lst.write_text(f"# my clips\nravdess/other/interview.mov\n\n{ravdess / 'Actor_01/01-01-01-01-01-01-01.mp4'}\n"
                   "ravdess/Actor_01/02-01-01-01-01-01-01.mp4\n")
    items, info = discover_videos(lst)
    # relative lines are relative to the list's folder; the two modalities of one clip count once
    assert [it.key for it in items] == ["ravdess/Actor_01/02-01-01-01-01-01-01.mp4", "ravdess/other/interview.mov"]
    assert info["duplicates_dropped"] == 1


def test_sampling_is_reproducible_and_order_free(ravdess):
    all_items, _ = discover_videos(ravdess)
    a, _ = discover_videos(ravdess, sample=3, seed=5)
    b, _ = discover_videos(ravdess, sample=3, seed=5)
    assert [i.key for i in a] == [i.key for i in b] and len(a) == 3
    assert {i.key for i in a} <= {i.key for i in all_items}
    # the draw depends on the set of keys only, not on the order they were found in
    shuffled = sample_items(list(reversed(all_items)), 3, 5)
    assert [i.key for i in shuffled] == [i.key for i in a]
    draws = {tuple(i.key for i in sample_items(all_items, 3, s)) for s in range(10)}
    assert len(draws) > 1  # the seed matters
    assert len(sample_items(all_items, 50, 0)) == len(all_items)


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(VidinvertError, match="not found"):
        discover_videos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VidinvertError, match="no video files"):
        discover_videos(tmp_path / "empty")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(VidinvertError, match="neither"):
        discover_videos(tmp_path / "x.json")


def test_images_first_n_then_sample(tmp_path):
    _touch(tmp_path, *[f"{i:05d}.jpg" for i in range(12)], "readme.md", ".hidden/00099.png")
    items, info = discover_images(tmp_path, limit=10)
    assert [it.key for it in items] == [f"{i:05d}.jpg" for i in range(10)]
    items, _ = discover_images(tmp_path, limit=10, sample=4, seed=1)
    assert len(items) == 4 and all(int(it.key[:5]) < 10 for it in items)


def test_cache_names_are_unique_and_flat():
    a = MediaItem(Path("x"), "Actor_01/02-01.mp4")
    b = MediaItem(Path("y"), "Actor_01_02-01.mp4")
    assert "/" not in a.cache_name and a.cache_name != b.cache_name
