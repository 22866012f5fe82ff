"""Near-duplicate search and clustering of 64-bit perceptual hashes, sub-quadratic in the item count.

Search is multi-index hashing (Norouzi, Punjani & Fleet, "Fast search in Hamming space with
multi-index hashing", CVPR 2012). The 64 bits are cut into ``m`` chunks and chunk ``i`` gets a
tolerance ``s_i`` with ``sum(s_i + 1) = radius + 1``. If two hashes are within ``radius``, the
per-chunk distances sum to at most ``radius``, so by the pigeonhole principle at least one chunk ``i``
differs in at most ``s_i`` bits. Each chunk is bucketed by its value (a sort plus an offset table);
every hash probes the buckets of its chunk value XOR each mask of at most ``s_i`` bits; candidates
are verified with a vectorised popcount. The plan (``m`` and the ``s_i``) is chosen per call by a
cost model assuming uniform bits: for 10**6 hashes at radius 8 it is three 21-22-bit chunks with
tolerance 2 each, about 330 candidates per hash instead of 10**6.

Every pair is emitted exactly once: within a chunk the mask between two chunk values is unique,
each pair is kept from its lower index only, and across chunks only the first chunk within
tolerance keeps it. Exact-equal hashes (burst shots, re-encodes that hash alike) are collapsed to
one node before the search, so a thousand copies of one hash cost one node, not a million pairs.
Candidates are processed in blocks of bounded size, so memory stays bounded even when real hashes
are far from uniform; the time spent on a dense family of distinct hashes is still quadratic in
its size, which is inherent to listing its pairs.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import comb

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .phash import _as_uint64, _popcount

__all__ = ["DEFAULT_RADIUS", "choose_representatives", "cluster", "near_duplicate_pairs"]

logger = logging.getLogger(__name__)

DEFAULT_RADIUS = 8
"""Default Hamming radius for near duplicates of a 64-bit pHash (re-encodes, resizes, light crops)."""

HASH_BITS = 64
_BLOCK_CANDIDATES = 1 << 22  # candidate pairs verified at once: ~100 MB of temporaries at most
_DIRECT_TABLE_BITS = 24  # chunks up to this width get an O(1) offset table (<= 128 MB of int64)
_PROBE_OVERHEAD = 20_000  # per-probe fixed cost (Python + numpy call overhead) in element-operations
_MAX_PAIRS_DEFAULT = 50_000_000


@dataclass(frozen=True)
class _Chunk:
    """Bits ``shift .. shift + bits - 1`` of the hash, searched with up to ``tolerance`` differing bits."""

    shift: int
    bits: int
    tolerance: int

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    def values(self, hashes: np.ndarray) -> np.ndarray:
        return ((hashes >> np.uint64(self.shift)) & np.uint64(self.mask)).astype(np.int64)


def _probes(bits: int, tolerance: int) -> int:
    """Number of masks of at most ``tolerance`` set bits in a ``bits``-bit chunk."""
    return sum(comb(bits, k) for k in range(tolerance + 1))


def _plan(n: int, radius: int) -> list[_Chunk]:
    """Chunking and per-chunk tolerances minimising expected probe and candidate work for ``n`` hashes."""
    best: tuple[float, list[_Chunk]] | None = None
    for m in range(1, min(radius + 1, HASH_BITS) + 1):
        widths = [HASH_BITS // m + (1 if i < HASH_BITS % m else 0) for i in range(m)]
        spare = radius + 1 - m  # sum of tolerances; wider chunks take the larger ones
        tolerances = [spare // m + (1 if i < spare % m else 0) for i in range(m)]
        cost = 0.0
        for bits, tol in zip(widths, tolerances):
            cost += _probes(bits, tol) * (n * (1.0 + n / 2.0**bits) + _PROBE_OVERHEAD)
        shifts = np.concatenate([[0], np.cumsum(widths)[:-1]]).tolist()
        chunks = [_Chunk(int(s), w, t) for s, w, t in zip(shifts, widths, tolerances)]
        if best is None or cost < best[0]:
            best = (cost, chunks)
    assert best is not None
    return best[1]


class _Buckets:
    """Items sorted by chunk value; ``lookup(keys)`` gives each key's [lo, hi) range in ``order``."""

    def __init__(self, values: np.ndarray, bits: int):
        self.order = np.argsort(values, kind="stable")
        self.sorted = values[self.order]
        self.direct = bits <= _DIRECT_TABLE_BITS
        if self.direct:
            index = np.int32 if len(values) < 2**31 else np.int64  # half the table, fewer cache misses
            self.starts = np.zeros((1 << bits) + 1, dtype=index)
            np.cumsum(np.bincount(values, minlength=1 << bits), out=self.starts[1:])

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.direct:
            return self.starts[keys], self.starts[keys + 1]
        return np.searchsorted(self.sorted, keys, "left"), np.searchsorted(self.sorted, keys, "right")


