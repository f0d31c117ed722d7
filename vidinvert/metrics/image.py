"""Full-reference image metrics, batched in torch: SSIM, PSNR, MSE and LPIPS (AlexNet).

Inputs are RGB ``[B,3,H,W]`` float in [0,1] (the evaluation converts the pipeline's [-1,1]
crops with :func:`to_unit_interval`); every function returns one value per image, ``[B]``
float64 on the CPU.

* :func:`ssim` is scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=...)``: an 11-tap Gaussian window
  (sigma 1.5, truncated at 3.5 sigma), population covariances, ``K1=0.01``, ``K2=0.03``, the
  SSIM map averaged over the pixels at least 5 px from the border, then over the channels.
  Only those pixels are averaged, so a "valid" convolution gives the same numbers as
  scikit-image's reflect-padded filtering. CUDA tensors are filtered with torch convolutions,
  CPU tensors with scipy (the same sums, several times faster there).
* :func:`psnr` is ``peak_signal_noise_ratio(data_range=1)``: ``10 log10(1 / MSE)`` (inf for
  identical images).
* :class:`LPIPSMetric` wraps the ``lpips`` package's ``LPIPS(net='alex', version='0.1')``: its
  linear heads ship inside the package; the AlexNet trunk is loaded from torchvision's ImageNet
  file (registry name ``lpips-alexnet``) so nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from scipy.ndimage import correlate1d

from vidinvert.convert import uint8_from_unit
from vidinvert.errors import VidinvertError
from vidinvert.weights import find, how_to_get, read_checkpoint
from vidinvert.weights.loading import strict_load

log = logging.getLogger(__name__)

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def to_unit_interval(images: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
    """``[B,3,H,W]`` in [-1,1] -> [0,1] (clamped), float32, same device.

    ``quantize`` rounds to the 256 levels of an 8-bit image, exactly as
    :func:`vidinvert.convert.to_uint8` followed by ``/255`` would, so metrics match those of
    the saved PNGs.
    """
    if quantize:
        return uint8_from_unit(images).float() / 255.0
    return ((images.detach().float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"expected two [B,C,H,W] batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE,
                    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    """The normalised 1-D Gaussian ``[2r+1]`` of ``scipy.ndimage.gaussian_filter`` (r = int(truncate*sigma+0.5))."""
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _blur_valid(x: torch.Tensor, win: torch.Tensor, backend: str) -> torch.Tensor:
    """Separable 'valid' filtering of every plane of ``[N,C,H,W]`` -> ``[N,C,H-2r,W-2r]``.

    ``torch``: depthwise ``conv2d`` (fast on CUDA). ``scipy``: ``scipy.ndimage.correlate1d`` in
    float64 (several times faster than torch's depthwise convolution on the CPU).
    """
    k = win.numel()
    r = (k - 1) // 2
    if backend == "scipy":
        w = win.detach().cpu().double().numpy()
        arr = x.detach().cpu().double().numpy()
        arr = correlate1d(correlate1d(arr, w, axis=3, mode="constant"), w, axis=2, mode="constant")
        return torch.from_numpy(arr[:, :, r:arr.shape[2] - r, r:arr.shape[3] - r]).to(x.device, x.dtype)
    c = x.shape[1]
    x = F.conv2d(x, win.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, win.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0, sigma: float = SSIM_SIGMA,
         dtype: torch.dtype = torch.float64, chunk: int = 4, backend: str = "auto") -> torch.Tensor:
    """Mean SSIM per image: ``[B,C,H,W]`` x2 in [0, data_range] -> ``[B]`` float64 (CPU).

    Computed in ``dtype`` (float64 by default, as scikit-image's mean), ``chunk`` images at a
    time (about 1.3 GB of float64 intermediates per 4 images at 1024 px). ``backend``: ``torch``
    (on the inputs' device), ``scipy`` (CPU, float64) or ``auto`` (scipy for CPU tensors, torch
    otherwise). Images must be at least ``2r+1`` = 11 px on each side.
    """
    _check_pair(a, b)
    if backend == "auto":
        backend = "scipy" if a.device.type == "cpu" and dtype == torch.float64 else "torch"
    if backend not in ("torch", "scipy"):
        raise ValueError(f"unknown SSIM backend {backend!r}")
    win = gaussian_window(sigma, SSIM_TRUNCATE, dtype, a.device)
    if min(a.shape[-2:]) < win.numel():
        raise ValueError(f"SSIM needs images of at least {win.numel()}x{win.numel()} px, got {tuple(a.shape[-2:])}")
    if a.shape[0] > chunk:
        return torch.cat([ssim(a[i:i + chunk], b[i:i + chunk], data_range=data_range, sigma=sigma, dtype=dtype,
                               chunk=chunk, backend=backend) for i in range(0, a.shape[0], chunk)])
    x, y = a.to(dtype), b.to(dtype)
    n = x.shape[0]
    # one filtering pass for the five moments
    stats = _blur_valid(torch.cat([x, y, x * x, y * y, x * y]), win, backend)
    ux, uy, uxx, uyy, uxy = stats.split(n)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3)).mean(dim=1).double().cpu()


def mse(a: torch.Tensor, b: torch.Tensor, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Mean squared error per image: ``[B,C,H,W]`` x2 -> ``[B]`` float64 (CPU)."""
    _check_pair(a, b)
    return (a.to(dtype) - b.to(dtype)).pow(2).mean(dim=(1, 2, 3)).double().cpu()


def psnr(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image, ``10 log10(data_range^2 / MSE)``: ``[B]`` float64 (inf where identical)."""
    m = mse(a, b)
    return 10.0 * torch.log10(torch.as_tensor(data_range, dtype=torch.float64) ** 2 / m)


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------
def alexnet_to_lpips_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision AlexNet keys ``features.N.{weight,bias}`` -> lpips's ``sliceK.N.{weight,bias}``.

    lpips splits ``features`` into five ``Sequential`` slices that keep torchvision's indices:
    0-1, 2-4, 5-7, 8-9, 10-11 (conv layers at 0, 3, 6, 8, 10).
    """
    bounds = [(1, 0, 2), (2, 2, 5), (3, 5, 8), (4, 8, 10), (5, 10, 12)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if not k.startswith("features."):
            continue
        _, idx, param = k.split(".", 2)
        i = int(idx)
        for s, lo, hi in bounds:
            if lo <= i < hi:
                out[f"slice{s}.{i}.{param}"] = value
                break
    return out


class LPIPSMetric:
    """LPIPS v0.1 with the AlexNet trunk (the ``lpips`` package's network, frozen, eval mode).

    ``__call__(a, b)``: ``[B,3,H,W]`` x2 in [0,1] -> ``[B]`` float64 (CPU). Runs in float32 on
    ``device`` (LPIPS is not autocast: the distances are small differences of normalised features).
    """

    name = "lpips-alex-v0.1"

    def __init__(self, network: torch.nn.Module, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval().requires_grad_(False)

    @classmethod
    def from_alexnet_state(cls, state: Mapping[str, torch.Tensor], device: torch.device | str = "cpu",
                           source: str = "state dict") -> LPIPSMetric:
        """Build from a torchvision AlexNet state dict (``features.*`` keys are enough)."""
        import lpips

        # pnet_rand=True: torchvision builds an untrained AlexNet (no download); pretrained=True
        # loads the linear heads from the file inside the lpips package. verbose=False: no prints.
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torchvision: 'pretrained' is deprecated
            net = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        trunk = alexnet_to_lpips_keys(state)
        expected = set(net.net.state_dict())
        if set(trunk) != expected:
            missing = sorted(expected - set(trunk))
            raise VidinvertError(
                f"{source} is not torchvision's AlexNet: missing {', '.join(missing[:4]) or 'nothing'}"
                f"{' ...' if len(missing) > 4 else ''}; expected alexnet-owt-7be5be79.pth (`vidinvert weights download lpips-alexnet`)"
            )

        strict_load(net.net, trunk, source, "torchvision", "the AlexNet trunk of LPIPS")
        return cls(net, device)

    @classmethod
    def from_file(cls, path: Path | str, device: torch.device | str = "cpu") -> LPIPSMetric:
        """Build from torchvision's ``alexnet-owt-7be5be79.pth`` (read safely, weights only)."""
        state = read_checkpoint(path)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise VidinvertError(f"{path}: not a state dict of torchvision's AlexNet")
        return cls.from_alexnet_state(state, device, source=str(path))

    @torch.inference_mode()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        _check_pair(a, b)
        x = a.to(self.device, torch.float32) * 2.0 - 1.0
        y = b.to(self.device, torch.float32) * 2.0 - 1.0
        with torch.autocast(self.device.type, enabled=False):
            d = self.network(x, y)
        return d.reshape(-1).double().cpu()


def load_lpips(weights_dir: Path | str | None, device: torch.device | str = "cpu") -> LPIPSMetric | None:
    """LPIPS from the registry file ``lpips-alexnet``; None (with a notice) when it is not found."""
    path = find("lpips-alexnet", weights_dir)
    if path is None:
        log.warning(f"LPIPS is left out: the AlexNet backbone is missing; {how_to_get('lpips-alexnet', weights_dir)}")
        return None
    return LPIPSMetric.from_file(path, device)

