"""Curation of probed rows: duplicates under a policy, leakage across splits, scenes, stable splits.

Works on the ingest frame (one row per file seen, :func:`collection.ingest.ingest`) in place.

- **Scene identity.** A pair is identified by its *clean* image (the background): heavy rain hides a
  shared background from the rainy image's hash, the clean image does not. Rainy-only rows and
  unpaired clean rows are identified by their own image. Identities are clustered with exact keys
  (sha256, pixel hash; a pair also by its rainy file's) and pHash distance; hashes without
  structure (flat images) join by exact pixels only (:func:`collection.phash.informative`).
- **Duplicates policy** (:data:`DUPLICATE_POLICIES`). ``flag`` keeps every row and records
  ``duplicate_of``; ``drop`` keeps one representative per cluster (``status=duplicate`` for the
  rest); ``auto`` flags rows whose split is fixed (by the layout, ``--split-file`` or a single-split
  ``--split test=1``: public benchmark sets are evidence, their repeats are kept) and drops free
  copies. A representative prefers a fixed test row over any free copy.
- **Leakage** is never allowed: when a group of rows (shared cluster, scene or clean image) holds
  rows fixed to different splits, the rows of the most evaluative split (test, then validation)
  stay and the others (the training side) become ``duplicate`` with reason ``leak``.
- **Stable splits.** Rows of the previous manifest in the output folder keep their split when the
  seed and ratios are unchanged; only new groups are assigned (by :func:`collection.splits.assign_splits`),
  and the ratio drift is recorded for the report.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collection.dedup import choose_representatives, cluster
from collection.files import atomic_write
from collection.manifest import CACHE_DIR, read_manifest
from collection.phash import informative
from collection.scenes import assign_scenes
from collection.splits import assign_splits, merge_groups, parse_ratios, split_rank

log = logging.getLogger(__name__)

DUPLICATE_POLICIES = ("auto", "drop", "flag")
"""``auto``: flag rows of fixed splits, drop free copies; ``drop``: one row per cluster; ``flag``: keep all."""

DEFAULT_SPLIT = "train=0.8,test=0.2"
"""Split ratios used when neither ``split`` nor the layout fixes a row's split."""

SPLITS_RECORD = "splits.json"
"""File under ``OUT/.cache`` naming the seed and ratios the manifest's splits were drawn with."""

_FREE = 99  # representative priority of a row whose split is not fixed: after every fixed split


def values(series: pd.Series) -> list[Any]:
    """A column as a list with pandas' NaN placeholders turned back into None."""
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in series.tolist()]


