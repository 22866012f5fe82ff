"""Splits: whole groups per split, ratios by row count, deterministic, stratified, pinned."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from collection.splits import assign_splits, merge_groups, parse_ratios

RATIOS = {"train": 0.7, "validation": 0.1, "test": 0.2}


def _grouped_rows(rng: np.random.Generator, n_groups: int, max_size: int = 8) -> list[str]:
    sizes = rng.integers(1, max_size + 1, n_groups)
    return [f"g{g}" for g, size in enumerate(sizes) for _ in range(size)]


def _assert_no_straddle(groups, splits) -> None:
    seen: dict[object, set[str]] = defaultdict(set)
    for g, s in zip(groups, splits):
        seen[g].add(s)
    assert all(len(s) == 1 for s in seen.values())


def _fractions(splits: list[str]) -> dict[str, float]:
    counts = Counter(splits)
    return {name: counts[name] / len(splits) for name in counts}


# -- parse_ratios ---------------------------------------------------------------------------------


def test_parse_ratios_keeps_order_and_values():
    assert list(parse_ratios("train=0.8, test=0.2").items()) == [("train", 0.8), ("test", 0.2)]
    assert parse_ratios("a=0.5,b=0.25,c=0.25") == {"a": 0.5, "b": 0.25, "c": 0.25}
    assert parse_ratios("all=1") == {"all": 1.0}


@pytest.mark.parametrize(
    "text, names",
    [
        ("", "empty"),
        ("train0.8,test=0.2", "train0.8"),
        ("train=0.8,=0.2", "=0.2"),
        ("train=0.8,test=", "test="),
        ("train=abc,test=0.2", "abc"),
        ("train=0.8,train=0.2", "twice"),
        ("train=0.9,test=0.2", "sum to 1.1"),
        ("train=1.2,test=-0.2", "train"),
        ("train=nan,test=0.2", "finite"),
        ("tr ain=0.8,test=0.2", "tr ain"),
        ("train=0.8,test=0", "test"),
    ],
)
def test_parse_ratios_errors_name_the_bad_part(text, names):
    with pytest.raises(ValueError, match=names.replace(".", r"\.")):
        parse_ratios(text)


# -- assign_splits --------------------------------------------------------------------------------


def test_no_group_straddles_and_ratios_hold_by_rows():
    rng = np.random.default_rng(0)
    groups = _grouped_rows(rng, 2000)
    splits = assign_splits(groups, RATIOS, seed=1)
    assert len(splits) == len(groups)
    _assert_no_straddle(groups, splits)
    fractions = _fractions(splits)
    for name, ratio in RATIOS.items():
        assert abs(fractions[name] - ratio) < 0.01, (name, fractions)


def test_ratios_hold_by_rows_with_one_huge_group():
    groups = ["big"] * 300 + [f"s{i}" for i in range(700)]
    splits = assign_splits(groups, {"train": 0.8, "test": 0.2}, seed=0)
    _assert_no_straddle(groups, splits)
    # Half a group of error at a boundary at most: here a 300-row group sits anywhere.
    assert abs(_fractions(splits)["test"] - 0.2) <= 0.15 + 1e-9


def test_deterministic_for_a_seed_and_seed_matters():
    groups = _grouped_rows(np.random.default_rng(1), 500)
    first = assign_splits(groups, RATIOS, seed=3)
    assert assign_splits(groups, RATIOS, seed=3) == first
    assert assign_splits(groups, RATIOS, seed=4) != first


def test_independent_of_row_order():
    rng = np.random.default_rng(2)
    groups = _grouped_rows(rng, 800)
    strata = [["light", "heavy", None][int(g[1:]) % 3] for g in groups]
    splits = assign_splits(groups, RATIOS, seed=7, strata=strata)
    perm = rng.permutation(len(groups))
    permuted = assign_splits([groups[p] for p in perm], RATIOS, seed=7, strata=[strata[p] for p in perm])
    assert [permuted[k] for k in np.argsort(perm)] == splits


def test_row_ids_make_result_independent_of_label_numbering():
    rng = np.random.default_rng(3)
    ids = [f"{i:08x}" for i in rng.permutation(3000)]
    clusters = rng.integers(0, 900, 3000)
    perm = rng.permutation(3000)
    # Same rows in another order: merge_groups numbers the groups differently, row_ids name them alike.
    labels = merge_groups(clusters)
    labels_perm = merge_groups(clusters[perm])
    splits = assign_splits(labels, RATIOS, seed=0, row_ids=ids)
    splits_perm = assign_splits(labels_perm, RATIOS, seed=0, row_ids=[ids[p] for p in perm])
    assert [splits_perm[k] for k in np.argsort(perm)] == splits


def test_stratification_keeps_each_stratum_ratio():
    rng = np.random.default_rng(4)
    groups, strata = [], []
    # Strata of very different sizes; unstratified splitting would let the small one drift.
    for kind, n_groups in (("heavy", 1500), ("light", 300), ("fog", 120)):
        for g in range(n_groups):
            size = int(rng.integers(1, 4))
            groups += [f"{kind}{g}"] * size
            strata += [kind] * size
    splits = assign_splits(groups, {"train": 0.75, "test": 0.25}, seed=5, strata=strata)
    _assert_no_straddle(groups, splits)
    for kind in ("heavy", "light", "fog"):
        rows = [s for s, k in zip(splits, strata) if k == kind]
        assert abs(rows.count("test") / len(rows) - 0.25) < 0.02, kind


def test_group_spanning_strata_follows_its_majority():
    groups = ["scene"] * 5 + [f"x{i}" for i in range(20)]
    strata = ["heavy"] * 4 + ["light"] + ["light"] * 20
    splits = assign_splits(groups, {"train": 0.5, "test": 0.5}, strata=strata)
    _assert_no_straddle(groups, splits)
    light_only = [s for g, s in zip(groups, splits) if g != "scene"]
    # Without the scene, the light stratum (20 single rows) splits exactly in half.
    assert Counter(light_only) == {"train": 10, "test": 10}


def test_fixed_pins_are_honoured_and_ratios_apply_to_the_rest():
    rng = np.random.default_rng(6)
    groups = _grouped_rows(rng, 1000)
    fixed = {f"g{g}": ("train" if g % 2 else "official_test") for g in range(0, 1000, 3)}
    splits = assign_splits(groups, {"train": 0.8, "test": 0.2}, seed=0, fixed=fixed)
    _assert_no_straddle(groups, splits)
    for g, s in zip(groups, splits):
        if g in fixed:
            assert s == fixed[g]
    free = [s for g, s in zip(groups, splits) if g not in fixed]
    assert set(free) == {"train", "test"}
    assert abs(free.count("test") / len(free) - 0.2) < 0.02


def test_numpy_and_python_keys_name_the_same_group():
    groups = np.array([5, 5, 7, 7, 9])
    pinned = assign_splits(groups, {"train": 0.5, "test": 0.5}, fixed={5: "test", np.int64(7): "train"})
    assert pinned[:4] == ["test", "test", "train", "train"]


def test_assign_splits_rejects_bad_input():
    with pytest.raises(ValueError, match="row 1"):
        assign_splits(["a", None], {"train": 1.0})
    with pytest.raises(ValueError, match="sum"):
        assign_splits(["a"], {"train": 0.5})
    with pytest.raises(ValueError, match="strata"):
        assign_splits(["a", "b"], {"train": 1.0}, strata=["x"])
    with pytest.raises(ValueError, match="invalid split"):
        assign_splits(["a"], {"train": 1.0}, fixed={"a": "no way"})


# -- merge_groups ---------------------------------------------------------------------------------


def test_merge_groups_unions_any_shared_key():
    clusters = [0, 0, 2, 3, 4, 5]
    scenes = [None, "s1", "s1", None, "s2", "s2"]
    labels = merge_groups(clusters, scenes)
    # 0-1 by cluster, 1-2 by scene, 4-5 by scene; 3 alone.
    np.testing.assert_array_equal(labels, [0, 0, 0, 3, 4, 4])
    assert labels.dtype == np.int64


def test_merge_groups_treats_nan_and_none_as_missing():
    scenes = [float("nan"), None, "a", float("nan")]
    np.testing.assert_array_equal(merge_groups(scenes), [0, 1, 2, 3])


def test_merge_groups_keeps_clusters_and_scenes_whole_in_splits():
    rng = np.random.default_rng(8)
    n = 4000
    clusters = rng.integers(0, 2500, n)
    scenes = [f"scene{s}" if s < 300 else None for s in rng.integers(0, 1200, n)]
    groups = merge_groups(np.asarray(clusters), scenes)
    splits = assign_splits(groups, {"train": 0.8, "test": 0.2}, seed=2)
    _assert_no_straddle(clusters.tolist(), splits)
    _assert_no_straddle([s for s in scenes if s], [sp for s, sp in zip(scenes, splits) if s])


def test_merge_groups_is_a_partition_refinement_free_of_order():
    rng = np.random.default_rng(9)
    a = rng.integers(0, 50, 300)
    b = [f"k{v}" for v in rng.integers(0, 80, 300)]
    perm = rng.permutation(300)
    labels = merge_groups(a, b)
    labels_perm = merge_groups(a[perm], [b[p] for p in perm])
    restored = np.empty_like(labels_perm)
    restored[perm] = labels_perm
    # Same partition: two rows share a label in one run exactly when they do in the other.
    same = labels[:, None] == labels[None, :]
    same_perm = restored[:, None] == restored[None, :]
    assert np.array_equal(same, same_perm)


def test_merge_groups_checks_lengths():
    with pytest.raises(ValueError, match="column 1"):
        merge_groups([1, 2], [1])
    with pytest.raises(ValueError):
        merge_groups()


# -- stable splits across incremental ingests -----------------------------------------------------


def _noise_images(folder, start: int, count: int) -> None:
    from PIL import Image

    folder.mkdir(exist_ok=True)
    for k in range(start, start + count):
        rng = np.random.default_rng(k)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{k:03d}.png")


def test_adding_images_never_moves_existing_rows(tmp_path):
    import json

    import pandas as pd

    from collection.ingest import IngestOptions, SourceSpec, ingest

    photos, out = tmp_path / "photos", tmp_path / "out"
    _noise_images(photos, 0, 40)
    options = IngestOptions(min_side=1, workers=0, split="train=0.8,test=0.2")
    ingest([SourceSpec(photos)], out, options)
    before = pd.read_parquet(out / "manifest.parquet").set_index("path")["split"]
    _noise_images(photos, 40, 10)
    ingest([SourceSpec(photos)], out, options)
    after = pd.read_parquet(out / "manifest.parquet").set_index("path")["split"]
    assert after.loc[before.index].tolist() == before.tolist()
    # A fresh ingest of the 50 images draws the split boundaries elsewhere: the pinning is what held them.
    fresh_out = tmp_path / "fresh"
    ingest([SourceSpec(photos)], fresh_out, options)
    fresh = pd.read_parquet(fresh_out / "manifest.parquet").set_index("path")["split"]
    assert (fresh.loc[before.index] != before).any()
    drift = json.loads((out / "report" / "report.json").read_text())["split_drift"]
    assert (drift["kept"], drift["moved"], drift["new"]) == (40, 0, 10)
    assert drift["ratios"]["test"]["rows"] == (after == "test").sum()
    assert abs(drift["ratios"]["test"]["share"] - 0.2) <= 0.05


def test_a_new_seed_or_ratio_draws_splits_afresh(tmp_path):
    from collection.curate import previous_splits
    from collection.ingest import IngestOptions, SourceSpec, ingest

    photos, out = tmp_path / "photos", tmp_path / "out"
    _noise_images(photos, 0, 12)
    ingest([SourceSpec(photos)], out, IngestOptions(min_side=1, workers=0, split="train=0.5,test=0.5", seed=1))
    assert len(previous_splits(out, 1, "train=0.5,test=0.5")) == 12
    assert previous_splits(out, 2, "train=0.5,test=0.5") == {}
    assert previous_splits(out, 1, "train=0.8,test=0.2") == {}


def test_split_rank_puts_test_before_validation_before_train():
    from collection.splits import split_rank

    ranked = sorted(["train", "extra", "validation", "test", "val", "Test_official"], key=lambda s: (split_rank(s), s))
    assert ranked == ["Test_official", "test", "val", "validation", "extra", "train"]
