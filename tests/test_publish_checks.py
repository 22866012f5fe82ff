"""`rainbench publish` refuses, before staging any shard, what the Hub would refuse: bad repo ids and licences."""

from __future__ import annotations

import pytest

from collection.card import HUB_LICENSES, check_license
from collection.publish import PublishError, check_repo_id, dry_run
from rainbench.cli import main

BAD_REPO_IDS = ["../x", "a/b--c", "org/" + "n" * 200, "a/b..c", "org/name.git", "-org/name", "a/b/c", "noslash",
                "org/na me", "org/"]


@pytest.fixture
def dataset(tmp_path):
    """An empty folder: the checks come before the dataset is even read."""
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


@pytest.fixture(scope="module")
def real_dataset(tmp_path_factory):
    from test_publish import make_dataset

    return make_dataset(tmp_path_factory.mktemp("pub"))


@pytest.mark.parametrize("repo_id", BAD_REPO_IDS)
def test_cli_dry_run_refuses_repo_ids_the_hub_rejects(dataset, tmp_path, capsys, repo_id):
    tree = tmp_path / "tree"
    assert main(["publish", str(dataset), "--repo-id", repo_id, "--dry-run", str(tree), "-q"]) == 2
    err = capsys.readouterr().err
    assert "--repo-id" in err
    assert not tree.exists()


@pytest.mark.parametrize("repo_id", BAD_REPO_IDS)
def test_library_refuses_them_too(dataset, tmp_path, repo_id):
    with pytest.raises(PublishError, match="repo id"):
        dry_run(dataset, tmp_path / "tree", repo_id=repo_id)
    assert not (tmp_path / "tree").exists()


def test_valid_repo_ids_pass():
    for repo_id in ("org/rain", "Some-User/real_rain.v2", "a/" + "n" * 96):
        assert check_repo_id(repo_id) == repo_id


def test_an_unknown_licence_is_refused_before_any_shard(dataset, tmp_path, capsys):
    tree = tmp_path / "tree"
    assert main(["publish", str(dataset), "--repo-id", "org/rain", "--license", "not-a-licence",
                 "--dry-run", str(tree), "-q"]) == 2
    assert "not-a-licence" in capsys.readouterr().err
    assert not tree.exists()
    with pytest.raises(PublishError, match="not-a-licence"):
        dry_run(dataset, tree, repo_id="org/rain", license="not-a-licence")
    assert not tree.exists()


def test_a_licence_in_the_wrong_case_gets_the_hub_id_suggested(dataset, tmp_path, capsys):
    assert main(["publish", str(dataset), "--repo-id", "org/rain", "--license", "CC-BY-4.0",
                 "--dry-run", str(tmp_path / "tree"), "-q"]) == 2
    assert "cc-by-4.0" in capsys.readouterr().err


def test_hub_licences_are_accepted_and_reach_the_card(real_dataset, tmp_path):
    assert {"cc-by-4.0", "cc-by-nc-4.0", "mit", "apache-2.0", "cc0-1.0", "other"} <= HUB_LICENSES
    assert check_license("cc-by-nc-sa-4.0") == "cc-by-nc-sa-4.0"
    with pytest.raises(ValueError, match="Hub licence"):
        check_license("cc-by-5.0")
    tree = dry_run(real_dataset, tmp_path / "tree", repo_id="org/rain", license="cc-by-sa-4.0")
    assert "`cc-by-sa-4.0` (the publisher's)" in tree.card.read_text()
