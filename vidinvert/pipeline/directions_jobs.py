"""The jobs behind ``vidinvert directions discover`` and ``directions preview``: each a typed request
checked before anything loads, then one call that loads what it needs and returns a summary.

``discover`` factorizes the generator alone (float64 on the CPU, seconds) and, with ``preview``, also
draws a contact sheet of the found directions on a face (then the encoder loads too).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from vidinvert.edit.discover import DiscoverRequest, DiscoverResult, plan_discover, run_discover
from vidinvert.errors import VidinvertError
from vidinvert.pipeline.context import load_inverter
from vidinvert.pipeline.preview import PreviewRequest, check_preview_request, run_preview
from vidinvert.pipeline.request import ModelChoice
from vidinvert.weights import generator_file, load_generator

# Options of ``discover`` that only shape the --preview sheet.
PREVIEW_ONLY = ("preview_out", "preview_size", "at", "no_align")


@dataclass(frozen=True)
class DiscoverJob:
    """``directions discover``: the factorization (``discover``) and an optional preview sheet of the
    found directions on ``preview`` (a photo, an aligned crop with ``no_align`` or a clip frame ``at``),
    written to ``preview_out`` (default ``OUT/preview.png``) at ``preview_size``. ``explicit``: the
    options given on purpose (an encoder or dtype without a preview is refused)."""

    discover: DiscoverRequest
    models: ModelChoice = field(default_factory=ModelChoice)
    preview: Path | None = None
    preview_out: Path | None = None
    preview_size: int | None = None
    no_align: bool = False
    at: str | None = None
    explicit: frozenset[str] = frozenset()

    def preview_request(self, directions: tuple[Path, ...] = (Path("pending.npy"),)) -> PreviewRequest:
        return PreviewRequest(input=self.preview, output=self.preview_out or Path(self.discover.out_dir) / "preview.png",
                              directions=directions, at=self.at, no_align=self.no_align, preview_size=self.preview_size,
                              weights_dir=self.models.weights_dir, overwrite=self.discover.overwrite)

    def check(self) -> None:
        """What can be checked before the generator loads."""
        self.models.check()
        if self.preview is None:
            if any(getattr(self, n) not in (None, False) for n in PREVIEW_ONLY):
                raise VidinvertError("--preview-out, --preview-size, --at and --no-align need --preview FACE")
            if self.models.encoder is not None or "dtype" in self.explicit or self.models.dtype != "auto":
                raise VidinvertError("--encoder and --dtype are used by --preview only (the factorization needs"
                                     " the generator alone, in float64)")
        elif Path(self.discover.out_dir).is_dir() or self.preview_out is not None:
            check_preview_request(self.preview_request())


def run_discover_job(job: DiscoverJob) -> dict:
    """Factorize (and preview): the summary ``out``, ``index``, ``layers``, ``seconds``,
    ``directions`` (the index entries) and, with a preview, ``preview`` (its summary)."""
    job.check()
    if job.preview is None:
        gen_path = generator_file(job.models.generator, job.models.weights_dir)
        generator, _ = load_generator(gen_path)
        inverter = None
    else:
        inverter = load_inverter(job.models)
        generator, gen_path = inverter.generator, inverter.files["generator"]
    plan_discover(job.discover, generator.n_latent, generator.style_dim)
    result: DiscoverResult = run_discover(generator, job.discover, source=str(gen_path))
    summary = {"out": str(job.discover.out_dir), "index": str(result.index), "layers": result.rows,
               "seconds": result.seconds, "directions": result.entries}
    if inverter is not None:
        summary["preview"] = run_preview(inverter, job.preview_request(tuple(result.files)))
    return summary


def run_preview_job(request: PreviewRequest, models: ModelChoice) -> dict:
    """``directions preview``: check the request, load the networks ``models`` names, draw the sheet
    (the summary of :func:`~vidinvert.pipeline.preview.run_preview`)."""
    models.check()
    check_preview_request(dataclasses.replace(request, weights_dir=models.weights_dir or request.weights_dir))
    return run_preview(load_inverter(models), request)