def read_split_file(path: Path) -> dict[str, str]:
    """``id`` or ``path`` -> split, from a CSV with a ``split`` column and an ``id`` or ``path`` column."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if "split" not in fields or not ({"id", "path"} & set(fields)):
            raise ValueError(f"{path}: a split file needs a 'split' column and an 'id' or 'path' column")
        return {(r.get("id") or r.get("path") or "").strip(): r["split"].strip() for r in reader if r.get("split")}


def fixed_splits(frame: pd.DataFrame, split: str | None, split_file: Path | None) -> pd.Series:
    """Split fixed for each row (``--split-file``, then the layout, then a single-split ``--split``), else None."""
    mapping = read_split_file(split_file) if split_file else {}
    ratios = parse_ratios(split or DEFAULT_SPLIT)
    only = next(iter(ratios)) if len(ratios) == 1 else None
    fixed = [mapping.get(i) or mapping.get(p) or (s if isinstance(s, str) else None) or only
             for i, p, s in zip(frame["id"], frame["path"], frame["layout_split"])]
    return pd.Series(fixed, index=frame.index, dtype=object)


def _identity(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """sha256, pixel hash and pHash of each row's identity image: a pair's clean image, else its own."""
    by_key = frame.set_index("key")[["sha256", "pixel_hash", "phash"]]
    clean = rows["clean_key"].astype(object).where(rows["role"] == "pair")  # all-None columns arrive as float64
    looked = by_key.reindex(clean.fillna("").tolist())
    looked.index = rows.index
    own = rows[["sha256", "pixel_hash", "phash"]]
    paired = clean.notna()
    return pd.DataFrame({c: looked[c].where(paired, own[c]) for c in own.columns}, index=rows.index)


def dedup(frame: pd.DataFrame, radius: int, policy: str, fixed: pd.Series) -> None:
    """Cluster rows by identity image, set ``dup_group`` and apply the duplicates ``policy`` (module doc)."""
    if policy not in DUPLICATE_POLICIES:
        raise ValueError(f"unknown duplicates policy {policy!r}; expected one of {', '.join(DUPLICATE_POLICIES)}")
    candidates = frame["primary"] & (frame["status"] == "ok")
    frame.loc[frame["primary"] & frame["id"].notna(), "dup_group"] = frame["id"]
    index = frame.index[candidates]
    if len(index) == 0:
        return
    sub = frame.loc[index]
    ident = _identity(frame, sub)
    rainy_side = sub["role"] == "pair"
    exact = np.asarray(merge_groups(values(ident["sha256"]), values(ident["pixel_hash"]),
                                    values(sub["sha256"].where(rainy_side)), values(sub["pixel_hash"].where(rainy_side))))
    hashes = np.array([int(h, 16) for h in ident["phash"]], dtype=np.uint64)
    labels = np.asarray(cluster(hashes, radius, exact_keys=[str(g) for g in exact], searchable=informative(hashes)))
    pinned = fixed.loc[index]
    priority = np.array([_FREE if s is None else split_rank(s) for s in pinned], dtype=np.int64)
    size = (sub["width"].to_numpy(), sub["height"].to_numpy(), sub["sharpness"].astype(float).to_numpy())
    ids = sub["id"].to_numpy()
    group_rep = choose_representatives(labels, *size, priority=priority)
    rep_of_label = {labels[i]: i for i in np.flatnonzero(group_rep)}
    # Rainy images and unpaired clean images are different material: each keeps its own representative.
    family = labels * 2 + (sub["role"] == "clean").to_numpy()
    rep_of_family = {family[i]: i for i in np.flatnonzero(choose_representatives(family, *size, priority=priority))}
    clean = values(sub["clean_key"])
    for i, idx in enumerate(index):
        frame.at[idx, "dup_group"] = ids[rep_of_label[labels[i]]]
        r = rep_of_family[family[i]]
        # A layout's rain variants of one clean file (DDN's 14 renderings, GT-RAIN frames) are one
        # background by design: they stay plain rows, and sharing a dup_group keeps them in one split.
        # Two clean files with one background (Rain100L's reused backgrounds) are repeats: flagged.
        if r == i or (clean[i] is not None and clean[i] == clean[r]):
            continue
        frame.at[idx, "duplicate_of"] = ids[r]
        frame.at[idx, "reason"] = "exact" if exact[i] == exact[r] else "near"
        if policy == "drop" or (policy == "auto" and pinned.iloc[i] is None):
            frame.at[idx, "status"] = "duplicate"


def previous_splits(out: Path, seed: int, split: str | None) -> dict[str, str]:
    """``id -> split`` of the dataset rows in ``out``'s manifest, if drawn with this seed and these ratios."""
    manifest, record = Path(out) / "manifest.parquet", Path(out) / CACHE_DIR / SPLITS_RECORD
    if not manifest.exists():
        return {}
    if record.exists():
        try:
            drawn = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):
            drawn = None
        if drawn != _record(seed, split):
            log.info("seed or split ratios changed since the last ingest: splits are drawn afresh")
            return {}
    try:
        old = read_manifest(manifest)
    except (OSError, ValueError) as exc:  # a damaged manifest must not stop a re-run; it is rewritten
        log.warning("%s: unreadable previous manifest (%s); splits are drawn afresh", manifest, exc)
        return {}
    rows = old[(old["status"] == "ok") & old["split"].notna() & old["id"].notna() &
               ((old["side"] != "clean") | (old["role"] == "clean"))]
    return dict(zip(rows["id"], rows["split"]))


def _record(seed: int, split: str | None) -> dict[str, Any]:
    return {"seed": int(seed), "ratios": parse_ratios(split or DEFAULT_SPLIT)}


def write_split_record(out: Path, seed: int, split: str | None) -> None:
    """Remember the seed and ratios the splits of ``out`` are drawn with (see :func:`previous_splits`)."""
    path = Path(out) / CACHE_DIR / SPLITS_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(_record(seed, split), indent=1, sort_keys=True) + "\n", fsync=True)


