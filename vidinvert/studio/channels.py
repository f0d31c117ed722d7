"""Finding StyleSpace channels from the page: ``vidinvert directions channels --region R`` run on the
studio's own generator (already loaded) with light settings (:data:`FIND_SAMPLES` sampled images x
:data:`FIND_PROBES` probes at up to 128 px: about 20 passes of 4-5 s at 1024 on two CPU cores, i.e. about
1.5 minutes, estimated from docs/benchmarks.md; seconds on a GPU),
the ranked channels offered in a list; picking one adds it to the channel box (``--channel``).

The measurement is :func:`~vidinvert.edit.channels.locate_channels`, the same call the command makes
with the same settings (the page says which command lists the same channels)."""

from __future__ import annotations

import shlex

from vidinvert.edit.channels import locate_channels
from vidinvert.edit.stylespace import load_style_stats
from vidinvert.errors import VidinvertError
from vidinvert.face.regions import RegionMasker, parse_regions
from vidinvert.studio.controls import channel_specs
from vidinvert.weights import install_dir

__all__ = ["FIND_PROBES", "FIND_SAMPLES", "FIND_TOP", "add_channel", "find_channels"]

#: ``--samples``, ``--probes`` and ``--top`` of the page's search (the command's defaults are 4, 8, 20).
FIND_SAMPLES, FIND_PROBES, FIND_TOP = 2, 4, 20
#: The render size measured (the command's default).
FIND_SIZE = 128


def find_channels(studio, region: str) -> tuple[list[tuple[str, str]], str]:
    """The channels whose effect lies most inside ``region`` (best first) as ``(label, "L_C")`` choices,
    and a line saying what was measured and the command that lists the same channels."""
    if not region:
        raise VidinvertError("choose the face part the channels should act in")
    editor = studio.editor
    gen = editor.inverter.generator
    size = min(FIND_SIZE, gen.size)
    regions = parse_regions((region,))
    masker = RegionMasker(regions, editor.masker, size=size)
    stats = load_style_stats(gen, install_dir(studio.request.weights_dir))
    with editor.lock:  # one measurement or render at a time on the networks
        scores, info = locate_channels(gen, masker, stats.std, samples=FIND_SAMPLES, probes=FIND_PROBES, seed=0,
                                       render_size=size)
    choices = [(f"{c.label} · {c.share:.0%} inside · {c.name} ({c.resolution} px, w+ row {c.row})", c.label)
               for c in scores[:FIND_TOP]]
    req = studio.request
    models = [*(["--generator", str(req.generator)] if req.generator else []),
              *(["--weights-dir", str(req.weights_dir)] if req.weights_dir else [])]
    command = shlex.join(["vidinvert", "directions", "channels", "--region", ",".join(regions), "--top",
                          str(FIND_TOP), "--samples", str(FIND_SAMPLES), "--probes", str(FIND_PROBES), *models])
    note = (f"{len(choices)} of {info['measured']} channels, by the share of their effect inside {region} "
            f"({info['mask_source']} masks, {info['seconds']:.1f} s); the same list: `{command}`")
    return choices, note


def add_channel(text: str | None, pick: str) -> str:
    """The channel box's text with channel ``pick`` (``L_C``) added, unless it is there already."""
    specs = channel_specs(text)
    if pick and pick not in (s.partition("=")[0] for s in specs):
        specs += (pick,)
    return ", ".join(specs)
