"""Exact tiled inference for networks with InstanceNorm: layer-wise streaming over tiles.

InstanceNorm normalises each feature map with its mean and variance over the whole image, so
running such a network tile by tile (:func:`baselines.tiling.tile_apply`) computes a different
function. :func:`stream_apply` computes the whole-image function while holding only one tile (plus
its halo) on the device at a time:

- the network is traced (``torch.fx``) into a graph of convolutions, InstanceNorms, point-wise
  operations and sums; anything else raises :class:`NotStreamable`;
- every InstanceNorm input, and every map read by more than one layer (the residual stream), is
  *materialised*: computed tile by tile, each tile from the stored maps it depends on over the
  tile grown by the receptive field in between (one pixel per 3 x 3 conv), and kept in a scratch
  store (host RAM, or files on disk so that the process's memory stays bounded by the tile);
- while a map is written its per-image, per-channel mean and variance are accumulated in float64
  (Chan's pairwise update) over all tiles, and layers that read it normalise with those totals;
- convolutions pad only at the true image border, with the layer's own mode (zeros, reflection or
  replication), so tiles see exactly what the whole image sees; a map is deleted once no later
  layer reads it.

The result equals whole-image inference up to float32 rounding (the summation order of the
convolutions and of the statistics differs): tests/test_exact_tiling.py holds it to 1e-4.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines._stream_graph import (
    Conv,
    Input,
    Node,
    Norm,
    NotStreamable,
    Pointwise,
    trace,
    uses_image_statistics,
)

__all__ = [
    "NotStreamable",
    "Streamable",
    "check_streamable",
    "free_memory",
    "has_instance_norm",
    "stream_apply",
    "whole_image_bytes",
    "whole_image_fits",
]

Region = tuple[int, int, int, int]
"""(y0, y1, x0, x1): a rectangle of the image, end-exclusive."""

WHOLE_IMAGE_FACTOR = 6
"""Whole-image inference holds about this many maps of the widest layer at once, with a margin
(measured for NLCL at 1080p, 32 channels: the call adds 1.26 GiB, about 5 maps of 265 MB)."""

MEMORY_FRACTION = 0.7
"""Share of the free memory whole-image inference may plan to use."""

@dataclass(frozen=True)
class Streamable:
    """What a method hands the executor: the network from its [0, 1] input to its output, and AMP."""

    network: nn.Module
    amp: bool = False


# --------------------------------------------------------------------------- scratch stores
class _Store:
    """One materialised N x C x H x W float32 map."""

    def read(self, region: Region) -> Tensor:
        raise NotImplementedError

    def write(self, region: Region, values: Tensor) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the map's memory or file."""


class _InputStore(_Store):
    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor

    def read(self, region: Region) -> Tensor:
        y0, y1, x0, x1 = region
        return self.tensor[:, :, y0:y1, x0:x1]


class _MemoryStore(_Store):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.tensor = torch.empty(shape, dtype=torch.float32)

    def read(self, region: Region) -> Tensor:
        y0, y1, x0, x1 = region
        return self.tensor[:, :, y0:y1, x0:x1]

    def write(self, region: Region, values: Tensor) -> None:
        y0, y1, x0, x1 = region
        self.tensor[:, :, y0:y1, x0:x1] = values.to("cpu", torch.float32)

    def close(self) -> None:
        self.tensor = torch.empty(0)


class _DiskStore(_Store):
    """A map in a raw float32 file, pixel-major (H, W, N, C), read and written with pread/pwrite.

    Nothing is memory-mapped, so the map's pages belong to the page cache, never to the process:
    that is what bounds resident memory. Pixel-major order makes each row of a region one
    contiguous run of the file (one system call per row).
    """

    def __init__(self, shape: tuple[int, ...], path: Path) -> None:
        self.n, self.c, self.height, self.width = shape
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self.fd, self.height * self.width * self.n * self.c * 4)

    def _offset(self, y: int, x: int) -> int:
        return (y * self.width + x) * self.n * self.c * 4

    def read(self, region: Region) -> Tensor:
        y0, y1, x0, x1 = region
        rows = np.empty((y1 - y0, x1 - x0, self.n, self.c), dtype=np.float32)
        for r in range(y1 - y0):
            got = os.preadv(self.fd, [rows[r]], self._offset(y0 + r, x0))
            if got != rows[r].nbytes:
                raise OSError(f"{self.path}: short read ({got} of {rows[r].nbytes} bytes)")
        return torch.from_numpy(rows).permute(2, 3, 0, 1)

    def write(self, region: Region, values: Tensor) -> None:
        y0, y1, x0, _ = region
        rows = values.detach().to("cpu", torch.float32).permute(2, 3, 0, 1).contiguous().numpy()
        for r in range(y1 - y0):
            view = memoryview(rows[r]).cast("B")
            written = 0
            while written < len(view):
                written += os.pwrite(self.fd, view[written:], self._offset(y0 + r, x0) + written)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# --------------------------------------------------------------------------- evaluation
