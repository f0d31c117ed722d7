"""What the inputs of one request share once the models are loaded: :class:`JobContext`.

:func:`load_context` builds it from the resolved settings: the :class:`~vidinvert.engine.Inverter`,
each output's edit, the :class:`~vidinvert.pipeline.edits.EditPlan` (strength and feature-keep
schedules, regions, the style reference inverted once), the identity embedder and the parsing masker.
The jobs and the editing session read it; nothing here runs per input.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from vidinvert.device import Compute, dtype_notice, resolve_compute, warn_cpu_fallback
from vidinvert.edit.conditional import restrict_and_condition
from vidinvert.edit.directions import EditSpec, load_named
from vidinvert.edit.layers import parse_layers, rows_mask
from vidinvert.edit.style import reference_crop
from vidinvert.edit.stylespace import StyleDirection
from vidinvert.engine import Inverter
from vidinvert.face import masks as face_masks
from vidinvert.face.regions import RegionMasker, parse_regions
from vidinvert.metrics import identity
from vidinvert.models.stylespace import is_style_direction_path
from vidinvert.pipeline.edits import EditPlan, StyleReference
from vidinvert.pipeline.photo import make_photo_detector
from vidinvert.pipeline.request import PHOTO, VIDEO, EditRequest, ModelChoice
from vidinvert.pipeline.settings import JobSettings
from vidinvert.pipeline.style_edits import precheck_style_edits, style_directions
from vidinvert.pipeline.text_edits import precheck_text, request_text_styles
from vidinvert.weights import model_files

log = logging.getLogger("vidinvert")


@dataclass
class JobContext:
    """The loaded models and edits of one request: ``edits`` is each output's ``(tag, EditSpec | None)``
    in the request's tag order (None: the style alone); ``plan`` the edits every output shares;
    ``embedder`` the identity network (None without identity metrics); ``masker`` the parsing masker
    (None: landmark masks)."""

    inverter: Inverter
    edits: tuple[tuple[str, EditSpec | None], ...] = ()
    plan: EditPlan | None = None
    embedder: identity.IdentityEmbedder | None = None
    masker: face_masks.ParsingMasker | None = None

    @property
    def compute(self) -> Compute:
        return self.inverter.compute


def load_inverter(models: ModelChoice) -> Inverter:
    """The encoder and generator ``models`` names, on its device (one loud line when that is the
    CPU by surprise)."""
    enc_path, gen_path = model_files(models.encoder, models.generator, models.weights_dir)
    compute = resolve_compute(models.device, models.dtype)
    warn_cpu_fallback(compute, models.device)
    log.info(dtype_notice(compute))
    return Inverter.from_files(enc_path, gen_path, compute)


def load_context(s: JobSettings, kinds: set[str], *, inverter: Inverter | None = None) -> JobContext:
    """Load the models once for inputs of ``kinds`` (``inverter``: reuse one already loaded)."""
    req = s.request
    if inverter is None:
        if s.edit is not None:
            precheck_style_edits(s.edit)  # an unknown channel or another generator's S file: before loading
            e = s.edit
            precheck_text(e.text, e.text_neutral, e.text_matrix, e.generator, e.weights_dir)
        inverter = load_inverter(req.models)
    ctx = JobContext(inverter)
    device = inverter.compute.device
    if kinds & {VIDEO, PHOTO}:
        ctx.masker = face_masks.load_parsing_masker(req.weights_dir, device)
    if s.edit is not None:
        ctx.edits, ctx.plan = edit_plan(s, inverter, ctx.masker)
    if req.identity and (VIDEO in kinds or req.report is not None):
        ctx.embedder = identity.make_identity_embedder(req.weights_dir, device)
    return ctx


def edit_plan(s: JobSettings, inv: Inverter, masker) -> tuple[tuple, EditPlan]:
    """The outputs' edits and the job's :class:`~vidinvert.pipeline.edits.EditPlan` (the style
    reference found, aligned and inverted here, once)."""
    req: EditRequest = s.edit
    specs = direction_specs(req, inv) if req.has_directions else ()
    edits = tuple(zip(req.tags, specs or (None,)))
    plan = EditPlan(strength=s.strength, feature_keep=s.feature_keep)
    if req.region:
        plan.regions = RegionMasker(parse_regions(req.region), masker)
    if req.style is not None:
        rows = rows_mask(parse_layers(req.style_layers, inv.n_latent, what="--style-layers"), inv.n_latent)
        detector = None
        if not req.no_align:
            detector = make_photo_detector(req.detector, req.weights_dir, inv.compute.device)
        crop = reference_crop(req.style, inv.size, detector=detector, align=not req.no_align,
                              device=inv.compute.device)
        plan.style = StyleReference(req.style, inv.invert(crop).w.cpu(), s.style_strength, rows, crop=crop)
    return edits, plan


def direction_specs(req: EditRequest, inv: Inverter) -> tuple[EditSpec, ...]:
    """The direction edits in the request's order (``attr``, ``direction``, the ``channel`` edit),
    restricted to ``layers`` (w+ rows; S layers driven by them) and made orthogonal to ``keep``
    (w+ only), named by the output tags. With ``combine`` one spec holds them all (the w+ part
    first, then S on the edited styles)."""
    n, d = inv.n_latent, inv.style_dim
    names = (*req.attr, *req.direction)
    dirs = [load_named(name, n, d, req.weights_dir) for name in names if not is_style_direction_path(name)]
    if dirs and (req.layers is not None or req.keep):
        kept = [load_named(k, n, d, req.weights_dir) for k in req.keep]
        dirs = restrict_and_condition(dirs, n_latent=n, layers=req.layers, keep=kept)
    styles = style_directions(req, inv) if req.style_edits else []
    w_iter, s_iter = iter(dirs), iter(styles)
    parts = [next(s_iter) if is_style_direction_path(name) else next(w_iter) for name in names]
    parts += list(s_iter)  # the channel edit
    text = request_text_styles(req, inv) if req.text else []
    parts += text
    styles = [*styles, *text]
    if req.combine:
        specs = (EditSpec("+".join(x.name for x in parts), tuple(dirs), tuple(1.0 for _ in dirs), styles=tuple(styles)),)
    else:
        specs = tuple(EditSpec(x.name, (), (), styles=(x,)) if isinstance(x, StyleDirection) else EditSpec(x.name, (x,), (1.0,))
                      for x in parts)
    return tuple(dataclasses.replace(sp, name=tag) for sp, tag in zip(specs, req.tags))