def _remove_leaks(frame: pd.DataFrame, ok: pd.DataFrame, groups: list[int], fixed: pd.Series) -> dict[int, str]:
    """Mark training-side rows of groups fixed to several splits as ``leak``; the fixed split per group."""
    split_of_group: dict[int, str] = {}
    members: dict[int, list[int]] = {}
    for idx, group in zip(ok.index, groups):
        members.setdefault(group, []).append(idx)
        split = fixed.get(idx)
        if split is not None and (group not in split_of_group or
                                  (split_rank(split), split) < (split_rank(split_of_group[group]), split_of_group[group])):
            split_of_group[group] = split
    for group, split in split_of_group.items():
        keep = [i for i in members[group] if fixed.get(i) == split]
        anchor = min(frame.loc[keep, "id"])
        for idx in members[group]:
            other = fixed.get(idx)
            if other is not None and other != split:
                frame.loc[idx, ["status", "reason", "duplicate_of", "split"]] = ["duplicate", "leak", anchor, other]
                frame.at[idx, "detail"] = (f"{frame.at[idx, 'file']}: same scene as {anchor} of fixed split "
                                           f"{split!r}; the {other!r} copy is removed to prevent leakage")
    return split_of_group


def scenes_and_splits(frame: pd.DataFrame, *, split: str | None, seed: int, fixed: pd.Series,
                      previous: dict[str, str], session_gap_s: float) -> None:
    """Scene per live row, leakage removal across fixed splits, then splits (fixed, previous, drawn)."""
    ratios = parse_ratios(split or DEFAULT_SPLIT)
    live = frame.index[frame["primary"] & frame["status"].isin(["ok", "duplicate"])]
    sub = frame.loc[live]
    clean_ids = sub["clean_sha256"].map(lambda s: s[:16] if isinstance(s, str) else None)
    frame.loc[live, "scene"] = assign_scenes(
        values(sub["id"]), values(sub["source"]), values(sub["layout_scene"]), values(sub["camera_make"]),
        values(sub["camera_model"]), values(sub["datetime_original"]), gap_s=session_gap_s,
        clean_ids=values(clean_ids))
    ok = frame[frame["primary"] & (frame["status"] == "ok")].sort_values("id", kind="stable")
    if ok.empty:
        return
    groups = np.asarray(merge_groups(values(ok["scene"]), values(ok["clean_sha256"]), values(ok["dup_group"]))).tolist()
    pinned = _remove_leaks(frame, ok, groups, fixed)
    kept = (frame.loc[ok.index, "status"] == "ok").to_numpy()
    ok, groups = ok[kept], [g for g, k in zip(groups, kept) if k]
    # Previous splits of free groups: when a group now joins rows of several, its rows go to the
    # training side, so no image a model was trained on is ever scored as a test image.
    pins = dict(pinned)
    for group, row_id in zip(groups, ok["id"]):
        before = previous.get(row_id)
        if group in pinned or before not in ratios:
            continue
        current = pins.get(group)
        if current is None or (split_rank(before), before) > (split_rank(current), current):
            pins[group] = before
    strata = values(ok["rain_kind"]) if ok["rain_kind"].notna().any() else None
    splits = assign_splits(groups, ratios, seed=seed, strata=strata, fixed=pins, row_ids=ok["id"].tolist())
    frame.loc[ok.index, "split"] = list(splits)
    frame.loc[ok.index, "previous_split"] = [previous.get(i) for i in ok["id"]]
    frame.loc[ok.index, "split_fixed"] = [fixed.get(i) is not None for i in ok.index]
    split_of = dict(zip(ok["id"], splits))
    dup = (frame["status"] == "duplicate") & (frame["reason"] != "leak")
    frame.loc[dup, "split"] = frame.loc[dup, "duplicate_of"].map(split_of)
    split_of_clean = {k: s for k, s in zip(ok["clean_key"], splits) if isinstance(k, str)}
    clean_side = ~frame["primary"] & frame["key"].isin(list(split_of_clean))
    frame.loc[clean_side, "split"] = frame.loc[clean_side, "key"].map(split_of_clean)


def split_drift(frame: pd.DataFrame, split: str | None) -> dict[str, Any]:
    """Rows kept from the previous ingest, moved, new, and each drawn split's share against its ratio."""
    ratios = parse_ratios(split or DEFAULT_SPLIT)
    rows = frame[frame["primary"].fillna(False).astype(bool) & (frame["status"] == "ok")]
    if "previous_split" not in rows or rows.empty:
        return {}
    before = rows["previous_split"]
    drawn = rows[~rows["split_fixed"].fillna(False).astype(bool)]
    shares = drawn["split"].value_counts()
    return {
        "kept": int((before.notna() & (before == rows["split"])).sum()),
        "moved": int((before.notna() & (before != rows["split"])).sum()),
        "new": int(before.isna().sum()),
        "drawn_rows": len(drawn),
        "ratios": {name: {"target": ratio, "rows": int(shares.get(name, 0)),
                          "share": round(float(shares.get(name, 0)) / len(drawn), 4) if len(drawn) else None}
                   for name, ratio in ratios.items()},
    }
