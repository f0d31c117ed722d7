"""The model files vidinvert knows, and where it looks for them.

A file is looked up by its expected file name in, in order: ``--weights-dir``, ``$VIDINVERT_HOME``
and ``~/.cache/vidinvert`` (the last one is skipped when ``VIDINVERT_NO_USER_CACHE=1``, which the
tests set). Nothing is ever written into the installed package. This module imports no torch, so
listing the weights stays fast.

URLs, licences and digests come from the public READMEs and download scripts of the projects that
publish the files (InterDigitalInc/FeatureStyleEncoder, eladrich/pixel2style2pixel,
rosinality/stylegan2-pytorch, zllrunning/face-parsing.PyTorch, xinntao/facexlib, torchvision).
A ``sha256`` is only recorded where the exact bytes are known; torchvision's file name carries only
the first 8 hex digits of the digest (``sha256_prefix``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidinvert.errors import VidinvertError

ENV_HOME = "VIDINVERT_HOME"
ENV_NO_USER_CACHE = "VIDINVERT_NO_USER_CACHE"
USER_CACHE = Path("~/.cache/vidinvert")


@dataclass(frozen=True)
class WeightSpec:
    """One model file: what it is, where it comes from, and under which licence.

    ``research_only`` files (non-commercial or research-only licences) need ``--accept-license``
    to be downloaded. ``format`` names the checkpoint layout the loaders expect.
    """

    name: str
    filename: str
    url: str
    sha256: str | None
    license: str
    research_only: bool
    format: str
    description: str
    sha256_prefix: str | None = None  # a known leading part of the digest (torchvision's file names)
    homepage: str = ""

    def hash_matches(self, digest: str) -> bool | None:
        """True/False when a full or partial digest is known, None when nothing is known."""
        if self.sha256:
            return digest.lower() == self.sha256.lower()
        if self.sha256_prefix:
            return digest.lower().startswith(self.sha256_prefix.lower())
        return None


def _gdrive(file_id: str) -> str:
    return f"https://drive.google.com/uc?export=download&id={file_id}"


_FSE_COMMIT = "4aa0069aedec3993dab6f3471f481616617d7bc9"
_FSE_RAW = f"https://raw.githubusercontent.com/InterDigitalInc/FeatureStyleEncoder/{_FSE_COMMIT}"
_FSE_HOME = "https://github.com/InterDigitalInc/FeatureStyleEncoder"
_LIC_NVIDIA = "NVIDIA Source Code License-NC (StyleGAN2 weights): non-commercial use only"
_LIC_INTERDIGITAL = (
    "InterDigital Limited Software Evaluation License: fundamental research only, no commercial use"
)
_LIC_INSIGHTFACE = (
    "InsightFace: code MIT, but models trained on MS1M are for non-commercial research purposes only"
)


def _boundary(attr: str, sha256: str) -> WeightSpec:
    return WeightSpec(
        name=f"boundary-{attr.lower().replace('_', '-')}",
        filename=f"{attr}_boundary.npy",
        url=f"{_FSE_RAW}/boundaries_ours/{attr}_boundary.npy",
        sha256=sha256,
        license=_LIC_INTERDIGITAL,
        research_only=True,
        format="boundary-npy",
        description=f"official '{attr}' InterFaceGAN boundary in the encoder's W+ space, float32 (1, 9216)",
        homepage=_FSE_HOME,
    )


_SPECS = [
    WeightSpec(
        name="stylegan2-ffhq",
        filename="stylegan2-ffhq-config-f.pt",
        url=_gdrive("1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT"),
        sha256=None,
        license=_LIC_NVIDIA,
        research_only=True,
        format="rosinality",
        description="StyleGAN2 FFHQ 1024 config-f generator (rosinality format: g_ema + latent_avg (512,))",
        homepage="https://github.com/rosinality/stylegan2-pytorch",
    ),
    WeightSpec(
        name="psp-ffhq",
        filename="psp_ffhq_encode.pt",
        url=_gdrive("1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0"),
        sha256=None,
        license="pSp code MIT; holds the StyleGAN2 FFHQ generator: " + _LIC_NVIDIA,
        research_only=True,
        format="psp",
        description="pSp FFHQ encoding checkpoint; its 'decoder.' keys are the 1024 generator, latent_avg (18,512)",
        homepage="https://github.com/eladrich/pixel2style2pixel",
    ),
    WeightSpec(
        name="fs-encoder",
        filename="143_enc.pth",
        url=_gdrive("1RnnBL77j_Can0dY1KOiXHvG224MxjvzC"),
        sha256=None,
        license=_LIC_INTERDIGITAL,
        research_only=True,
        format="fs-encoder",
        description="official Feature-Style encoder for the FFHQ 1024 generator (bare state dict)",
        homepage=_FSE_HOME,
    ),
    WeightSpec(
        name="arcface",
        filename="backbone.pth",
        url=_gdrive("1coFTz-Kkgvoc_gRT8JFzqCgeC3lAFWQp"),
        sha256=None,
        license=_LIC_INSIGHTFACE,
        research_only=True,
        format="iresnet50",
        description="ArcFace IResNet-50 (insightface arcface_torch r50), the copy the official encoder uses",
        homepage="https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch",
    ),
    WeightSpec(
        name="bisenet-official",
        filename="79999_iter.pth",
        url=_gdrive("154JgKpzCPW82qINcVieuPH3fZ2e0P812"),
        sha256=None,
        license="MIT (zllrunning/face-parsing.PyTorch); trained on CelebAMask-HQ (non-commercial dataset)",
        research_only=False,
        format="bisenet-zllrunning",
        description="BiSeNet face parsing, 19 classes, as used by the official encoder's training",
        homepage="https://github.com/zllrunning/face-parsing.PyTorch",
    ),
    WeightSpec(
        name="bisenet",
        filename="parsing_bisenet.pth",
        url="https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth",
        sha256=None,
        license="MIT (xinntao/facexlib; model from zllrunning/face-parsing.PyTorch, MIT)",
        research_only=False,
        format="bisenet-facexlib",
        description="facexlib BiSeNet face parsing, 19 classes (the same module tree as 79999_iter.pth)",
        homepage="https://github.com/xinntao/facexlib",
    ),
    WeightSpec(
        name="retinaface",
        filename="detection_Resnet50_Final.pth",
        url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
        sha256=None,
        license="MIT (xinntao/facexlib; model from biubug6/Pytorch_Retinaface, MIT)",
        research_only=False,
        format="retinaface-facexlib",
        description="RetinaFace ResNet-50 face detector with 5 landmarks (facexlib)",
        homepage="https://github.com/xinntao/facexlib",
    ),
    _boundary("Smiling", "5782190b00340d58f8418885dc9ad9ab53462874d7a9a1b91241e76099c9fc22"),
    _boundary("Eyeglasses", "227c8edae45f8cf06a0578e8422ef2dc59de6fb741d55280746a63fd40d2936c"),
    _boundary("Heavy_Makeup", "dbd6336240825cf1a8077c5e40bde544ebd6b7c300ee76e28991e8e2d892030d"),
    WeightSpec(
        name="clip-vit-b32",
        filename="clip-vit-b32-openai.safetensors",
        url="https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/open_clip_model.safetensors",
        sha256=None,
        license="MIT (OpenAI CLIP: code and released weights)",
        research_only=False,
        format="clip-state-dict",
        description="OpenAI CLIP ViT-B/32 in open_clip's state-dict layout: text edits (--text) and stylespace-stats",
        homepage="https://github.com/openai/CLIP",
    ),
    WeightSpec(
        name="styleclip-fs3-ffhq",
        filename="fs3.npy",
        url="https://github.com/orpatashnik/StyleCLIP/raw/main/global_directions/npy/ffhq/fs3.npy",
        sha256=None,  # not fetched here yet; its git blob id begins ef9dc0a4
        license="MIT (orpatashnik/StyleCLIP)",
        research_only=False,
        format="styleclip-relevance",
        description="StyleCLIP's relevance matrix for the FFHQ generator (global directions), float (5376, 512)",
        homepage="https://github.com/orpatashnik/StyleCLIP",
    ),
    WeightSpec(
        name="lpips-alexnet",
        filename="alexnet-owt-7be5be79.pth",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        sha256=None,
        sha256_prefix="7be5be79",
        license="BSD-3-Clause (torchvision ImageNet weights)",
        research_only=False,
        format="torchvision",
        description="torchvision ImageNet AlexNet, the LPIPS backbone",
        homepage="https://github.com/pytorch/vision",
    ),
]

REGISTRY: dict[str, WeightSpec] = {s.name: s for s in _SPECS}


@dataclass(frozen=True)
class DirectionSource:
    """Where edit directions for the FFHQ StyleGAN2 generator are published. Listed so a user knows where
    to look; vidinvert does not download them (except the registry's ``boundary-*`` files) and does not
    claim they are present. ``license`` is what the publishing repository states: check it before use."""

    names: tuple[str, ...]
    where: str
    license: str
    space: str
    how: str


KNOWN_DIRECTION_SOURCES: tuple[DirectionSource, ...] = (
    DirectionSource(("Smiling", "Eyeglasses", "Heavy_Makeup"), _FSE_HOME + " (boundaries_ours/)",
                    _LIC_INTERDIGITAL, "w+ (1, 9216), this encoder's space",
                    "vidinvert weights download boundary-smiling boundary-eyeglasses boundary-heavy-makeup"
                    " --accept-license"),
    DirectionSource(("age", "smile", "pose"),
                    "https://github.com/omertov/encoder4editing (editings/interfacegan_directions/*.pt)",
                    "MIT (repository licence)", "W of the same FFHQ StyleGAN2 generator (InterFaceGAN)",
                    "download by hand; place NAME.pt as --direction FILE or NAME.npy in WEIGHTS/directions"),
    DirectionSource(("age", "smile", "rotation"),
                    "https://github.com/danielroich/PTI (editings/interfacegan_directions/*.pt)",
                    "MIT (repository licence)", "W of the same FFHQ StyleGAN2 generator (InterFaceGAN)",
                    "download by hand; pass --direction FILE.pt"),
    DirectionSource(("sefa_*",), "computed here from the generator's weights (Shen & Zhou, CVPR 2021)",
                    "the generator's licence", "w+ rows of the chosen layers",
                    "vidinvert directions discover --out DIR"),
)


def direction_sources_text() -> str:
    """One line naming the known direction sources (for error messages and ``vidinvert weights``)."""
    return "; ".join(f"{', '.join(s.names)}: {s.where} [{s.license.split(':')[0]}] ({s.how})"
                     for s in KNOWN_DIRECTION_SOURCES)


def direction_sources_short() -> str:
    """The known direction sources in a few words (error messages); ``vidinvert weights`` has them whole."""
    return ("the official boundaries (vidinvert weights download boundary-smiling ...), encoder4editing's and PTI's "
            "InterFaceGAN directions [MIT], SeFa (vidinvert directions discover); details: vidinvert weights")


def get_spec(name: str) -> WeightSpec:
    """The registry entry ``name``; a VidinvertError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise VidinvertError(
            f"unknown weights name {name!r}: known names are {', '.join(REGISTRY)}"
        ) from None


def _env_home() -> Path | None:
    home = os.environ.get(ENV_HOME, "").strip()
    return Path(home).expanduser() if home else None


def _user_cache_enabled() -> bool:
    return os.environ.get(ENV_NO_USER_CACHE, "").strip() not in ("1", "true", "yes")


def search_dirs(weights_dir: Path | str | None = None) -> list[Path]:
    """Folders searched for model files, in order: ``weights_dir``, ``$VIDINVERT_HOME``, ``~/.cache/vidinvert``.

    ``~/.cache/vidinvert`` is left out when ``VIDINVERT_NO_USER_CACHE=1``. Duplicates are removed.
    """
    dirs: list[Path] = []
    if weights_dir is not None and str(weights_dir) != "":
        dirs.append(Path(weights_dir).expanduser())
    home = _env_home()
    if home is not None:
        dirs.append(home)
    if _user_cache_enabled():
        dirs.append(USER_CACHE.expanduser())
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def install_dir(weights_dir: Path | str | None = None) -> Path:
    """The folder a missing file should be placed in (and downloads go to).

    The first of ``weights_dir``, ``$VIDINVERT_HOME``, ``~/.cache/vidinvert``.
    """
    if weights_dir is not None and str(weights_dir) != "":
        return Path(weights_dir).expanduser()
    return _env_home() or USER_CACHE.expanduser()


def place_path(name: str, weights_dir: Path | str | None = None) -> Path:
    """The exact path where the file of registry entry ``name`` should be placed."""
    return install_dir(weights_dir) / get_spec(name).filename


def find(name: str, weights_dir: Path | str | None = None) -> Path | None:
    """The first existing file for registry entry ``name`` in :func:`search_dirs`, else None."""
    spec = get_spec(name)
    for d in search_dirs(weights_dir):
        p = d / spec.filename
        if p.is_file():
            return p
    return None


def how_to_get(name: str, weights_dir: Path | str | None = None) -> str:
    """One sentence: where to place the file and how to download it."""
    spec = get_spec(name)
    accept = " --accept-license" if spec.research_only else ""
    wd = f" --weights-dir {install_dir(weights_dir)}" if weights_dir else ""
    return (
        f"place {spec.filename} at {place_path(name, weights_dir)} "
        f"(download it from {spec.url}, or run `vidinvert weights download {name}{accept}{wd}`)"
    )


def require(name: str, weights_dir: Path | str | None = None) -> Path:
    """Like :func:`find`, but a missing file raises a VidinvertError naming the exact path to place it."""
    p = find(name, weights_dir)
    if p is None:
        spec = get_spec(name)
        searched = ", ".join(str(d) for d in search_dirs(weights_dir)) or "nowhere"
        raise VidinvertError(
            f"{spec.name} ({spec.description}) not found (searched {searched}): {how_to_get(name, weights_dir)}"
        )
    return p


def resolve_file(
    arg: str | Path | None, default_name: str, weights_dir: Path | str | None = None
) -> Path:
    """Resolve a CLI model argument: a path, a registry name, or None for ``default_name``.

    A bare file name that is not a path is also looked up in the search folders.
    """
    if arg is None or str(arg) == "":
        return require(default_name, weights_dir)
    text = str(arg)
    if text in REGISTRY and not Path(text).exists():
        return require(text, weights_dir)
    p = Path(text).expanduser()
    if p.is_dir():
        raise VidinvertError(f"{p} is a directory, not a model file")
    if p.is_file():
        return p
    if p.parent == Path("."):
        for d in search_dirs(weights_dir):
            if (d / p.name).is_file():
                return d / p.name
    where = ", ".join(map(str, search_dirs(weights_dir))) or "the search folders"
    raise VidinvertError(
        f"model file {text} not found (neither a path nor a file in {where});"
        f" known weights names: {', '.join(REGISTRY)}"
    )


def generator_file(generator: str | Path | None, weights_dir: Path | str | None = None) -> Path:
    """The generator: ``generator`` (a path or registry name), else ``stylegan2-ffhq`` when present
    (or when ``psp-ffhq`` is absent too, so the error names the official file), else ``psp-ffhq``."""
    if generator is None:
        generator = "psp-ffhq" if find("psp-ffhq", weights_dir) and not find("stylegan2-ffhq", weights_dir) else None
    return resolve_file(generator, "stylegan2-ffhq", weights_dir)


def model_files(encoder: str | Path | None, generator: str | Path | None,
                weights_dir: Path | str | None = None) -> tuple[Path, Path]:
    """The encoder (``encoder``, else ``fs-encoder``) and the generator (:func:`generator_file`);
    a missing file names where to place it."""
    gen_path = generator_file(generator, weights_dir)
    return resolve_file(encoder, "fs-encoder", weights_dir), gen_path


def sha256_file(path: Path | str, progress: Callable[[int, int], None] | None = None) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks; ``progress(done, total)`` after each chunk."""
    path = Path(path)
    total = path.stat().st_size
    h = hashlib.sha256()
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return h.hexdigest()


def status(name: str, weights_dir: Path | str | None = None, *, verify: bool = False) -> dict:
    """A row for ``vidinvert weights``: found/missing, and with ``verify`` verified/mismatch/unverifiable.

    ``status`` is one of ``missing``, ``found`` (not hashed), ``verified``, ``mismatch``,
    ``unverifiable`` (hashed, but no digest is known).
    """
    spec = get_spec(name)
    path = find(name, weights_dir)
    row = {
        "name": spec.name,
        "filename": spec.filename,
        "status": "missing" if path is None else "found",
        "path": str(path) if path is not None else None,
        "place_at": str(place_path(name, weights_dir)),
        "url": spec.url,
        "license": spec.license,
        "research_only": spec.research_only,
        "format": spec.format,
        "description": spec.description,
        "sha256_expected": spec.sha256 or (f"{spec.sha256_prefix}..." if spec.sha256_prefix else None),
        "sha256": None,
    }
    if path is not None and verify:
        digest = sha256_file(path)
        row["sha256"] = digest
        ok = spec.hash_matches(digest)
        row["status"] = "unverifiable" if ok is None else ("verified" if ok else "mismatch")
    return row


def weights_report(weights_dir: Path | str | None = None, *, verify: bool = False) -> dict:
    """``vidinvert weights``: the search folders, one :func:`status` row per registry entry (``verify``:
    hashed and compared with the known sha256) and the known direction sources."""
    from dataclasses import asdict

    return {"search_dirs": [str(d) for d in search_dirs(weights_dir)],
            "weights": [status(name, weights_dir, verify=verify) for name in REGISTRY],
            "direction_sources": [asdict(src) for src in KNOWN_DIRECTION_SOURCES]}