class _Evaluator:
    """Computes any node over any region of the image from the materialised maps."""

    def __init__(self, size: tuple[int, int], device: torch.device, amp: bool) -> None:
        self.height, self.width = size
        self.device = device
        self.amp = amp and device.type == "cuda"
        self.memo: dict[tuple[int, Region], Tensor] = {}

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()

    def __call__(self, node: Node, region: Region) -> Tensor:
        key = (id(node), region)
        if key not in self.memo:
            self.memo[key] = self._compute(node, region)
        return self.memo[key]

    def _compute(self, node: Node, region: Region) -> Tensor:
        if node.store is not None:
            return node.store.read(region).to(self.device, torch.float32)
        if isinstance(node, Conv):
            return self._conv(node, region)
        if isinstance(node, Norm):
            assert node.mean is not None and node.rstd is not None, f"{node.name}: statistics not accumulated"
            values = (self(node.inputs[0], region) - node.mean) * node.rstd
            module = node.module
            if getattr(module, "affine", False):
                values = values * module.weight[None, :, None, None] + module.bias[None, :, None, None]
            return values
        if isinstance(node, Pointwise):
            assert node.fn is not None
            return node.fn(*[self(parent, region) for parent in node.inputs])
        raise AssertionError(f"{node.name}: cannot evaluate {type(node).__name__}")

    def _conv(self, node: Conv, region: Region) -> Tensor:
        """The conv over ``region``: its input over the region grown by the kernel radius, padded
        (with the layer's own mode) only where the growth leaves the image."""
        y0, y1, x0, x1 = region
        ry, rx = node.radius
        inner = (max(y0 - ry, 0), min(y1 + ry, self.height), max(x0 - rx, 0), min(x1 + rx, self.width))
        values = self(node.inputs[0], inner)
        pad = (inner[2] - (x0 - rx), (x1 + rx) - inner[3], inner[0] - (y0 - ry), (y1 + ry) - inner[1])
        module = node.module
        assert module is not None
        with self.autocast():
            if node.mode == "zeros" and any(pad):
                # The conv's own zero padding on all four sides, then the rows and columns computed
                # from padding on interior sides (where the halo is real data) are cropped: this
                # saves copying the tile into a padded one.
                out = F.conv2d(values, module.weight, module.bias, 1, (ry, rx), 1, module.groups)
                crop_top, crop_left = ry - pad[2], rx - pad[0]
                out = out[:, :, crop_top : crop_top + y1 - y0, crop_left : crop_left + x1 - x0]
            else:
                if any(pad):
                    values = F.pad(values, pad, mode=node.mode)
                out = F.conv2d(values, module.weight, module.bias, 1, 0, 1, module.groups)
        return out.float()