def _unique_pair_blocks(uniq: np.ndarray, radius: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of (i, j), i < j, indices into distinct hashes ``uniq`` within ``radius``; each pair once."""
    n = len(uniq)
    if n < 2 or radius <= 0:
        return
    if radius >= HASH_BITS:
        i, j = np.triu_indices(n, k=1)
        yield i.astype(np.int64), j.astype(np.int64)
        return
    chunks = _plan(n, radius)
    logger.debug("multi-index plan for %d hashes at radius %d: %s", n, radius, chunks)
    for c, chunk in enumerate(chunks):
        buckets = _Buckets(chunk.values(uniq), chunk.bits)
        for flips in range(chunk.tolerance + 1):
            for positions in itertools.combinations(range(chunk.bits), flips):
                # Queries go in chunk-value order: XOR with a mask keeps them nearly sorted, so the
                # table lookups walk memory almost sequentially (4x faster than random order).
                keys = buckets.sorted ^ sum(1 << p for p in positions)
                lo, hi = buckets.lookup(keys)
                hit = np.flatnonzero(hi > lo)
                if len(hit):
                    yield from _verified(uniq, chunks[:c], radius, buckets.order, hit, lo[hit], hi[hit])


def _verified(
    uniq: np.ndarray,
    earlier: list[_Chunk],
    radius: int,
    order: np.ndarray,
    hit: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Candidates of one probe (queries ``order[hit]``, bucket ranges [lo, hi)), filtered to new pairs."""
    counts = (hi - lo).astype(np.int64)
    ends = np.cumsum(counts)
    total = int(ends[-1])
    # Split the queries so that no block holds much more than _BLOCK_CANDIDATES candidates.
    cuts = np.searchsorted(ends, np.arange(_BLOCK_CANDIDATES, total, _BLOCK_CANDIDATES), "left") + 1
    bounds = np.unique(np.concatenate([[0], cuts, [len(hit)]]).clip(0, len(hit)))
    for a, b in itertools.pairwise(bounds):
        block = counts[a:b]
        i = np.repeat(order[hit[a:b]], block)
        offset = np.repeat(lo[a:b].astype(np.int64) - (np.cumsum(block) - block), block)
        j = order[offset + np.arange(len(i), dtype=np.int64)]
        keep = i < j
        i, j = i[keep], j[keep]
        xor = uniq[i] ^ uniq[j]
        keep = _popcount(xor) <= radius
        for chunk in earlier:  # a pair within tolerance of an earlier chunk was emitted there
            keep &= _popcount((xor >> np.uint64(chunk.shift)) & np.uint64(chunk.mask)) > chunk.tolerance
        if keep.any():
            yield i[keep], j[keep]


def _check_radius(radius: int) -> int:
    """``radius`` as an int, or a ValueError naming the bad value."""
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
    return int(radius)


def _hash_array(hashes: np.ndarray | Sequence[int]) -> np.ndarray:
    """``hashes`` as a 1-D uint64 array."""
    arr = _as_uint64(hashes)
    if arr.ndim != 1:
        raise ValueError(f"hashes must be a 1-D array, got shape {arr.shape}")
    return arr


def near_duplicate_pairs(
    hashes: np.ndarray | Sequence[int], radius: int = DEFAULT_RADIUS, *, max_pairs: int | None = _MAX_PAIRS_DEFAULT
) -> np.ndarray:
    """All index pairs (i, j), i < j, with Hamming distance <= radius, sorted, as an int64 (P, 2) array.

    ``max_pairs`` guards memory: many copies of one hash make the pair list quadratic, so past that
    many pairs a ValueError points to :func:`cluster`, which never lists them (None disables it).
    """
    hashes = _hash_array(hashes)
    radius = _check_radius(radius)
    uniq, inverse = np.unique(hashes, return_inverse=True)
    inverse = inverse.ravel()
    # Items sorted by their distinct hash: members of distinct hash u are by_hash[start[u]:start[u+1]].
    by_hash = np.argsort(inverse, kind="stable")
    sizes = np.bincount(inverse, minlength=len(uniq))
    start = np.concatenate([[0], np.cumsum(sizes)])

    blocks = list(_unique_pair_blocks(uniq, radius))
    ui = np.concatenate([b[0] for b in blocks]) if blocks else np.empty(0, np.int64)
    uj = np.concatenate([b[1] for b in blocks]) if blocks else np.empty(0, np.int64)
    n_cross = int((sizes[ui] * sizes[uj]).sum())
    n_within = int((sizes * (sizes - 1) // 2).sum())
    if max_pairs is not None and n_cross + n_within > max_pairs:
        raise ValueError(
            f"{n_cross + n_within} near-duplicate pairs exceed max_pairs={max_pairs}; "
            "use cluster() for large duplicate families, or raise max_pairs"
        )

    parts = []
    # Pairs among copies of one hash, by offset d between members (members are in index order):
    # a loop over offsets, up to the largest burst, with work proportional to the pairs it emits.
    repeated = np.flatnonzero(sizes > 1)
    repeated = repeated[np.argsort(-sizes[repeated], kind="stable")]
    for d in range(1, int(sizes.max(initial=0))):
        active = repeated[: int(np.searchsorted(-sizes[repeated], -d, side="left"))]
        count = sizes[active] - d
        group = np.repeat(active, count)
        a = np.arange(len(group)) - np.repeat(np.cumsum(count) - count, count)
        parts.append(np.stack([by_hash[start[group] + a], by_hash[start[group] + a + d]], axis=1))
    if len(ui):
        # Cross product of the members of each distinct-hash pair, vectorised over pairs.
        counts = sizes[ui] * sizes[uj]
        pair = np.repeat(np.arange(len(ui)), counts)
        k = np.arange(len(pair)) - np.repeat(np.cumsum(counts) - counts, counts)
        left = by_hash[start[ui[pair]] + k // sizes[uj[pair]]]
        right = by_hash[start[uj[pair]] + k % sizes[uj[pair]]]
        parts.append(np.stack([np.minimum(left, right), np.maximum(left, right)], axis=1))
    if not parts:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(parts).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component id of each of ``n`` nodes given undirected edges (i, j)."""
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)[1].astype(np.int64)


def component_labels(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Label per node of ``n``: the smallest node index of its connected component (edges i-j, undirected)."""
    return _smallest_member_labels(_components(n, i, j))


def _smallest_member_labels(component: np.ndarray) -> np.ndarray:
    """Relabel components by their smallest member index, so labels do not depend on graph internals."""
    _, first = np.unique(component, return_index=True)
    smallest = np.empty(int(component.max()) + 1, dtype=np.int64)
    smallest[component[first]] = first
    return smallest[component]


def _exact_key_codes(exact_keys: Sequence[str | None], n: int) -> np.ndarray:
    """Integer code per item for its exact key (-1 for None), equal codes for equal keys."""
    if len(exact_keys) != n:
        raise ValueError(f"exact_keys has {len(exact_keys)} entries for {n} hashes")
    keys = np.asarray(exact_keys, dtype=object)
    present = np.array([k is not None for k in keys], dtype=bool)
    codes = np.full(n, -1, dtype=np.int64)
    if present.any():
        codes[present] = np.unique(keys[present].astype(str), return_inverse=True)[1].ravel()
    return codes


def cluster(
    hashes: np.ndarray | Sequence[int],
    radius: int = DEFAULT_RADIUS,
    exact_keys: Sequence[str | None] | None = None,
    searchable: np.ndarray | Sequence[bool] | None = None,
) -> np.ndarray:
    """Cluster label per item: transitive closure of Hamming <= radius and equal non-None exact keys.

    A label is the smallest index among the cluster's members, so an unduplicated item is labelled
    with its own index and the partition does not depend on the order of processing. Exact keys
    (sha256 of the bytes, :func:`~collection.phash.pixel_hash`) join items whatever their hashes.
    Items with ``searchable`` False (hashes without structure, :func:`~collection.phash.informative`)
    join by exact keys only: their hashes take no part in the Hamming search.
    """
    hashes = _hash_array(hashes)
    radius = _check_radius(radius)
    n = len(hashes)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if searchable is not None:
        searchable = np.asarray(searchable, dtype=bool)
        if searchable.shape != (n,):
            raise ValueError(f"searchable has shape {searchable.shape}, expected ({n},) like hashes")
        if not searchable.all():
            return _cluster_split(hashes, radius, exact_keys, searchable)
    uniq, inverse = np.unique(hashes, return_inverse=True)
    inverse = inverse.ravel().astype(np.int64)
    u = len(uniq)

    # Node labels, refreshed whenever the pending edge buffer grows large, so memory stays bounded.
    label = np.arange(u, dtype=np.int64)
    pending_i: list[np.ndarray] = []
    pending_j: list[np.ndarray] = []
    pending = 0
    for i, j in _unique_pair_blocks(uniq, radius):
        i, j = label[i], label[j]
        keep = i != j
        pending_i.append(i[keep])
        pending_j.append(j[keep])
        pending += int(keep.sum())
        if pending > _BLOCK_CANDIDATES:
            label = _components(u, np.concatenate(pending_i), np.concatenate(pending_j))[label]
            pending_i, pending_j, pending = [], [], 0

    if exact_keys is not None:
        codes = _exact_key_codes(exact_keys, n)
        present = np.flatnonzero(codes >= 0)
        _, first = np.unique(codes[present], return_index=True)
        anchor = np.empty(int(codes.max()) + 1, dtype=np.int64)
        anchor[codes[present[first]]] = present[first]
        # Join each keyed item's hash node to the node of the first item bearing the same key.
        pending_i.append(label[inverse[present]])
        pending_j.append(label[inverse[anchor[codes[present]]]])

    if pending_i:
        label = _components(u, np.concatenate(pending_i), np.concatenate(pending_j))[label]
    return _smallest_member_labels(label[inverse])


def _cluster_split(
    hashes: np.ndarray, radius: int, exact_keys: Sequence[str | None] | None, searchable: np.ndarray
) -> np.ndarray:
    """:func:`cluster` where only ``searchable`` items enter the Hamming search; exact keys join everything."""
    n = len(hashes)
    inside = np.flatnonzero(searchable)
    label = np.arange(n, dtype=np.int64)
    if len(inside):
        label[inside] = inside[cluster(hashes[inside], radius)]
    i, j = [label], [np.arange(n, dtype=np.int64)]
    if exact_keys is not None:
        codes = _exact_key_codes(exact_keys, n)
        present = np.flatnonzero(codes >= 0)
        _, first = np.unique(codes[present], return_index=True)
        anchor = np.empty(int(codes.max(initial=-1)) + 1, dtype=np.int64)
        anchor[codes[present[first]]] = present[first]
        i.append(present)
        j.append(anchor[codes[present]])
    return component_labels(n, np.concatenate(i), np.concatenate(j))


def choose_representatives(
    labels: np.ndarray | Sequence[int],
    width: np.ndarray | Sequence[int],
    height: np.ndarray | Sequence[int],
    sharpness: np.ndarray | Sequence[float],
    priority: np.ndarray | Sequence[int] | None = None,
) -> np.ndarray:
    """Boolean mask, True for one item per cluster: lowest priority, most pixels, sharpest, lowest index.

    The largest copy keeps the most detail (originals beat resized or cropped copies); among equal
    sizes the sharpest copy wins (the steadiest frame of a burst); a NaN sharpness ranks last.
    ``priority`` (lower first; default all equal) puts e.g. rows of a fixed test split before free copies.
    """
    labels = np.asarray(labels)
    n = len(labels)
    columns = {"width": np.asarray(width), "height": np.asarray(height), "sharpness": np.asarray(sharpness),
               "priority": np.zeros(n, dtype=np.int64) if priority is None else np.asarray(priority)}
    for name, column in columns.items():
        if column.shape != (n,):
            raise ValueError(f"{name} has shape {column.shape}, expected ({n},) like labels")
    pixels = columns["width"].astype(np.int64) * columns["height"].astype(np.int64)
    sharp = np.nan_to_num(columns["sharpness"].astype(np.float64), nan=-np.inf)
    # lexsort: last key is primary. Within a label: priority, most pixels, sharpest, lowest index.
    order = np.lexsort((np.arange(n), -sharp, -pixels, columns["priority"], labels))
    first = np.ones(n, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    chosen = np.zeros(n, dtype=bool)
    chosen[order[first]] = True
    return chosen
