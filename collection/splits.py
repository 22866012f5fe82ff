"""Leakage-free dataset splits: groups that never straddle splits, deterministic for a seed.

The leakage unit is a *group* of rows (:func:`merge_groups` joins duplicate clusters, scenes and any
other key). :func:`assign_splits` gives each group a seeded pseudo-random priority from a hash of its
name (never Python's salted ``hash``), orders the groups of each stratum by it, lays their row counts
end to end on [0, 1) and sends each group to the split whose ratio interval holds the group's
midpoint. Hence:

- split sizes match the ratios by row count to within half a group at each boundary;
- the result depends on the seed and the group names only, not on row order or the platform;
- adding data moves only the groups that fall across a shifted boundary, so a test image of one
  dataset version rarely migrates into the training split of the next.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from collection.dedup import component_labels

__all__ = ["assign_splits", "merge_groups", "parse_ratios", "split_rank"]

# Hugging Face ``datasets`` accepts split names matching this pattern.
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
_SUM_TOLERANCE = 1e-6


def _check_ratios(ratios: Mapping[str, float], origin: str) -> dict[str, float]:
    """``ratios`` as a dict after checking names, values and their sum; errors quote ``origin``."""
    if not ratios:
        raise ValueError(f"no split ratios in {origin!r}")
    checked: dict[str, float] = {}
    for name, value in ratios.items():
        if not isinstance(name, str) or not _SPLIT_NAME.match(name):
            raise ValueError(f"split name {name!r} in {origin!r} must be letters, digits, '_' or '.'")
        if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
            raise ValueError(f"ratio of split {name!r} in {origin!r} must be a finite number, got {value!r}")
        if not 0 < value <= 1:
            raise ValueError(f"ratio of split {name!r} in {origin!r} must lie in (0, 1], got {value}")
        checked[name] = float(value)
    total = sum(checked.values())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise ValueError(f"split ratios in {origin!r} sum to {total:g}, expected 1")
    return checked


_EVALUATIVE = (("test", 0), ("eval", 0), ("val", 1), ("dev", 1), ("train", 3))


def split_rank(name: str) -> int:
    """How evaluative a split name is, lower first: test 0, validation 1, any other 2, train 3.

    When one scene is fixed to several splits, the lowest rank keeps it and the others lose it:
    a test image must never also be a training image, and the test side is the one published.
    """
    lowered = name.lower()
    return next((rank for prefix, rank in _EVALUATIVE if lowered.startswith(prefix)), 2)


def parse_ratios(text: str) -> dict[str, float]:
    """Parse ``"train=0.8,test=0.2"`` into an ordered dict, with a ValueError naming any bad part."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty split specification {text!r}; expected e.g. 'train=0.8,test=0.2'")
    ratios: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not name or not value:
            raise ValueError(f"bad part {part.strip()!r} in split specification {text!r}; expected name=fraction")
        if name in ratios:
            raise ValueError(f"split {name!r} appears twice in {text!r}")
        try:
            ratios[name] = float(value)
        except ValueError:
            raise ValueError(f"bad fraction {value!r} for split {name!r} in {text!r}") from None
    return _check_ratios(ratios, text)


def _canonical(key: Hashable) -> Hashable:
    """numpy scalars as Python scalars, so ``np.int64(3)`` and ``3`` name the same group everywhere."""
    return key.item() if isinstance(key, np.generic) else key


def _is_null(value: object) -> bool:
    """None, NaN and pandas-style missing markers (whose comparison is not a bool) count as null."""
    if value is None:
        return True
    try:
        return bool(value != value)  # noqa: PLR0124 - NaN is the one value unequal to itself
    except (TypeError, ValueError):
        return True


