"""The studio's latency in a real headless Chromium: time to the first frame after opening a clip, and
from a strength change (typed into the slider's number box) to the exact updated image in the browser,
with the shown frame's inversion cached; and the drag preview's time as a share of the exact render's,
measured in the same changes (the preview and the exact render of one change, timed in the browser).

Tiny random models and 1024 px models with random weights in the official layout; a 1080p clip made
here (:func:`benchmarks.bench_session.make_clip`), dlib's detector, the CPU. Each change's times come
from a MutationObserver on the page's timing line (the moment each label appears, with its image) and
the moment the after image finished loading.

    python benchmarks/bench_studio.py --json studio.json
    python benchmarks/bench_studio.py --models tiny --changes 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_session import make_clip, model_files  # noqa: E402

FLAGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--no-sandbox", "--disable-dev-shm-usage"]
OBSERVE = """() => {
    window.__labels = [];
    const t = document.querySelector('#timing');
    new MutationObserver(() => window.__labels.push([performance.now(), t.innerText])).observe(
        t, {childList: true, subtree: true, characterData: true});
}"""
EXACT = """(want) => {
    const t = document.querySelector('#timing'), c = document.querySelector('#command textarea');
    const img = document.querySelector('#after img');
    return t.innerText.startsWith('exact render') && c.value.includes(want) && img && img.complete;
}"""


def _browser_binary() -> str:
    for c in ("/usr/lib/chromium/chromium", shutil.which("chromium") or ""):
        if c and Path(c).is_file():
            return c
    raise SystemExit("no chromium found (apt-get install chromium)")


def change_strength(page, value: float) -> dict:
    """Type ``value`` into the strength box; times (ms) to the preview label and to the exact image."""
    page.evaluate("() => { window.__labels = []; }")
    box = page.locator("#strength input[type=number]")
    t0 = page.evaluate("() => performance.now()")
    box.fill(f"{value:g}")
    box.press("Enter")
    page.wait_for_function(EXACT, arg=f"--strength {value:g}", timeout=600_000)
    t1 = page.evaluate("() => performance.now()")
    labels = page.evaluate("() => window.__labels")
    preview = next((t for t, text in labels if text.startswith("preview")), None)
    texts = [text for _, text in labels]
    return {"exact_ms": round(t1 - t0, 1), "preview_ms": None if preview is None else round(preview - t0, 1),
            "preview_label": next((x for x in texts if x.startswith("preview")), None),
            "exact_label": next((x for x in reversed(texts) if x.startswith("exact")), None)}


def _server_seconds(label: str | None) -> float | None:
    """The render's own seconds from a timing label (``preview (...): 0.05 s`` / ``exact render: 0.12 s (...)``)."""
    if not label:
        return None
    tail = label.split(": ")[1] if label.startswith("exact") else label.rsplit(": ", 1)[1]
    return float(tail.split(" s")[0])


def bench(kind: str, clip: Path, d: Path, changes: int) -> dict:
    from playwright.sync_api import sync_playwright

    from vidinvert.studio.request import StudioRequest
    from vidinvert.studio.server import start

    enc, gen, direction = model_files(d, kind)
    folder = d / f"in-{kind}"
    folder.mkdir()
    shutil.copy(clip, folder / clip.name)
    (folder / "dirs").mkdir()
    shutil.copy(direction, folder / "dirs" / "sefa_bench.npy")
    req = StudioRequest(input=folder / clip.name, port=0, encoder=str(enc), generator=str(gen), device="cpu",
                        detector="dlib", out_dir=d / f"out-{kind}")
    with start(req) as running, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_browser_binary(), headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.perf_counter()
        page.goto(running.url)
        page.wait_for_function("() => { const i = document.querySelector('#before img'); return i && i.complete; }",
                               timeout=600_000)
        first_frame = time.perf_counter() - t0
        page.wait_for_function(EXACT, arg="--direction", timeout=600_000)
        first_render = time.perf_counter() - t0
        page.evaluate(OBSERVE)
        rows = [change_strength(page, -1.0 - 0.5 * i) for i in range(changes)]  # never the default, 3
        browser.close()
    exact = [r["exact_ms"] for r in rows]
    shares = [_server_seconds(r["preview_label"]) / _server_seconds(r["exact_label"]) for r in rows
              if r["preview_label"] and r["exact_label"]]
    return {"models": kind, "first_frame_s": round(first_frame, 2), "first_exact_render_s": round(first_render, 2),
            "change_to_exact_ms": {"median": statistics.median(exact), "min": min(exact), "all": exact},
            "change_to_preview_ms": [r["preview_ms"] for r in rows],
            "preview_share_of_exact_render": {"median": round(statistics.median(shares), 3) if shares else None,
                                              "all": [round(s, 3) for s in shares]},
            "labels": [(r["preview_label"], r["exact_label"]) for r in rows]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "official"], choices=["tiny", "official"])
    ap.add_argument("--changes", type=int, default=5, help="strength changes timed per model")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of the 1080p clip")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clip = make_clip(d / "clip1080.mp4", args.seconds)
        rows = [bench(kind, clip, d, args.changes) for kind in args.models]
    rep = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "load_average_before": load_before, "load_average_after": os.getloadavg(),
           "date": time.strftime("%Y-%m-%d"), "results": rows}
    print(json.dumps(rep, indent=2))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
