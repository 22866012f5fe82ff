"""Near-duplicate search and clustering: exact against brute force, transitive, order-independent."""

from __future__ import annotations

import numpy as np
import pytest

from collection.dedup import choose_representatives, cluster, near_duplicate_pairs


def _flip(value: np.uint64, bits: np.ndarray) -> np.uint64:
    return value ^ np.uint64(sum(1 << int(b) for b in bits))


def _planted(rng: np.random.Generator, n: int, radius: int, copies: int = 15) -> np.ndarray:
    """Random hashes plus neighbours of some of them at every distance 0 .. radius + 2, and repeats."""
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    planted = []
    for k in range(4 * (radius + 3)):
        base = hashes[rng.integers(n)]
        planted.append(_flip(base, rng.choice(64, k % (radius + 3), replace=False)))
    repeats = np.full(copies, hashes[0], dtype=np.uint64)  # a burst of identical hashes
    out = np.concatenate([hashes, np.array(planted, dtype=np.uint64), repeats])
    return out[rng.permutation(len(out))]


def _brute_force(hashes: np.ndarray, radius: int) -> np.ndarray:
    """Reference: every pair's distance from unpacked bits, no shortcuts."""
    bits = np.unpackbits(hashes.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1).astype(np.int16)
    distance = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    i, j = np.nonzero(np.triu(distance <= radius, k=1))
    return np.stack([i, j], axis=1).astype(np.int64)


@pytest.mark.parametrize("radius", [0, 1, 4, 8, 12])
def test_pairs_equal_brute_force(radius):
    rng = np.random.default_rng(radius)
    hashes = _planted(rng, 700, radius)
    pairs = near_duplicate_pairs(hashes, radius)
    expected = _brute_force(hashes, radius)
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2
    np.testing.assert_array_equal(pairs, expected)
    assert len(expected) > 100  # the planted neighbours and repeats are really there


def test_pairs_on_clustered_hashes_equal_brute_force():
    # Hashes concentrated in a small region of Hamming space: buckets are far from uniform.
    rng = np.random.default_rng(7)
    centre = rng.integers(0, 2**64, dtype=np.uint64, endpoint=False)
    hashes = np.array([_flip(centre, rng.choice(64, rng.integers(0, 12), replace=False)) for _ in range(600)])
    np.testing.assert_array_equal(near_duplicate_pairs(hashes, 8), _brute_force(hashes, 8))


def test_pairs_guard_memory():
    hashes = np.zeros(200, dtype=np.uint64)  # 19,900 pairs
    assert len(near_duplicate_pairs(hashes, 8)) == 200 * 199 // 2
    with pytest.raises(ValueError, match="cluster"):
        near_duplicate_pairs(hashes, 8, max_pairs=1000)


def test_pairs_accept_python_ints_above_2_63():
    hashes = [2**64 - 1, 2**64 - 2, 0]
    np.testing.assert_array_equal(near_duplicate_pairs(hashes, 1), [[0, 1]])


def test_bad_radius_and_shape():
    with pytest.raises(ValueError):
        near_duplicate_pairs(np.zeros(3, dtype=np.uint64), -1)
    with pytest.raises(ValueError):
        cluster(np.zeros((2, 2), dtype=np.uint64))


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(int(label), set()).add(index)
    return {frozenset(g) for g in groups.values()}


def test_cluster_is_transitive_over_chains():
    rng = np.random.default_rng(3)
    start = rng.integers(0, 2**64, dtype=np.uint64, endpoint=False)
    # Each link is 6 bits from the previous one on fresh bits, so the ends are 24 bits apart.
    chain = [start]
    for step in range(4):
        chain.append(_flip(chain[-1], np.arange(6 * step, 6 * step + 6)))
    loners = rng.integers(0, 2**64, 50, dtype=np.uint64, endpoint=False)
    hashes = np.concatenate([np.array(chain, dtype=np.uint64), loners])
    labels = cluster(hashes, radius=8)
    assert len(set(labels[:5].tolist())) == 1
    assert labels[0] == 0  # label is the smallest member index
    assert np.array_equal(labels[5:], np.arange(5, 55))  # unrelated hashes stay alone
    assert near_duplicate_pairs(hashes[[0, 4]], 8).size == 0  # joined only through the chain


def test_cluster_matches_components_of_brute_force_pairs():
    rng = np.random.default_rng(11)
    hashes = _planted(rng, 500, 8, copies=30)
    labels = cluster(hashes, radius=8)
    # Reference partition: naive union-find over the brute-force pairs.
    parent = list(range(len(hashes)))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for i, j in _brute_force(hashes, 8):
        parent[find(int(i))] = find(int(j))
    assert _partition(labels) == _partition(np.array([find(i) for i in range(len(hashes))]))


def test_cluster_partition_independent_of_input_order():
    rng = np.random.default_rng(5)
    hashes = _planted(rng, 800, 8)
    keys = [f"k{i % 97}" if i % 5 == 0 else None for i in range(len(hashes))]
    labels = cluster(hashes, 8, exact_keys=keys)
    perm = rng.permutation(len(hashes))
    permuted = cluster(hashes[perm], 8, exact_keys=[keys[p] for p in perm])
    # Same partition after mapping back; labels remain the smallest member index.
    restored = np.empty_like(permuted)
    restored[perm] = permuted
    assert _partition(restored) == _partition(labels)
    for members in _partition(labels):
        assert {int(labels[m]) for m in members} == {min(members)}


