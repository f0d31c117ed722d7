"""CLIP (OpenAI's ViT-B/32, the model StyleCLIP's global directions were measured with) from a local file,
through the maintained ``open_clip`` library (the ``[text]`` extra). Never from a hub.

The file is a state dict in CLIP's own key layout (``token_embedding.weight``, ``transformer.resblocks.*``,
``visual.conv1.weight`` ...), as ``.safetensors`` (open_clip's ``open_clip_model.safetensors`` of
``timm/vit_base_patch32_clip_224.openai``) or a PyTorch file read with ``weights_only``. The architecture
is read from the tensors' shapes (so a smaller random model in the same layout loads too) and the weights
are loaded strictly, in float32. OpenAI's TorchScript archive (``ViT-B-32.pt``) is refused: it holds code.

Text: :func:`encode_texts` -> L2-normalised embeddings ``[N, D]`` float32; prompts beyond CLIP's 77-token
context are refused (:func:`check_prompt`), never silently truncated.
"""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path

import torch

from vidinvert.errors import VidinvertError
from vidinvert.weights.checkpoint import read_checkpoint

#: CLIP's text context (tokens, start and end included).
CONTEXT = 77
_NOT_TENSORS = ("input_resolution", "context_length", "vocab_size")


def _open_clip():
    os.environ["HF_HUB_OFFLINE"] = "1"  # forced: nothing is ever fetched (the weights are a local file)
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        import open_clip
    except ImportError:
        raise VidinvertError("text edits need open_clip: pip install 'vidinvert[text]'") from None
    return open_clip


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (a zip holding ``code/`` and ``constants.pkl``), like OpenAI's ``ViT-B-32.pt``."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    if is_torchscript(path):
        raise VidinvertError(f"{path} is OpenAI's TorchScript CLIP (it holds code, which vidinvert never runs): "
                             "use the state dict open_clip_model.safetensors of timm/vit_base_patch32_clip_224.openai")
    obj = read_checkpoint(path)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or "text_projection" not in obj or "visual.conv1.weight" not in obj:
        raise VidinvertError(f"{path} is not a CLIP ViT state dict (no text_projection / visual.conv1.weight)")
    return {k.removeprefix("module."): v for k, v in obj.items() if k not in _NOT_TENSORS}


def build_clip(sd: dict[str, torch.Tensor]):
    """An open_clip ``CLIP`` with the architecture the tensors' shapes say (ViT image tower, QuickGELU as
    OpenAI trained it), float32, its weights loaded strictly from ``sd``."""
    _open_clip()
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    width = sd["visual.conv1.weight"].shape[0]
    patch = sd["visual.conv1.weight"].shape[-1]
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    vision = CLIPVisionCfg(layers=len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")]),
                           width=width, patch_size=patch, image_size=patch * grid, head_width=64)
    text_width = sd["ln_final.weight"].shape[0]
    text = CLIPTextCfg(context_length=sd["positional_embedding"].shape[0], vocab_size=sd["token_embedding.weight"].shape[0],
                       width=text_width, heads=max(1, text_width // 64),
                       layers=len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")}))
    model = CLIP(sd["text_projection"].shape[1], vision_cfg=vision, text_cfg=text, quick_gelu=True)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise VidinvertError(f"the CLIP file does not match the ViT layout: missing {sorted(missing)[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]}")
    return model.float().eval().requires_grad_(False)


def load_clip(path: str | Path, device: torch.device | str = "cpu"):
    """CLIP from a local file (see the module docstring), on ``device``, in eval mode."""
    return build_clip(_state_dict(Path(path))).to(device)


@functools.lru_cache(maxsize=1)
def tokenizer():
    """CLIP's BPE tokenizer (its vocabulary ships with open_clip: offline); built once."""
    return _open_clip().get_tokenizer("ViT-B-32")


def check_prompt(text: str, what: str = "prompt") -> str:
    """A prompt CLIP can read whole: not empty, at most :data:`CONTEXT` tokens (start and end included).
    Any Unicode is fine (CLIP's tokenizer cleans it with ftfy)."""
    text = str(text)
    if not text.strip():
        raise VidinvertError(f"{what}: empty; describe the edit, e.g. \"a face with a beard\"")
    tok = tokenizer()
    n = len(tok.encode(text)) + 2
    if n > CONTEXT:
        raise VidinvertError(f"{what} {text[:40]!r}...: {n} tokens, more than CLIP's {CONTEXT}; shorten it")
    return text


@torch.inference_mode()
def encode_texts(model, texts: list[str], device: torch.device | str = "cpu") -> torch.Tensor:
    """L2-normalised text embeddings ``[N, D]`` float32 of ``texts`` (each checked by :func:`check_prompt`)."""
    tok = tokenizer()
    ids = tok([check_prompt(t) for t in texts]).to(device)
    e = model.encode_text(ids).float()
    return e / e.norm(dim=-1, keepdim=True)


@torch.inference_mode()
def encode_images(model, images: torch.Tensor) -> torch.Tensor:
    """L2-normalised image embeddings ``[N, D]`` float32 of RGB images ``[N,3,H,W]`` in [-1,1] (resized to
    the model's input with bicubic antialiasing and normalised with CLIP's mean and std)."""
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    x = (images.float() + 1) / 2
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711], device=x.device).view(1, 3, 1, 1)
    e = model.encode_image((x.clamp(0, 1) - mean) / std).float()
    return e / e.norm(dim=-1, keepdim=True)