def _priorities(seed: int, names: Sequence[str]) -> np.ndarray:
    """Seeded, platform-independent 64-bit sort key per group name (sha256, not the salted ``hash``)."""
    prefix = f"{seed}\x00".encode()
    digests = b"".join(hashlib.sha256(prefix + name.encode()).digest()[:8] for name in names)
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def _group_codes(groups: Sequence[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    """Group index per row and the group keys (numpy scalars as Python scalars)."""
    if isinstance(groups, np.ndarray) and groups.ndim == 1 and groups.dtype.kind in "iub":
        keys, inverse = np.unique(groups, return_inverse=True)
        return inverse.ravel().astype(np.int64), keys.tolist()
    index: dict[Hashable, int] = {}
    codes = np.empty(len(groups), dtype=np.int64)
    for row, key in enumerate(groups):
        if _is_null(key):
            raise ValueError(f"row {row} has no group key; every row needs one (see merge_groups)")
        codes[row] = index.setdefault(_canonical(key), len(index))
    return codes, list(index)


def _first_per_group(row_group: np.ndarray, *sort_keys: np.ndarray) -> np.ndarray:
    """Row index per group of the row that sorts first by ``sort_keys`` (most significant first)."""
    order = np.lexsort((*reversed(sort_keys), row_group))
    first = np.ones(len(order), dtype=bool)
    first[1:] = row_group[order][1:] != row_group[order][:-1]
    return order[first]  # groups are 0..G-1 and all present, so this is indexed by group


def _majority_strata(row_group: np.ndarray, strata: Sequence[Hashable | None], n_groups: int) -> np.ndarray:
    """Stratum code per group: its most frequent stratum, ties to the smallest by repr."""
    values = [None if _is_null(s) else _canonical(s) for s in strata]
    ordered = sorted(set(values), key=repr)
    code_of = {v: c for c, v in enumerate(ordered)}
    codes = np.fromiter((code_of[v] for v in values), dtype=np.int64, count=len(values))
    pair, count = np.unique(row_group * len(ordered) + codes, return_counts=True)
    pair_group, pair_code = pair // len(ordered), pair % len(ordered)
    best = _first_per_group(pair_group, -count, pair_code)
    out = np.empty(n_groups, dtype=np.int64)
    out[pair_group[best]] = pair_code[best]
    return out


def assign_splits(
    groups: Sequence[Hashable],
    ratios: Mapping[str, float],
    seed: int = 0,
    strata: Sequence[Hashable | None] | None = None,
    fixed: Mapping[Hashable, str] | None = None,
    *,
    row_ids: Sequence[str] | None = None,
) -> list[str]:
    """Split name per row: whole groups per split, sizes by row count close to ``ratios``.

    ``strata`` (e.g. rain kind; None is a stratum of its own) applies the ratios within each stratum;
    a group spanning strata belongs to its majority stratum. ``fixed`` pins groups to a split, which
    may lie outside ``ratios`` (a layout's own train/test); ratios apply to the unpinned rows.
    Groups are named by their key, or, with ``row_ids`` (stable content ids such as sha256), by their
    smallest member id, which makes the result independent of how group labels were numbered.
    """
    ratios = _check_ratios(ratios, ",".join(f"{k}={v}" for k, v in ratios.items()) if ratios else "")
    n = len(groups)
    if strata is not None and len(strata) != n:
        raise ValueError(f"strata has {len(strata)} entries for {n} rows")
    if row_ids is not None and len(row_ids) != n:
        raise ValueError(f"row_ids has {len(row_ids)} entries for {n} rows")
    fixed = {_canonical(k): v for k, v in (fixed or {}).items()}
    for key, split in fixed.items():
        if not isinstance(split, str) or not _SPLIT_NAME.match(split):
            raise ValueError(f"group {key!r} is pinned to an invalid split name {split!r}")
    if n == 0:
        return []

    row_group, keys = _group_codes(groups)
    sizes = np.bincount(row_group, minlength=len(keys))
    if row_ids is None:
        names = np.array([repr(k) for k in keys], dtype=str)
    else:
        distinct, rank = np.unique(np.asarray(row_ids, dtype=str), return_inverse=True)
        smallest = np.full(len(keys), len(distinct), dtype=np.int64)
        np.minimum.at(smallest, row_group, rank.ravel())
        names = distinct[smallest]
    stratum = np.zeros(len(keys), dtype=np.int64) if strata is None else _majority_strata(row_group, strata, len(keys))

    split_names = list(ratios)
    split_of_group = np.full(len(keys), -1, dtype=np.int64)
    if fixed:
        position = {k: g for g, k in enumerate(keys)}
        for key, split in fixed.items():
            if key in position:
                if split not in split_names:
                    split_names.append(split)
                split_of_group[position[key]] = split_names.index(split)

    # Free groups ordered by stratum, then seeded priority (then name, should two priorities tie).
    free = np.flatnonzero(split_of_group < 0)
    if len(free):
        order = free[np.lexsort((names[free], _priorities(seed, names[free].tolist()), stratum[free]))]
        rows = sizes[order].astype(np.float64)
        seg = stratum[order]
        total = np.cumsum(rows)
        start = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])  # first position of each stratum
        seg_index = np.cumsum(np.r_[False, seg[1:] != seg[:-1]])
        before = np.r_[0.0, total][start][seg_index]  # rows of earlier strata
        seg_rows = np.diff(np.r_[0.0, total[np.r_[start[1:] - 1, len(order) - 1]]])[seg_index]
        midpoints = (total - before - rows / 2) / seg_rows
        bounds = np.cumsum([ratios[s] for s in ratios])
        bounds[-1] = np.inf  # rounding in the ratios must never leave a group without a split
        split_of_group[order] = np.searchsorted(bounds, midpoints, side="right")
    return np.array(split_names, dtype=object)[split_of_group[row_group]].tolist()


def merge_groups(*keys: Sequence[Hashable | None]) -> np.ndarray:
    """Group label per row: rows sharing any non-null key in any column are joined.

    Each row is linked to the first row holding the same key; the groups are the connected
    components of that graph (``scipy.sparse.csgraph``, via :func:`collection.dedup.component_labels`).

    Pass e.g. duplicate-cluster labels and scene ids: the resulting groups contain whole clusters and
    whole scenes, so neither straddles a split. A row whose keys are all null is a group of its own.
    Labels are the smallest row index of each group.
    """
    if not keys:
        raise ValueError("merge_groups needs at least one key column")
    n = len(keys[0])
    for c, column in enumerate(keys):
        if len(column) != n:
            raise ValueError(f"key column {c} has {len(column)} rows, expected {n} like column 0")
    if n == 0:
        return np.empty(0, dtype=np.int64)
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    for column in keys:
        arr = np.asarray(column) if isinstance(column, np.ndarray) else None
        if arr is not None and arr.dtype.kind in "iub":  # integer labels: no nulls, fully vectorised
            _, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
            rows = np.arange(n)
            src.append(rows)
            dst.append(first[inverse.ravel()])
            continue
        anchor: dict[Hashable, int] = {}
        rows_list, firsts = [], []
        for row, value in enumerate(column):
            if _is_null(value):
                continue
            rows_list.append(row)
            firsts.append(anchor.setdefault(_canonical(value), row))
        src.append(np.asarray(rows_list, dtype=np.int64))
        dst.append(np.asarray(firsts, dtype=np.int64))
    return component_labels(n, np.concatenate(src), np.concatenate(dst))
