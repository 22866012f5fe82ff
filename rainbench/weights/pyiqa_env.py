"""Making pyiqa load its weights from resolved files while a metric is built.

torch.hub, torchvision and CLIP follow ``$TORCH_HOME`` (a public knob read at call time); the Hub
client and timm follow ``huggingface_hub.constants.HF_HUB_CACHE`` (a public constant). pyiqa's
own files need its module constant ``DEFAULT_CACHE_DIR`` set: the comment in
:func:`pyiqa_environment` says why no public knob does the job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from rainbench.weights.locate import check, resolve_weights_dir
from rainbench.weights.manifest import (
    HF_SUBDIR,
    WeightFile,
    WeightsError,
    WeightsMissingError,
    manifest_for,
)

logger = logging.getLogger(__name__)


def _stage(files: dict[WeightFile, Path], root: Path) -> None:
    """Symlink resolved files into ``root`` in the layout pyiqa, torch.hub, CLIP and timm read."""
    for entry, path in files.items():
        if entry.source == "timm":
            repo = root / entry.relpath
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / "main").write_text("rainbench")
            target = repo / "snapshots" / "rainbench" / entry.filename
        else:
            target = root / entry.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(path.resolve())
        except OSError:  # file systems without symlinks
            shutil.copyfile(path, target)


def _refuse_download(*args, **kwargs):
    raise WeightsError("offline: refusing to download a weight file (run `rainbench metric-weights fetch` first)")


@contextlib.contextmanager
def pyiqa_environment(metric: str, weights_dir: str | os.PathLike | None = None, offline: bool = True,
                      manifest: Iterable[WeightFile] | None = None) -> Iterator[dict[str, Path]]:
    """While building ``metric``, make pyiqa load its weights from the resolved files.

    With ``offline`` (the default) every file must resolve (WeightsMissingError otherwise) and all
    download paths raise. Without it, missing files are downloaded into the weights directory (or
    pyiqa's default cache when there is none).
    """
    import huggingface_hub.constants as hf_constants
    import pyiqa.utils.download_util as pyiqa_download
    import torch.hub

    wdir = resolve_weights_dir(weights_dir)
    entries = manifest_for(metric, manifest)
    try:
        resolved = check([metric], wdir, manifest)
    except WeightsMissingError:
        if offline:
            raise
        resolved = None
    staging = Path(tempfile.mkdtemp(prefix="rainbench-weights-"))
    if resolved is not None and entries:
        root = staging / "staged"
        _stage({e: resolved[e.key] for e in entries}, root)
    else:
        root = wdir
    patches: list[tuple[object, str, object]] = []

    def patch(obj: object, attr: str, value: object) -> None:
        patches.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    old_torch_home = os.environ.get("TORCH_HOME")
    try:
        if root is not None:
            # torch.hub's public knob: get_dir() is $TORCH_HOME/hub at call time (torchvision and
            # CLIP read it so); a weights directory has the hub layout, so hub links to it.
            (staging / "hub").symlink_to(root.resolve(), target_is_directory=True)
            os.environ["TORCH_HOME"] = str(staging)
            if torch.hub.get_dir() != str(staging / "hub"):
                logger.warning("torch.hub.set_dir() was called in this process; $TORCH_HOME is not followed, "
                               "so torchvision and CLIP weights may not resolve from %s", root)
            # pyiqa (0.1.16 and its main branch) has no cache knob read at call time:
            # DEFAULT_CACHE_DIR is $TORCH_HOME/hub/pyiqa computed once at import, and pyiqa is
            # usually imported long before (metric specs record its version), with one process
            # building metrics from several weights directories. Its per-metric public option,
            # ``pretrained_model_path``, is not equivalent for every metric: MANIQA's branch loads
            # ``weight_keys='params'`` and TOPIQ's ``strict=False`` where their default branches do
            # not, and it covers one file of the metric only. So the module constant, which
            # load_file_from_url reads at each call, is set for the build and restored after.
            patch(pyiqa_download, "DEFAULT_CACHE_DIR", str(root / "pyiqa"))
            # huggingface_hub's public constant (HF_HUB_CACHE, the env var, is read at import);
            # hf_hub_download reads it at each call, which is how timm backbones find their files.
            patch(hf_constants, "HF_HUB_CACHE", str(root / HF_SUBDIR))
        if offline:
            patch(hf_constants, "HF_HUB_OFFLINE", True)
            # Neither torch.hub nor pyiqa has an offline switch; a file missing from the manifest
            # must fail loudly, not download in the middle of a run (DESIGN: offline works).
            patch(pyiqa_download, "download_url_to_file", _refuse_download)
            patch(torch.hub, "download_url_to_file", _refuse_download)
        yield resolved or {}
    finally:
        for obj, attr, value in reversed(patches):
            setattr(obj, attr, value)
        if old_torch_home is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = old_torch_home
        shutil.rmtree(staging, ignore_errors=True)