class _Moments:
    """Per-image, per-channel count, mean and sum of squared deviations, merged tile by tile in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def add(self, values: Tensor) -> None:
        n = values.shape[2] * values.shape[3]
        # One tile's moments in float32 (torch reduces pairwise: ~1e-7 relative), merged across
        # tiles in float64; summing in float64 directly costs more than the tile's convolution.
        values = values.float()
        tile_mean = values.mean(dim=(2, 3), keepdim=True)
        centred = values - tile_mean
        m2 = (centred * centred).sum(dim=(2, 3)).double()
        mean = tile_mean[:, :, 0, 0].double()
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def finish(self, eps: float) -> tuple[Tensor, Tensor]:
        assert self.mean is not None and self.m2 is not None
        var = self.m2 / self.count  # biased, as InstanceNorm
        rstd = 1.0 / torch.sqrt(var + eps)
        return self.mean.float()[:, :, None, None], rstd.float()[:, :, None, None]


# --------------------------------------------------------------------------- the executor
def _tiles(height: int, width: int, tile: int) -> list[Region]:
    return [(y, min(y + tile, height), x, min(x + tile, width))
            for y in range(0, height, tile) for x in range(0, width, tile)]


def _reads(node: Node, materialised: set[int]) -> set[Node]:
    """The stored maps (inputs or materialised) that computing ``node`` reads."""
    found: set[Node] = set()
    stack = list(node.inputs)
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Input) or id(current) in materialised:
            found.add(current)
        else:
            stack.extend(current.inputs)
    return found


def check_streamable(network: nn.Module) -> None:
    """Raise :class:`NotStreamable` (saying which layer) unless :func:`stream_apply` can run ``network``."""
    trace(network)


def stream_apply(network: nn.Module, x: Tensor, *, tile: int = 512, device: torch.device | str | None = None,
                 store: str = "auto", scratch_dir: str | os.PathLike | None = None, amp: bool = False) -> Tensor:
    """``network(x)`` for an N x C x H x W ``x``, computed ``tile`` x ``tile`` pixels at a time, exactly.

    Tiles run on ``device`` (the network's by default; results come back to ``x``'s device).
    ``store`` holds the materialised maps: ``"memory"`` (host RAM), ``"disk"`` (raw files under
    ``scratch_dir``, default the system temp dir, so that resident memory stays bounded by the
    tile), or ``"auto"``: disk when tiles run on the CPU (there the point of tiling is memory),
    host RAM for accelerators. ``amp`` runs the convolutions in float16 autocast on CUDA.
    """
    if x.ndim != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")
    if tile < 1:
        raise ValueError(f"tile must be positive, got {tile}")
    if store not in ("auto", "memory", "disk"):
        raise ValueError(f"store must be auto, memory or disk, got {store!r}")
    if device is None:
        param = next(network.parameters(), None)
        device = param.device if param is not None else x.device
    device = torch.device(device)
    if store == "auto":
        store = "disk" if device.type == "cpu" else "memory"
    source, output, order = trace(network)
    n, _, height, width = x.shape
    source.store = _InputStore(x)

    consumers: dict[int, int] = {}
    for node in order:
        for parent in node.inputs:
            consumers[id(parent)] = consumers.get(id(parent), 0) + 1
    norm_inputs = {id(node.inputs[0]) for node in order if isinstance(node, Norm)}
    steps = [node for node in order if node is not output and not isinstance(node, Input)
             and (id(node) in norm_inputs or consumers.get(id(node), 0) > 1)]
    materialised: set[int] = set()
    last_read: dict[int, int] = {}
    for index, node in enumerate([*steps, output]):
        for read in _reads(node, materialised):
            last_read[id(read)] = index
        materialised.add(id(node))

    regions = _tiles(height, width, tile)
    evaluate = _Evaluator((height, width), device, amp)
    norms_of: dict[int, list[Norm]] = {}
    for node in order:
        if isinstance(node, Norm):
            norms_of.setdefault(id(node.inputs[0]), []).append(node)
    live: list[Node] = []
    out: Tensor | None = None
    with contextlib.ExitStack() as cleanup:
        scratch = None
        if store == "disk":
            scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="rainbench-tiles-", dir=scratch_dir)))
        cleanup.callback(lambda: [node.store.close() for node in live if node.store is not None])
        with torch.no_grad():
            for index, node in enumerate([*steps, output]):
                moments = _Moments() if id(node) in norms_of else None
                target: _Store | None = None
                for region in regions:
                    evaluate.memo.clear()
                    values = evaluate(node, region)
                    if node is output:
                        if out is None:
                            out = torch.empty((n, values.shape[1], height, width), dtype=torch.float32,
                                              device=x.device)
                        y0, y1, x0, x1 = region
                        out[:, :, y0:y1, x0:x1] = values.to(x.device, torch.float32)
                        continue
                    if target is None:
                        shape = (n, values.shape[1], height, width)
                        target = _MemoryStore(shape) if scratch is None else _new_disk_store(shape, scratch, index)
                    target.write(region, values)
                    if moments is not None:
                        moments.add(values)
                evaluate.memo.clear()
                if node is not output:
                    node.store = target
                    live.append(node)
                    for norm in norms_of.get(id(node), []):
                        norm.mean, norm.rstd = (t.to(device) for t in moments.finish(norm.module.eps))
                for done in [m for m in live if last_read.get(id(m), -1) <= index]:
                    done.store.close()
                    live.remove(done)
    assert out is not None
    return out


def _new_disk_store(shape: tuple[int, ...], scratch: Path, index: int) -> _DiskStore:
    need = int(np.prod(shape)) * 4
    free = shutil.disk_usage(scratch).free
    if need > free:
        raise OSError(f"{scratch}: exact tiling needs {need / 2**30:.1f} GiB more scratch space, "
                      f"{free / 2**30:.1f} GiB free (set TMPDIR to a larger disk)")
    return _DiskStore(shape, scratch / f"map{index:03d}.f32")


# --------------------------------------------------------------------------- whole or tiled
def has_instance_norm(network: nn.Module) -> bool:
    """True when ``network`` normalises with per-image statistics somewhere (tiling would change it)."""
    return any(uses_image_statistics(m) for m in network.modules())


def whole_image_bytes(network: nn.Module, shape: tuple[int, ...]) -> int:
    """Estimated peak activation bytes of a whole-image forward: widest layer x N x H x W x factor."""
    widths = [m.out_channels for m in network.modules() if isinstance(m, nn.Conv2d)] or [shape[1]]
    n, c, h, w = shape
    return int(max(max(widths), c) * n * h * w * 4 * WHOLE_IMAGE_FACTOR)


def free_memory(device: torch.device | str) -> int:
    """Bytes available for activations on ``device``: free VRAM on CUDA, MemAvailable on the host."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    raise OSError("cannot tell the free memory: no psutil and no MemAvailable in /proc/meminfo")


def whole_image_fits(network: nn.Module, shape: tuple[int, ...], device: torch.device | str) -> bool:
    """True when a whole-image forward of ``shape`` is expected to fit in ``device``'s free memory."""
    return whole_image_bytes(network, shape) <= MEMORY_FRACTION * free_memory(device)
