"""The weight files pyiqa metrics need: a manifest, offline resolution, fetch and verify.

One module per job: :mod:`.manifest` (the files and errors), :mod:`.locate` (resolution),
:mod:`.fetch` (download and verification), :mod:`.pyiqa_env` (building a metric from resolved files).

pyiqa downloads weights on first use (Hugging Face Hub, torchvision, OpenAI CLIP, timm), which
fails on offline GPU nodes, halfway through a run. rainbench lists every file up front, looks for it
in a weights directory first (``--metric-weights`` or ``$RAINBENCH_WEIGHTS_DIR``) and then in the
caches pyiqa itself uses, and fails before a run starts when one is missing.

A weights directory has the layout of a torch hub dir, so it also works as ``$TORCH_HOME/hub``::

    DIR/pyiqa/<file>           pyiqa's own weights (load_file_from_url's DEFAULT_CACHE_DIR)
    DIR/checkpoints/<file>     torchvision backbones (torch.hub.load_state_dict_from_url)
    DIR/clip/<file>            OpenAI CLIP models (pyiqa.archs.clip_model.load)
    DIR/huggingface/models--timm--<name>/...   timm backbones, Hugging Face cache layout

While a metric is built, :func:`pyiqa_environment` points pyiqa, torch.hub, CLIP and the Hub client
at a private directory of symlinks to the resolved files, so pyiqa's own loading code runs unchanged.
"""

from rainbench.weights.fetch import VerifyResult, fetch, verify, verify_file
from rainbench.weights.locate import (
    ENV_VAR,
    check,
    default_cache_root,
    expected_path,
    locate,
    resolve_weights_dir,
    weights_dir_from_env,
)
from rainbench.weights.manifest import (
    MANIFEST,
    PYIQA_HF_REPO,
    WeightFile,
    WeightsError,
    WeightsMissingError,
    manifest_for,
)
from rainbench.weights.pyiqa_env import pyiqa_environment

__all__ = [
    "ENV_VAR", "MANIFEST", "PYIQA_HF_REPO", "VerifyResult", "WeightFile", "WeightsError", "WeightsMissingError",
    "check", "default_cache_root", "expected_path", "fetch", "locate", "manifest_for", "pyiqa_environment",
    "resolve_weights_dir", "verify", "verify_file", "weights_dir_from_env",
]
