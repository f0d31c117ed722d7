"""The shape of the code, checked: layers point down, no import circle, the start-up path stays
torch-free, the CLI is generated from the request, and a first run without model files says what to
fetch in a few short lines."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "vidinvert"

# The layers of the README's architecture section, lowest first (a module may import its own layer
# and the ones below). ``__main__`` modules are entry points (they start the CLI) and sit on top.
LAYERS = {
    "base": ("errors", "version", "choices", "specs", "timespec", "device", "memory", "distributed", "threads",
             "mediatypes", "convert", "fileio"),
    "networks": ("models", "weights"),
    "media": ("video", "face", "imagefile", "inputs"),
    "domain": ("edit", "metrics"),
    "engine": ("engine",),
    "jobs": ("pipeline", "evaluate", "train", "runinfo"),
    "interface": ("cli", "studio"),
}
RANK = {top: i for i, (_, tops) in enumerate(LAYERS.items()) for top in tops}
# Modules read before any model loads: they must not import torch (in-function imports of heavier
# modules are allowed in these, after the inputs are checked).
TORCH_FREE = ("vidinvert", "vidinvert.errors", "vidinvert.version", "vidinvert.choices", "vidinvert.specs", "vidinvert.memory",
              "vidinvert.timespec", "vidinvert.fileio", "vidinvert.mediatypes", "vidinvert.inputs",
              "vidinvert.imagefile", "vidinvert.weights", "vidinvert.weights.registry", "vidinvert.weights.directions",
              "vidinvert.pipeline.request", "vidinvert.pipeline.settings", "vidinvert.pipeline.plan",
              "vidinvert.pipeline.needs", "vidinvert.pipeline.results", "vidinvert.pipeline.job",
              "vidinvert.pipeline.corpus_job", "vidinvert.cli.app", "vidinvert.cli.jobs", "vidinvert.cli.common",
              "vidinvert.models.stylespace", "vidinvert.studio", "vidinvert.studio.request",
              "vidinvert.cli.studio_cmd", "vidinvert.distributed")
# Outside the start-up modules imports go at the module top; inside functions only these libraries,
# optional extras or heavy ones a single code path needs (loaded on use: a run that never draws a
# report does not pay matplotlib's import).
DEFERRED = ("dlib", "open_clip", "gradio", "uvicorn", "fastapi", "sklearn", "pytorch_optimizer", "lpips",
            "facexlib", "matplotlib", "torch.utils.tensorboard", "decord")


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = _modules()


def _imports(path: Path, *, top_level_only: bool) -> list[tuple[str, int]]:
    """``(imported vidinvert module, line)`` of every import in ``path`` (only those run at import time
    with ``top_level_only``: not inside functions, not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST] = []
    if top_level_only:
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                stack += node.body + node.orelse + getattr(node, "handlers", [])
            elif isinstance(node, ast.ExceptHandler):
                stack += node.body
            else:
                nodes.append(node)
    else:
        nodes = list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("vidinvert")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("vidinvert"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.append((sub if sub in MODULES else node.module, node.lineno))
    return out


def _top(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_has_a_layer():
    tops = {_top(m) for m in MODULES} - {None, "__main__"}
    assert tops <= set(RANK), tops - set(RANK)


def test_dependencies_point_down_and_nothing_imports_the_package_root():
    upward, root = [], []
    for name, path in MODULES.items():
        top = _top(name)
        if top is None or name.endswith("__main__"):
            continue
        for target, line in _imports(path, top_level_only=False):
            if target == "vidinvert":
                root.append(f"{name}:{line}")
            elif RANK[_top(target)] > RANK[top]:
                upward.append(f"{name}:{line} -> {target}")
    assert not upward, upward
    assert not root, root  # base modules read the version from vidinvert.version


def test_no_import_circle():
    """Over every import, in-function ones included (an import deferred into a function is still a circle)."""
    graph = {name: {t for t, _ in _imports(p, top_level_only=False) if t != name} for name, p in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles[:3]


def test_start_up_modules_stay_torch_free():
    """Torch-free, and gradio-free: only ``vidinvert studio`` itself loads the studio's page."""
    code = textwrap.dedent(f"""
        import importlib, json, sys
        bad = []
        for name in {list(TORCH_FREE)!r}:
            importlib.import_module(name)
            if "torch" in sys.modules or "gradio" in sys.modules:
                bad.append(name)
                break
        print(json.dumps(bad))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == []


def _start_up_modules() -> set[str]:
    """Every vidinvert module loaded by the start-up modules and the CLI's start (``vidinvert --help``)."""
    code = textwrap.dedent(f"""
        import importlib, json, sys
        for name in {list(TORCH_FREE)!r} + ["vidinvert.cli.app"]:
            importlib.import_module(name)
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("vidinvert"))))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout))


def test_imports_sit_at_the_module_top_outside_the_start_up_modules():
    start_up = _start_up_modules()
    assert "vidinvert.cli.app" in start_up and "vidinvert.engine" not in start_up
    inside = []
    for name, path in MODULES.items():
        if name in start_up:
            continue
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    if not all(any(m == d or m.startswith(d + ".") for d in DEFERRED) for m in mods):
                        inside.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert not inside, inside


def test_no_function_over_80_lines():
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                key = f"{path.relative_to(ROOT).as_posix()}:{node.name}"
                long.append(f"{key} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


# ---------------------------------------------------------------------------------- the request
def test_every_request_field_is_an_option_and_every_option_a_field():
    import typer.main

    from vidinvert.cli.app import app
    from vidinvert.pipeline.request import EditRequest, InvertRequest

    group = typer.main.get_command(app)
    for name, cls in (("invert", InvertRequest), ("edit", EditRequest)):
        params = {p.name for p in group.commands[name].params}
        fields = {f.name for f in dataclasses.fields(cls)} - {"explicit"}
        assert params - {"as_json", "quiet"} == fields, (name, params ^ fields)


def test_an_option_added_to_the_request_appears_on_the_command_line():
    """The README's contributing example: a field declared with ``option`` is parsed by the CLI and
    reaches the request without touching the CLI module."""
    from vidinvert.cli.jobs import build_request, request_parameters
    from vidinvert.pipeline.request import EditRequest, option

    @dataclasses.dataclass(frozen=True)
    class WithGrain(EditRequest):
        grain: float = option(0.0, "Film grain to add (0: none).", panel="Edit")

    params = {p.name: p for p in request_parameters(WithGrain)}
    assert params["grain"].default == 0.0 and params["grain"].annotation.__metadata__[0].help.startswith("Film")
    options = {p: params[p].default for p in params} | {"inputs": ["a.mp4"], "grain": 0.5, "attr": ["smile"]}
    req = build_request(WithGrain, options, frozenset({"grain"}))
    assert req.grain == 0.5 and req.given("grain") and req.attr == ("smile",)


def test_face_layer_defaults_are_the_requests():
    """The face stage's own defaults (library use) cannot drift from the request's."""
    from vidinvert.face.smooth import SmoothConfig
    from vidinvert.face.stage import FaceConfig
    from vidinvert.pipeline.request import EditRequest

    d = EditRequest.defaults()
    sm = SmoothConfig()
    assert (sm.sigma_center, sm.sigma_axes) == tuple(float(x) for x in d["crop_sigma"].split(","))
    assert sm.max_gap == d["max_gap"] and FaceConfig().detector == d["detector"]


def test_resolved_settings_reach_the_job_configurations(tmp_path):
    """Every request value a clip or photo job reads arrives through the one resolution."""
    from vidinvert.device import resolve_compute
    from vidinvert.pipeline.photo import PhotoConfig
    from vidinvert.pipeline.request import EditRequest
    from vidinvert.pipeline.settings import JobSettings
    from vidinvert.pipeline.video_config import VideoConfig, face_config
    from vidinvert.timespec import Keyframes

    d = tmp_path / "d.npy"
    d.write_bytes(b"")
    req = EditRequest(inputs=("a.mp4",), direction=(d,), strength="0s:0,1s:2", paste="full", color_match=True,
                      smooth_latents=1.5, fine_mean=True, codec="libx265", crf=20, preset="fast", resume=True,
                      side_by_side=True, identity=False, crop_sigma="1,3", max_gap=0.25, face="all", min_face=12,
                      detector="dlib", flow_refine=True, start="1s", preview=True, batch_size=5)
    s = JobSettings.resolve(req)
    cfg = VideoConfig.from_settings(s, batch_size=s.batch_size("video", resolve_compute("cpu", "fp32"), 64),
                                    frames_dir=None)
    assert isinstance(cfg.strength, Keyframes) and cfg.batch_size == 5
    assert (cfg.paste_mode, cfg.color_match, cfg.latent_sigma, cfg.fine_mean) == ("full", True, 1.5, True)
    assert (cfg.codec, cfg.crf, cfg.preset, cfg.resume, cfg.side_by_side, cfg.report_identity) == \
        ("libx265", 20.0, "fast", True, True, False)
    assert type(cfg.codec) is str  # PyAV takes no str subclass
    face = face_config(s, "cpu")
    assert (face.smooth.sigma_center, face.smooth.sigma_axes, face.smooth.max_gap) == (1.0, 3.0, 0.25)
    assert face.detector == "dlib" and face.track.flow_refine and str(face.track.select) == "all"
    assert s.time_range.start.seconds == 1.0 and s.time_range.end.seconds == 3.0  # a preview renders 2 s
    photo = PhotoConfig.from_settings(s.for_kind("photo"))
    assert (photo.face_select, photo.min_face, photo.paste_mode, photo.detector) == ("all", 12, "full", "dlib")


# ---------------------------------------------------------------------------------- a first run
@pytest.mark.parametrize("detector", [None, "retinaface"])
def test_first_run_without_model_files_says_what_to_fetch(tmp_path, detector):
    """The README's main command in an empty home: a few short lines naming every missing file and the
    one fetch command, before torch is imported."""
    from tests.face_clips import make_face_clip

    clip = make_face_clip(tmp_path / "clip.mp4", n_frames=3)
    home = tmp_path / "home"
    home.mkdir()
    code = textwrap.dedent(f"""
        import sys
        from vidinvert.cli.app import main
        rc = main(["edit", {str(clip)!r}, "--attr", "smile"] + {["--detector", detector] if detector else []!r})
        print("torch" in sys.modules, rc)
    """)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "VIDINVERT_NO_USER_CACHE": "", "COLUMNS": "300"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=env, check=True)
    torch_loaded, rc = out.stdout.split()
    lines = out.stderr.strip().splitlines()
    assert rc != "0" and torch_loaded == "False", out.stderr
    assert 1 < len(lines) <= 4 and all(len(line) <= 200 for line in lines), lines
    text = "\n".join(lines)
    for word in ("143_enc.pth", "stylegan2-ffhq-config-f.pt", "Smiling_boundary.npy", str(home / ".cache" / "vidinvert"),
                 "vidinvert weights download fs-encoder stylegan2-ffhq boundary-smiling"):
        assert word in text, (word, text)
    if detector == "retinaface":  # the detector asked for is missing too, and fetched by the same command
        from vidinvert.weights.registry import REGISTRY

        assert REGISTRY["retinaface"].filename in text and "boundary-smiling retinaface" in text, text
    assert "encoder4editing" not in text  # the long list of direction sources lives in `vidinvert weights`


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_is_accepted_before_and_after_the_command(tmp_path, capsys, where):
    from vidinvert.cli.app import main

    args = ["info", str(tmp_path / "missing.mp4")]
    assert main(["-q", *args] if where == "before" else [*args, "-q"]) == 1
    assert "error:" in capsys.readouterr().err
