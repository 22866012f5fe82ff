"""The DVC pipeline: `dvc repro` runs every stage on the demo data from a fresh repository, and
`dvc exp run -S` re-runs only the stages that depend on the changed parameter."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    if shutil.which("git") is None or not (BIN / "dvc").exists():
        pytest.skip("needs git and dvc")
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["size"] = 96  # tiny budget: the pipeline's shape is under test, not the numbers
    for method in params["train"].values():
        method.update(iters=2, crop=48, batch_size=2)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "DVC_NO_ANALYTICS": "1"}
    _run(["git", "init", "-q"], repo, env)
    _run(["dvc", "init", "-q"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "pipeline"], repo, env)
    return repo, env


def test_repro_runs_every_stage_and_writes_metrics(project):
    repo, env = project
    log = _run(["dvc", "repro"], repo, env)
    stages = set(re.findall(r"Running stage '([^']+)'", log))
    assert {"data", "ingest", "train@prenet", "train@nlcl", "run_prior@identity", "run_learned@nlcl", "leaderboard"} <= stages
    board = json.loads((repo / "reports" / "leaderboard.json").read_text())
    methods = set(next(iter(board.values())))
    assert {"identity", "guided", "prenet", "nlcl"} <= methods
    assert (repo / "runs" / "eval" / "prenet" / "summary.json").exists()
    metrics = _run(["dvc", "metrics", "show", "--json"], repo, env)
    assert "leaderboard.json" in metrics
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "results"], repo, env)
    assert "didn't change" in _run(["dvc", "repro"], repo, env)  # a second repro does nothing


def test_exp_run_reruns_only_what_depends_on_the_parameter(project):
    repo, env = project
    log = _run(["dvc", "exp", "run", "-S", "train.prenet.iters=3"], repo, env)
    ran = set(re.findall(r"Running stage '([^']+)'", log))
    assert ran == {"train@prenet", "run_learned@prenet", "leaderboard"}, log[-2000:]