def test_cluster_joins_equal_exact_keys_only():
    rng = np.random.default_rng(9)
    hashes = rng.integers(0, 2**64, 6, dtype=np.uint64, endpoint=False)  # all far apart
    keys = ["a", None, "b", "a", None, "b"]
    labels = cluster(hashes, 8, exact_keys=keys)
    np.testing.assert_array_equal(labels, [0, 1, 2, 0, 4, 2])
    with pytest.raises(ValueError):
        cluster(hashes, 8, exact_keys=["a"])


def test_cluster_collapses_a_large_burst_of_identical_hashes():
    rng = np.random.default_rng(2)
    hashes = np.concatenate([np.full(20_000, 12345, dtype=np.uint64), rng.integers(0, 2**64, 100, dtype=np.uint64)])
    labels = cluster(hashes, 8)
    assert np.all(labels[:20_000] == 0)
    assert len(np.unique(labels)) == 101


def test_representatives_rule():
    labels = np.array([0, 0, 0, 3, 3, 5, 6, 6, 6])
    width = np.array([100, 200, 200, 50, 50, 10, 30, 30, 30])
    height = np.array([100, 100, 100, 50, 50, 10, 30, 30, 30])
    sharp = np.array([9.0, 1.0, 2.0, np.nan, 0.5, 0.0, 3.0, 3.0, 1.0])
    chosen = choose_representatives(labels, width, height, sharp)
    # Largest first (index 1 and 2 tie on size, 2 is sharper); NaN sharpness loses; then lowest index.
    np.testing.assert_array_equal(np.flatnonzero(chosen), [2, 4, 5, 6])


def test_representatives_one_per_cluster_at_scale():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 300, 5000)
    width, height = rng.integers(1, 50, 5000), rng.integers(1, 50, 5000)
    sharp = rng.random(5000)
    chosen = choose_representatives(labels, width, height, sharp)
    assert sorted(labels[chosen].tolist()) == sorted(set(labels.tolist()))
    pixels = width * height
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        best = members[chosen[members]][0]
        assert pixels[best] == pixels[members].max()
    with pytest.raises(ValueError):
        choose_representatives(labels, width[:10], height, sharp)


def test_small_blocks_give_the_same_pairs_and_clusters(monkeypatch):
    # Exercise the memory guard: candidates split into many blocks, labels compacted between them.
    from collection import dedup

    rng = np.random.default_rng(12)
    hashes = _planted(rng, 600, 8, copies=20)
    expected_pairs = near_duplicate_pairs(hashes, 8)
    expected_labels = cluster(hashes, 8)
    monkeypatch.setattr(dedup, "_BLOCK_CANDIDATES", 7)
    np.testing.assert_array_equal(near_duplicate_pairs(hashes, 8), expected_pairs)
    np.testing.assert_array_equal(cluster(hashes, 8), expected_labels)


# -- images without structure ---------------------------------------------------------------------


def test_flat_hashes_are_not_informative_and_join_by_exact_keys_only():
    from PIL import Image

    from collection.phash import informative, phash64

    flat = [phash64(Image.new("RGB", size, colour)) for size, colour in
            (((64, 64), (0, 0, 0)), ((64, 64), (255, 255, 255)), ((64, 64), (255, 0, 0)), ((1, 1), (9, 9, 9)),
             ((10000, 1), (9, 9, 9)))]
    rng = np.random.default_rng(0)
    photo = phash64(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    assert not informative(np.array(flat, dtype=np.uint64)).any()
    assert informative(photo)
    hashes = np.array(flat + [photo, photo], dtype=np.uint64)
    keys = ["a", "b", "c", "d", "d", None, None]  # the last flat image has the same pixels as the one before
    labels = cluster(hashes, 8, exact_keys=keys, searchable=informative(hashes))
    np.testing.assert_array_equal(labels, [0, 1, 2, 3, 3, 5, 5])
    # Without the structure test every flat image would be one cluster.
    assert len(set(cluster(hashes, 8, exact_keys=keys))) == 2


def test_searchable_mask_is_checked():
    with pytest.raises(ValueError, match="searchable"):
        cluster(np.zeros(3, dtype=np.uint64), 8, searchable=[True])


def test_priority_picks_the_representative_before_size():
    labels = np.array([0, 0, 0])
    chosen = choose_representatives(labels, [10, 100, 50], [10, 100, 50], [1.0, 1.0, 1.0], priority=[2, 1, 0])
    np.testing.assert_array_equal(chosen, [False, False, True])


def test_flat_images_are_compared_by_their_pixels(tmp_path):
    import pandas as pd
    from PIL import Image

    from collection.ingest import IngestOptions, SourceSpec, ingest

    folder = tmp_path / "flat"
    folder.mkdir()
    for name, size, colour in (("black", (64, 64), (0, 0, 0)), ("white", (64, 64), (255, 255, 255)),
                               ("red", (64, 64), (255, 0, 0)), ("red_big", (80, 80), (255, 0, 0)),
                               ("dot", (1, 1), (9, 9, 9)), ("line", (10000, 1), (9, 9, 9))):
        Image.new("RGB", size, colour).save(folder / f"{name}.png")
    Image.new("RGB", (64, 64), (255, 0, 0)).save(folder / "red_copy.tif")  # same pixels, other container
    ingest([SourceSpec(folder)], tmp_path / "out", IngestOptions(min_side=1, workers=0))
    rows = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("path")
    assert rows.loc[["black.png", "white.png", "red_big.png", "dot.png", "line.png"], "status"].eq("ok").all()
    assert {rows.loc["red.png", "status"], rows.loc["red_copy.tif", "status"]} == {"ok", "duplicate"}
    assert (rows["status"] == "duplicate").sum() == 1
