"""Where the time of a short job goes: a whole-process ``vidinvert edit`` of 1 and 4 aligned photos.

Writes 1024 px models with random weights in the official layout (``{'g_ema', 'latent_avg'}`` and
a bare encoder state dict: timing only), a direction and 1024 px photos (skimage's astronaut,
shifted), then for each image count runs, each in its own fresh process:

- ``plain``: ``python -m vidinvert edit IMAGES --no-align --direction d.npy ... --json`` (wall
  clock from outside; the summary's ``timings_s`` give the networks and the image reading/writing);
- ``split``: the same command line inside an instrumented process that times the interpreter's
  start, the imports of the edit path, the model load (``Inverter.from_files``) and the command;
- ``python -c pass`` (the interpreter alone) and ``python -X importtime`` of the plain command
  (the slowest top-level imports, and whether scipy/cv2/matplotlib/torchvision/skimage load).

``--tree A B`` runs several checkouts' ``vidinvert`` (e.g. the code before and after a change) with
the same files, interleaved so that they see the same machine load.

    python benchmarks/bench_startup.py --repeats 3 --json startup.json
    python benchmarks/bench_startup.py --tree /path/to/old/checkout . --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T_START = time.time()  # the instrumented child's first line (epoch seconds, comparable across processes)
ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("scipy", "cv2", "matplotlib", "torchvision", "skimage", "sklearn", "av", "dlib", "torch._dynamo")
EDIT_PATH_MODULES = (
    "vidinvert.cli.app", "torch", "vidinvert.pipeline.inverter", "vidinvert.pipeline.images",
    "vidinvert.weights.loading", "vidinvert.models.stylegan2", "vidinvert.models.fs_encoder",
    "vidinvert.edit.directions", "vidinvert.imagefile",
)


def make_inputs(d: Path, n_images: int) -> dict:
    """Official-layout 1024 models (random weights), a 512-d direction and ``n_images`` photos."""
    import numpy as np

    gp, ep, dp = d / "stylegan2-1024.pt", d / "fs-encoder.pth", d / "d.npy"
    if not (gp.exists() and ep.exists()):
        import torch

        from vidinvert.models.fs_encoder import FeatureStyleEncoder
        from vidinvert.models.stylegan2 import Generator

        torch.manual_seed(0)
        gen, enc = Generator(1024), FeatureStyleEncoder()
        torch.save({"g_ema": gen.state_dict(), "latent_avg": torch.randn(512) * 0.1}, gp)
        torch.save(enc.state_dict(), ep)
    np.save(dp, np.random.default_rng(0).standard_normal(512).astype("float32"))
    from PIL import Image
    from skimage.data import astronaut

    base = np.asarray(Image.fromarray(astronaut()).resize((1024, 1024), Image.BICUBIC))
    faces = []
    for i in range(n_images):
        p = d / f"face{i}.png"
        if not p.exists():
            Image.fromarray(np.roll(base, 8 * i, axis=1)).save(p)
        faces.append(p)
    return {"generator": gp, "encoder": ep, "direction": dp, "faces": faces}


def edit_argv(files: dict, n: int, out: Path) -> list[str]:
    return ["edit", *map(str, files["faces"][:n]), "--no-align", "--direction", str(files["direction"]),
            "--encoder", str(files["encoder"]), "--generator", str(files["generator"]), "--out-dir", str(out),
            "--overwrite", "--device", "cpu", "--json"]


def _env(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree)}


def _run(cmd: list[str], tree: Path, cwd: Path) -> subprocess.CompletedProcess:
    # cwd away from any checkout: ``python -m vidinvert`` would import the working directory's copy first.
    return subprocess.run(cmd, env=_env(tree), cwd=cwd, capture_output=True, text=True, check=True)


def _summary(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


def run_plain(tree: Path, argv: list[str], cwd: Path) -> dict:
    t0 = time.perf_counter()
    proc = _run([sys.executable, "-m", "vidinvert", *argv], tree, cwd)
    wall = time.perf_counter() - t0
    t = _summary(proc.stdout)["timings_s"]
    networks = t["invert"] + t["edit"] + t["synthesize"]
    return {"whole_s": wall, "networks_s": networks, "read_write_s": t["read"] + t["write"],
            "outside_networks_s": wall - networks}


def run_split(tree: Path, argv: list[str], cwd: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        phases = Path(fh.name)
    t0, e0 = time.perf_counter(), time.time()
    proc = _run([sys.executable, str(Path(__file__).resolve()), "--child", str(phases), "--", *argv], tree, cwd)
    wall, e1 = time.perf_counter() - t0, time.time()
    p = json.loads(phases.read_text())
    phases.unlink()
    if Path(p["vidinvert"]) != (tree / "vidinvert").resolve():
        raise SystemExit(f"ran {p['vidinvert']}, not {tree}/vidinvert")
    t = _summary(proc.stdout)["timings_s"]
    networks, io = t["invert"] + t["edit"] + t["synthesize"], t["read"] + t["write"]
    return {"whole_s": wall,
            "interpreter_start_s": p["t_start"] - e0,
            "import_s": p["import_s"],
            "model_load_s": p["load_s"],
            "networks_s": networks,
            "read_write_s": io,
            "cli_rest_s": p["main_s"] - p["load_s"] - networks - io,  # parsing, checks, direction, progress, json
            "exit_s": e1 - p["t_end"],
            "outside_networks_s": wall - networks,
            "vidinvert": p["vidinvert"]}


def child(phases: Path, argv: list[str]) -> None:
    """The instrumented process: imports, then the CLI with ``Inverter.from_files`` timed."""
    import importlib

    t0 = time.perf_counter()
    for name in EDIT_PATH_MODULES:
        importlib.import_module(name)
    t_import = time.perf_counter() - t0
    from vidinvert.cli.app import main
    from vidinvert.pipeline.inverter import Inverter

    original = Inverter.from_files.__func__
    load = {"s": 0.0}

    def timed(cls, *args, **kwargs):
        t = time.perf_counter()
        try:
            return original(cls, *args, **kwargs)
        finally:
            load["s"] += time.perf_counter() - t

    Inverter.from_files = classmethod(timed)
    t = time.perf_counter()
    rc = main(["--quiet", *argv])
    main_s = time.perf_counter() - t
    import vidinvert

    phases.write_text(json.dumps({"t_start": T_START, "import_s": t_import, "load_s": load["s"], "main_s": main_s,
                                  "rc": rc, "vidinvert": str(Path(vidinvert.__file__).parent), "t_end": time.time()}))
    sys.stdout.flush()
    sys.exit(rc)


def python_alone() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def import_profile(tree: Path, argv: list[str], cwd: Path, top: int = 8) -> dict:
    """``-X importtime`` of the plain command: total import time, slowest top-level imports, heavy ones."""
    proc = _run([sys.executable, "-X", "importtime", "-m", "vidinvert", *argv], tree, cwd)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m:
            rows.append((int(m[1]), int(m[2]), len(m[3]) // 2, m[4]))
    names = {r[3] for r in rows}
    outer = sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[:top]
    return {"total_s": sum(r[0] for r in rows) / 1e6,
            "slowest": [(r[3], round(r[1] / 1e6, 3)) for r in outer],
            "heavy_loaded": [h for h in HEAVY if any(n == h or n.startswith(h + ".") for n in names)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each kind; the median is reported")
    ap.add_argument("--tree", type=lambda p: Path(p).resolve(), nargs="+", default=[ROOT],
                    help="checkouts whose vidinvert is run, interleaved (default: this one)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the model files here (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.argv)
        return
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        d = args.workdir or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        files = make_inputs(d, max(args.images))
        out = d / "out"
        out.mkdir(exist_ok=True)
        result = {"python_alone_s": statistics.median(python_alone() for _ in range(3)), "trees": {}}
        for tree in args.tree:
            result["trees"][str(tree)] = {"imports": import_profile(tree, edit_argv(files, 1, out), d),
                                          "runs": {}}
        for n in args.images:
            argv = edit_argv(files, n, out)
            runs = {str(tree): ([], []) for tree in args.tree}
            for _ in range(args.repeats):  # interleaved, so every tree and kind sees the same load
                for tree in args.tree:
                    runs[str(tree)][0].append(run_plain(tree, argv, d))
                    runs[str(tree)][1].append(run_split(tree, argv, d))
            for tree, (plain, split) in runs.items():
                med = {k: statistics.median(r[k] for r in plain) for k in plain[0]}
                med_split = {k: statistics.median(r[k] for r in split) for k in split[0] if k != "vidinvert"}
                result["trees"][tree]["runs"][n] = {"plain": med, "split": med_split,
                                                    "vidinvert": split[0]["vidinvert"]}
                print(f"{tree}, {n} image(s): plain {med['whole_s']:.2f} s whole, {med['networks_s']:.2f} s "
                      f"networks, {med['outside_networks_s']:.2f} s outside them | split: " +
                      ", ".join(f"{k} {v:.2f}" for k, v in med_split.items()), flush=True)
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
