"""StyleSpace (Wu, Lischinski and Shechtman, CVPR 2021): the generator's style vectors ``s``, laid out.

``s`` is the output of every modulated convolution's style affine (``modulation``: ``s = A w + b``,
before the equalized-lr scale), one value per input channel of that convolution. The layout is fixed:
every style layer in the order synthesis runs them, the ToRGB layers included, which is StyleSpace's
own layer index::

    index  name       kind   row  resolution  channels (FFHQ 1024, config-f)
    0      conv1      conv    0    4          512
    1      to_rgb1    torgb   1    4          512
    2      convs.0    conv    1    8          512      (upsampling)
    3      convs.1    conv    2    8          512
    4      to_rgbs.0  torgb   3    8          512
    5      convs.2    conv    3    16         512
    6      convs.3    conv    4    16         512      <- "6_501" is channel 501 of this layer
    ...    (conv up, conv, torgb for every resolution up to the size)
    25     to_rgbs.7  torgb  17    1024        32

``row`` is the w+ row whose style the layer takes: styled convolution ``c`` (``conv1``, then
``convs[c-1]``) takes row ``c``; ToRGB ``k`` (``to_rgb1``, then ``to_rgbs[k-1]``) takes row ``2k+1``.
The 1024 generator has 26 layers, 6048 conv channels and 3040 ToRGB channels, 9088 in all; a flat
S vector concatenates the layers in this order (:attr:`StyleLayer.offset`). A channel is named
``L_C`` (layer index L, channel C), as Wu et al. publish them. StyleCLIP's global directions
(``fs3.npy``) cover the conv layers up to 128 px: ``layout.conv_layers(max_resolution=128)``,
5376 channels at 1024.

S direction files (``.npz``, read with ``allow_pickle=False``; :func:`read_style_direction`,
:func:`write_style_direction`) hold a format tag, the layout they were made for (layer names and
sizes), the units of ``delta`` (``std``: per-channel standard deviations, ``style``: raw s units)
and ``delta``, the change of the flat S vector at strength 1: ``s~ = s + strength * delta`` (times
each channel's standard deviation for ``std``). No normalisation is applied.

This module is torch-free (it is read before any model loads); the generator side is
:mod:`vidinvert.models.stylegan2` (``style_offset``) and the edit side :mod:`vidinvert.edit.stylespace`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidinvert.errors import VidinvertError

#: The ``format`` entry of an S direction file.
DIRECTION_FORMAT = "vidinvert.stylespace-direction.v1"
#: Units of an S direction's ``delta``.
UNITS = ("std", "style")
CONV, TORGB = "conv", "torgb"


@dataclass(frozen=True)
class StyleLayer:
    """One style layer: its StyleSpace ``index``, module ``name`` (rosinality layout, without the
    trailing ``.conv``), ``kind`` (conv / torgb), the w+ ``row`` that drives it, the ``resolution``
    it runs at, its number of ``channels`` and its ``offset`` in the flat S vector."""

    index: int
    name: str
    kind: str
    row: int
    resolution: int
    channels: int
    offset: int

    @property
    def conv_index(self) -> int | None:
        """For a conv layer, the styled convolution it belongs to (``c``: its output is ``outs[c+1]``)."""
        return self.row if self.kind == CONV else None

    def slice(self) -> slice:
        return slice(self.offset, self.offset + self.channels)


@dataclass(frozen=True)
class StyleLayout:
    """Every style layer of one generator architecture, in StyleSpace order (see the module docstring)."""

    layers: tuple[StyleLayer, ...]
    style_dim: int = 512

    @property
    def total(self) -> int:
        """Channels in all (9088 at 1024)."""
        return sum(layer.channels for layer in self.layers)

    @property
    def conv_total(self) -> int:
        """Channels of the conv layers (6048 at 1024)."""
        return sum(layer.channels for layer in self.layers if layer.kind == CONV)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(layer.channels for layer in self.layers)

    @property
    def fingerprint(self) -> str:
        """A short hash of the layer names, sizes and rows (equal layouts, equal fingerprints)."""
        text = ";".join(f"{x.name}:{x.channels}:{x.row}" for x in self.layers)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return (f"{len(self.layers)} style layers, {self.total} channels ({self.conv_total} conv + "
                f"{self.total - self.conv_total} ToRGB)")

    def layer(self, index: int) -> StyleLayer:
        if not 0 <= index < len(self.layers):
            raise VidinvertError(f"StyleSpace layer {index} does not exist: this generator has layers "
                                 f"0..{len(self.layers) - 1}")
        return self.layers[index]

    def flat_index(self, layer: int, channel: int) -> int:
        """The position of channel ``layer_channel`` in the flat S vector (one-line error when unknown)."""
        lay = self.layer(layer)
        if not 0 <= channel < lay.channels:
            raise VidinvertError(f"channel {layer}_{channel} does not exist: layer {layer} ({lay.name}, "
                                 f"{lay.resolution} px) has channels 0..{lay.channels - 1}")
        return lay.offset + channel

    def locate(self, flat: int) -> tuple[int, int]:
        """``(layer, channel)`` of a flat index."""
        for lay in self.layers:
            if lay.offset <= flat < lay.offset + lay.channels:
                return lay.index, flat - lay.offset
        raise IndexError(f"flat S index {flat} is outside 0..{self.total - 1}")

    def label(self, flat: int) -> str:
        """``"L_C"`` of a flat index."""
        layer, channel = self.locate(flat)
        return f"{layer}_{channel}"

    def conv_layers(self, max_resolution: int | None = None) -> tuple[StyleLayer, ...]:
        """The conv layers (optionally those at ``max_resolution`` px and below), in order."""
        return tuple(x for x in self.layers if x.kind == CONV
                     and (max_resolution is None or x.resolution <= max_resolution))

    def layers_of_rows(self, rows: Iterable[int]) -> tuple[StyleLayer, ...]:
        """The layers driven by the w+ ``rows`` (what ``--layers`` keeps of an S edit)."""
        keep = set(rows)
        return tuple(x for x in self.layers if x.row in keep)

    def layer_mask(self, layers: Iterable[StyleLayer]) -> np.ndarray:
        """bool ``[total]``: True on the channels of ``layers``."""
        mask = np.zeros(self.total, bool)
        for x in layers:
            mask[x.slice()] = True
        return mask

    def scatter(self, values: np.ndarray, layers: Sequence[StyleLayer]) -> np.ndarray:
        """A vector over the channels of ``layers`` (concatenated in their order, e.g. StyleCLIP's
        conv-only ``fs3`` rows) placed into a float32 ``[total]`` vector, zero elsewhere."""
        values = np.asarray(values, np.float32).reshape(-1)
        want = sum(x.channels for x in layers)
        if values.size != want:
            raise VidinvertError(f"{values.size} values for layers holding {want} channels")
        out = np.zeros(self.total, np.float32)
        at = 0
        for x in layers:
            out[x.slice()] = values[at:at + x.channels]
            at += x.channels
        return out

    def same_as(self, names: Sequence[str], sizes: Sequence[int]) -> bool:
        return tuple(str(n) for n in names) == self.names and tuple(int(s) for s in sizes) == self.sizes


def layout_for(size: int, channels: dict[int, int], style_dim: int = 512) -> StyleLayout:
    """The layout of a ``Generator(size, channels=...)`` (``channels``: resolution -> width, 4..size)."""
    log_size = int(round(math.log2(size)))
    specs: list[tuple[str, str, int, int, int]] = [("conv1", CONV, 0, 4, channels[4]),
                                                  ("to_rgb1", TORGB, 1, 4, channels[4])]
    for j, lg in enumerate(range(3, log_size + 1)):
        res = 2 ** lg
        specs += [(f"convs.{2 * j}", CONV, 2 * j + 1, res, channels[res // 2]),
                  (f"convs.{2 * j + 1}", CONV, 2 * j + 2, res, channels[res]),
                  (f"to_rgbs.{j}", TORGB, 2 * j + 3, res, channels[res])]
    layers, offset = [], 0
    for index, (name, kind, row, res, ch) in enumerate(specs):
        layers.append(StyleLayer(index, name, kind, row, res, int(ch), offset))
        offset += int(ch)
    return StyleLayout(tuple(layers), style_dim=int(style_dim))


def generator_layout(generator) -> StyleLayout:
    """The layout of a :class:`~vidinvert.models.stylegan2.Generator` (read from its size and channels)."""
    return layout_for(int(generator.size), dict(generator.channels), int(generator.style_dim))


# ---------------------------------------------------------------------------------------- channels
_CHANNEL = re.compile(r"(\d+)_(\d+)(?:=(.+))?")


@dataclass(frozen=True)
class ChannelEdit:
    """``--channel L_C[=S]``: channel ``channel`` of StyleSpace layer ``layer`` moved by ``amount``
    standard deviations per unit of strength (default 1)."""

    layer: int
    channel: int
    amount: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.layer}_{self.channel}" + ("" if self.amount == 1 else f"={self.amount:g}")


def parse_channel(text: str) -> ChannelEdit:
    """``"6_501"`` / ``"6_501=-2.5"`` -> :class:`ChannelEdit` (syntax only: the layout is checked by
    :meth:`StyleLayout.flat_index`)."""
    m = _CHANNEL.fullmatch(str(text).strip().replace(" ", ""))
    if m is None:
        raise VidinvertError(f"--channel {text!r}: give LAYER_CHANNEL[=S], e.g. 6_501 or 6_501=-2 "
                             "(StyleSpace's layer index, S in standard deviations)")
    amount = 1.0
    if m.group(3) is not None:
        try:
            amount = float(m.group(3))
        except ValueError:
            raise VidinvertError(f"--channel {text!r}: S must be a number, e.g. 6_501=-2") from None
        if not math.isfinite(amount) or amount == 0:
            raise VidinvertError(f"--channel {text!r}: S must be a finite, non-zero number of standard deviations")
    return ChannelEdit(int(m.group(1)), int(m.group(2)), amount)


def parse_channels(texts: Sequence[str]) -> tuple[ChannelEdit, ...]:
    """Every ``--channel``; a channel named twice is refused."""
    out = tuple(parse_channel(t) for t in texts)
    seen: set[tuple[int, int]] = set()
    for c in out:
        if (c.layer, c.channel) in seen:
            raise VidinvertError(f"--channel {c.layer}_{c.channel} is given twice: give it once (with =S)")
        seen.add((c.layer, c.channel))
    return out


def channels_tag(channels: Sequence[ChannelEdit]) -> str:
    """The output tag of a channel edit: ``ch6_501``, ``ch6_501+9_409=-2``."""
    return "ch" + "+".join(c.label for c in channels)


# ------------------------------------------------------------------------------------------- files
@dataclass(frozen=True)
class StyleDirectionFile:
    """An S direction file, read and checked on its own (the layout is checked against a generator by
    :func:`check_file_layout`). ``delta``: float32 ``[total]``; ``generator``: the weights fingerprint
    of the generator it was made with ("" when not recorded)."""

    path: Path
    name: str
    delta: np.ndarray
    units: str
    layer_names: tuple[str, ...]
    layer_channels: tuple[int, ...]
    generator: str = ""


def _text(data, key: str, path: Path) -> str:
    a = data[key]
    if a.dtype.kind not in "US" or a.ndim != 0:
        raise VidinvertError(f"S direction file {path}: {key!r} must be a string")
    return str(a)


def read_style_direction(path: str | Path) -> StyleDirectionFile:
    """Read an S direction ``.npz`` (``allow_pickle=False``) and check its own consistency: the
    format tag, units, a layout of names and sizes, a finite, non-zero float ``delta`` of their total.
    One-line :class:`VidinvertError` for anything else (no file, not an npz, a pickle inside ...)."""
    p = Path(path)
    if not p.is_file():
        raise VidinvertError(f"S direction file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as data:
            keys = set(data.files)
            missing = {"format", "delta", "units", "layer_names", "layer_channels"} - keys
            if missing:
                raise VidinvertError(f"S direction file {p}: missing {', '.join(sorted(missing))} (not a "
                                     f"vidinvert S direction file: see the README's StyleSpace section)")
            fmt = _text(data, "format", p)
            if fmt != DIRECTION_FORMAT:
                raise VidinvertError(f"S direction file {p}: format {fmt!r}, expected {DIRECTION_FORMAT!r}")
            units = _text(data, "units", p)
            names, sizes, delta = data["layer_names"], data["layer_channels"], data["delta"]
            generator = _text(data, "generator", p) if "generator" in keys else ""
            name = _text(data, "name", p) if "name" in keys else p.stem
    except VidinvertError:
        raise
    except Exception as exc:  # zip errors, pickled objects refused, truncated arrays
        raise VidinvertError(f"cannot read S direction file {p}: {type(exc).__name__}: {exc}") from None
    if units not in UNITS:
        raise VidinvertError(f"S direction file {p}: units {units!r}, expected one of {', '.join(UNITS)}")
    if names.dtype.kind not in "US" or names.ndim != 1 or sizes.ndim != 1 or sizes.dtype.kind not in "iu" \
            or len(names) != len(sizes) or not len(names) or (sizes <= 0).any():
        raise VidinvertError(f"S direction file {p}: layer_names and layer_channels must be two equally long "
                             "lists (names, positive sizes)")
    if delta.dtype.kind != "f" or delta.ndim != 1 or delta.size != int(sizes.sum()):
        raise VidinvertError(f"S direction file {p}: delta must be a float vector of {int(sizes.sum())} values "
                             f"(the layers' channels), got {delta.dtype} {list(delta.shape)}")
    if not np.isfinite(delta).all():
        raise VidinvertError(f"S direction file {p}: delta contains NaN or infinite values")
    if not delta.any():
        raise VidinvertError(f"S direction file {p}: delta is all zeros (the edit would change nothing)")
    return StyleDirectionFile(p, name, delta.astype(np.float32), units, tuple(str(n) for n in names),
                              tuple(int(s) for s in sizes), generator)


def check_file_layout(f: StyleDirectionFile, layout: StyleLayout) -> None:
    """Refuse, in one line, a file made for another generator layout."""
    if not layout.same_as(f.layer_names, f.layer_channels):
        raise VidinvertError(
            f"S direction file {f.path} was made for another generator ({len(f.layer_names)} style layers, "
            f"{sum(f.layer_channels)} channels); this one has {layout.describe()}")


def write_style_direction(path: str | Path, delta: np.ndarray, layout: StyleLayout, *, units: str = "std",
                          name: str | None = None, generator: str = "", overwrite: bool = False) -> Path:
    """Write an S direction file for ``layout`` (atomically). ``delta``: ``[layout.total]`` float;
    ``units``: ``std`` or ``style``; ``generator``: the weights fingerprint
    (:func:`vidinvert.edit.stylespace.generator_fingerprint`), "" to leave it out."""
    from vidinvert.fileio import atomic_path, check_output

    p = check_output(Path(path), overwrite=overwrite)
    if p.suffix != ".npz":
        raise VidinvertError(f"S direction files are .npz: {p}")
    if units not in UNITS:
        raise VidinvertError(f"units {units!r}: expected one of {', '.join(UNITS)}")
    d = np.asarray(delta, np.float32).reshape(-1)
    if d.size != layout.total:
        raise VidinvertError(f"delta has {d.size} values, the layout {layout.total}")
    arrays = {"format": np.array(DIRECTION_FORMAT), "units": np.array(units), "delta": d,
              "layer_names": np.array(layout.names), "layer_channels": np.array(layout.sizes, np.int64),
              "name": np.array(name or p.stem), "generator": np.array(generator)}
    with atomic_path(p, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return p


def is_style_direction_path(path: str | Path) -> bool:
    """Whether a ``--direction`` path names an S direction (``.npz``) rather than a w+ one."""
    return Path(path).suffix.lower() == ".npz"


__all__ = ["CONV", "DIRECTION_FORMAT", "TORGB", "UNITS", "ChannelEdit", "StyleDirectionFile", "StyleLayer",
           "StyleLayout", "channels_tag", "check_file_layout", "generator_layout", "is_style_direction_path",
           "layout_for", "parse_channel", "parse_channels", "read_style_direction", "write_style_direction"]
