"""Uploading a Hub tree against the fake Hub on loopback (tests/hub_server.py), and loading a
published dataset by Hub id from the local Hugging Face cache, offline.

The fake server covers repo creation, branches, tree listing, YAML validation, preupload, the
classic LFS batch/upload/verify path and NDJSON commits (see its docstring for what it does not).
Xet is switched off so huggingface_hub takes the LFS path the fake server speaks.
"""

from __future__ import annotations

import shutil
import socket

import pytest
from hub_server import FakeHub
from test_publish import make_dataset

from collection.publish import PublishError, dry_run, upload

REPO = "org/rain"
# huggingface_hub 2.4 streams LFS uploads with httpx2's deprecated `data=<file>`; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture(autouse=True)
def no_xet_no_login(monkeypatch, tmp_path):
    """Classic LFS uploads, no ambient token or cached login, and progress bars off."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub():
    with FakeHub(tokens={"hf_write": {"*"}, "hf_elsewhere": {"someone-else"}}) as server:
        yield server


@pytest.fixture
def tree(tmp_path):
    """A tree of 5 one-row shards (3 train, 2 test) and its card."""
    return dry_run(make_dataset(tmp_path), tmp_path / "tree", repo_id=REPO, shard_size=300)


def _local(tree) -> dict[str, bytes]:
    return {p.relative_to(tree.out).as_posix(): p.read_bytes() for p in tree.out.rglob("*") if p.is_file()}


def test_upload_lands_every_file_and_the_card_last(hub, tree):
    summary = upload(tree.out, REPO, token="hf_write", endpoint=hub.url, files_per_commit=2)
    remote = hub.files(REPO)
    assert {k: v for k, v in remote.items() if k != ".gitattributes"} == _local(tree)
    commits = hub.repos[REPO].commits
    assert len(commits) == 3 + 1  # ceil(5 / 2) data commits, then the card
    assert commits[-1]["paths"] == ["README.md"]
    assert all("README.md" not in c["paths"] for c in commits[:-1])
    assert summary.commits == 4 and sorted(summary.uploaded) == sorted(_local(tree))
    assert not hub.repos[REPO].private


def test_failure_halfway_is_not_finished_and_resumes(hub, tree):
    hub.fail_commit_at = 2
    with pytest.raises(PublishError) as info:
        upload(tree.out, REPO, token="hf_write", endpoint=hub.url, files_per_commit=2)
    message = str(info.value)
    assert "\n" not in message and "500" in message and "re-run" in message
    first = hub.files(REPO)
    assert "README.md" not in first  # an interrupted upload never looks finished
    landed = sorted(p for p in first if p.startswith("data/"))
    assert len(landed) == 2
    puts_before = sum(1 for method, _ in hub.requests if method == "PUT")

    summary = upload(tree.out, REPO, token="hf_write", endpoint=hub.url, files_per_commit=2)
    assert sorted(summary.skipped) == landed
    assert set(summary.uploaded) == set(_local(tree)) - set(landed)
    assert {k: v for k, v in hub.files(REPO).items() if k != ".gitattributes"} == _local(tree)
    resumed = hub.repos[REPO].commits[1:]
    assert not any(set(c["paths"]) & set(landed) for c in resumed)
    # Only the shards of the failed commit and the ones never sent were uploaded again.
    assert sum(1 for method, _ in hub.requests if method == "PUT") - puts_before <= len(_local(tree)) - len(landed)


def test_republish_deletes_stale_shards_with_the_card(hub, tree, tmp_path):
    upload(tree.out, REPO, token="hf_write", endpoint=hub.url)
    again = dry_run(make_dataset(tmp_path / "again"), tmp_path / "tree2", repo_id=REPO, shard_size="1GB")
    summary = upload(again.out, REPO, token="hf_write", endpoint=hub.url)
    remote = hub.files(REPO)
    assert sorted(p for p in remote if p.startswith("data/")) == sorted(s.path for s in again.shards)
    assert len(summary.deleted) == 5
    assert set(hub.repos[REPO].commits[-1]["paths"]) == set(summary.deleted) | {"README.md"}


def test_upload_to_a_branch(hub, tree):
    summary = upload(tree.out, REPO, token="hf_write", endpoint=hub.url, revision="v1", private=True)
    assert summary.revision == "v1"
    assert "README.md" in hub.files(REPO, "v1") and "README.md" not in hub.files(REPO, "main")
    assert hub.repos[REPO].private


def test_missing_token_is_one_clear_line(hub, tree):
    with pytest.raises(PublishError) as info:
        upload(tree.out, REPO, endpoint=hub.url)
    assert "no Hugging Face token" in str(info.value) and "\n" not in str(info.value)
    assert hub.requests == []


def test_env_token_is_honoured(hub, tree, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    upload(tree.out, REPO, endpoint=hub.url)
    assert "README.md" in hub.files(REPO)


@pytest.mark.parametrize("token, status", [("hf_elsewhere", "403"), ("hf_bogus", "401")])
def test_no_permission_is_one_clear_line(hub, tree, token, status):
    with pytest.raises(PublishError) as info:
        upload(tree.out, REPO, token=token, endpoint=hub.url)
    message = str(info.value)
    assert status in message and "\n" not in message
    assert ("write permission on org/rain" if status == "403" else "rejected the token") in message
    assert REPO not in hub.repos


def test_no_network_is_one_clear_line(tree):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PublishError) as info:
        upload(tree.out, REPO, token="hf_write", endpoint=f"http://127.0.0.1:{port}")
    assert "cannot reach the Hub" in str(info.value) and "\n" not in str(info.value)


def test_cli_upload_uses_hf_endpoint_and_token(hub, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from rainbench.cli import main

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    src = make_dataset(tmp_path)
    assert main(["publish", str(src), "--repo-id", REPO, "-q"]) == 0
    assert "README.md" in hub.files(REPO) and "uploaded" in capsys.readouterr().out
    monkeypatch.setenv("HF_TOKEN", "hf_elsewhere")
    assert main(["publish", str(src), "--repo-id", "someone/else-rain", "--token", "hf_bogus", "-q"]) == 1
    err = capsys.readouterr().err
    assert "401" in err and len(err.strip().splitlines()) == 1


def test_load_published_dataset_by_hub_id_offline(tree, tmp_path, monkeypatch):
    """A Hub id resolves through the local cache (refs/main -> snapshot) with HF_HUB_OFFLINE=1."""
    import datasets
    from huggingface_hub import constants

    from rainbench.data import open_dataset

    cache = tmp_path / "hub"
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / "datasets--org--rain"
    shutil.copytree(tree.out, repo_dir / "snapshots" / sha)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(sha)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)

    bench = open_dataset(REPO, split="train", offline=True)
    assert bench.name == REPO and len(bench) == tree.rows["train"]
    # Rows as the runner streams them (undecoded; batches() decodes them in DataLoader workers).
    rows = {row["id"]: row for row in bench.table}
    assert sorted(rows) == ["a001", "a002", "a003"]
    assert all(row["rainy"]["bytes"] and row["clean"]["bytes"] for row in rows.values())
    assert bench.meta["has_clean"].all()
    with pytest.raises(Exception, match="not in the local Hugging Face cache"):
        open_dataset("org/missing", split="train", offline=True)
