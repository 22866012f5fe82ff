"""The results store of a run: long-format Parquet, written incrementally, read back de-duplicated.

A run directory holds::

    RUN_DIR/run.json                     the run's configuration (dataset, split, methods, metrics)
    RUN_DIR/results/part-G-W-N.parquet   result rows, one file per flush: generation G (one per run,
                                         chosen by the driver), writer W, sequence N
    RUN_DIR/results.parquet              the consolidated table, rewritten when a run finishes
    RUN_DIR/outputs/<method>/<id>.png    method outputs (with --save-outputs)

Each part file is written to a temporary name and renamed, so a killed run leaves only complete
part files behind and loses at most the rows it had not flushed. Several writers (the actors of a
Ray run) write into one generation under their own names, so no two ever race for a file name; a
later generation sorts after an earlier one, which is what makes the newest row win. Rows are one per
(image, method, metric); a later row for the same key replaces an earlier one, which is how a
resumed or repeated run overwrites stale results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from collection.storage import Location
from rainbench.data import SUBSET_COLUMNS

PARTS_DIR = "results"
CONSOLIDATED = "results.parquet"
RUN_CONFIG = "run.json"
KEY = ["image_id", "method", "metric"]
COLUMNS = [
    "run_id", "dataset", "dataset_fingerprint", "split", "image_id", "method", "method_config_hash",
    "metric", "metric_spec", "value", "lower_better", "seconds", "device", "error", *SUBSET_COLUMNS,
]
"""Result columns, in order: the contract every reader (leaderboard, report, users) relies on."""


class ResultsError(ValueError):
    """A run directory is missing, malformed, or belongs to a different run; the message names it."""


def _schema():
    import pyarrow as pa

    text = pa.string()
    types = {"value": pa.float64(), "lower_better": pa.bool_(), "seconds": pa.float64()}
    return pa.schema([(name, types.get(name, text)) for name in COLUMNS])


def _write_parquet(frame: pd.DataFrame, target: Location) -> None:
    """Write ``frame`` whole, atomically (:meth:`collection.storage.Location.write_bytes`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame[COLUMNS], schema=_schema(), preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    target.write_bytes(sink.getvalue().to_pybytes())


def _read_parquet(source: Location) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(source.read_bytes())).to_pandas()


def _part_order(part: Location) -> tuple:
    """Sort key of a part file: (generation, writer, sequence); older ``part-N`` names are writer ''."""
    fields = part.name.removesuffix(".parquet").split("-")[1:]
    generation = int(fields[0]) if fields and fields[0].isdigit() else -1
    sequence = int(fields[-1]) if len(fields) > 2 and fields[-1].isdigit() else 0
    return generation, "-".join(fields[1:-1]) if len(fields) > 2 else "", sequence, part.name


def part_files(run_dir: str | Path | Location) -> list[Location]:
    """The run's part files, oldest first."""
    return sorted((Location(run_dir) / PARTS_DIR).glob("part-*.parquet"), key=_part_order)


def next_generation(run_dir: str | Path) -> int:
    """The generation number for a new run into ``run_dir`` (called by the driver only, holding the lock)."""
    return max((_part_order(p)[0] for p in part_files(run_dir)), default=-1) + 1


class ResultsWriter:
    """Buffers result rows and flushes them as part files ``part-GENERATION-WRITER-N`` under ``RUN_DIR/results``.

    ``generation`` defaults to the next free one (right for a single writer); the writers of a
    distributed run share the driver's generation and differ by ``writer``.
    """

    def __init__(self, run_dir: str | Path | Location, generation: int | None = None, writer: str = "main"):
        if not writer or not all(c.isalnum() or c in "_-" for c in writer):
            raise ValueError(f"writer name {writer!r} must be letters, digits, '_' or '-'")
        self.parts = Location(run_dir) / PARTS_DIR
        self.parts.mkdir()
        self._rows: list[dict[str, Any]] = []
        self.generation = next_generation(run_dir) if generation is None else generation
        self.writer = writer
        self._next = 0

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Queue rows (dicts with the :data:`COLUMNS` keys; missing keys become null)."""
        for row in rows:
            unknown = set(row) - set(COLUMNS)
            if unknown:
                raise KeyError(f"unknown result column(s): {', '.join(sorted(unknown))}")
            self._rows.append(row)

    @property
    def pending(self) -> int:
        """Rows queued but not yet on disk."""
        return len(self._rows)

    def flush(self) -> Location | None:
        """Write the queued rows as the next part file; returns its path (None when nothing queued)."""
        if not self._rows:
            return None
        frame = pd.DataFrame(self._rows, columns=COLUMNS)
        path = self.parts / f"part-{self.generation:05d}-{self.writer}-{self._next:05d}.parquet"
        _write_parquet(frame, path)
        self._next += 1
        self._rows = []
        return path

    def close(self) -> None:
        """Flush what is left."""
        self.flush()


def read_results(run_dir: str | Path | Location) -> pd.DataFrame:
    """All result rows of a run, one per (image, method, metric): the last written row wins."""
    run_dir = Location(run_dir)
    parts = part_files(run_dir)
    if parts:
        frames = [_read_parquet(p) for p in parts]
    elif (run_dir / CONSOLIDATED).exists():
        frames = [_read_parquet(run_dir / CONSOLIDATED)]
    elif run_dir.is_dir() or not run_dir.local:  # an object store has no empty folders
        return pd.DataFrame({c: pd.Series(dtype=_schema().field(c).type.to_pandas_dtype()) for c in COLUMNS})
    else:
        raise ResultsError(f"{run_dir}: no such run directory")
    frame = pd.concat(frames, ignore_index=True)
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise ResultsError(f"{run_dir}: result files lack column(s) {', '.join(sorted(missing))}")
    frame = frame.drop_duplicates(KEY, keep="last")
    return frame.sort_values(KEY, kind="stable").reset_index(drop=True)[COLUMNS]


def run_dir_problem(run_dir: str | Path | Location) -> str | None:
    """Why ``run_dir`` has nothing for a leaderboard (not a run directory, or no results yet); None when it has."""
    run_dir = Location(run_dir)
    if part_files(run_dir) or (run_dir / CONSOLIDATED).is_file():
        return None
    if (run_dir / RUN_CONFIG).is_file():
        return "a run directory without results yet (the run stopped before its first flush?)"
    return f"not a run directory (no {RUN_CONFIG}, {PARTS_DIR}/ or {CONSOLIDATED}; `rainbench run --out` writes one)"


def consolidate(run_dir: str | Path | Location) -> Location:
    """Write ``RUN_DIR/results.parquet`` (every part merged, de-duplicated) and compact the parts into one."""
    run_dir = Location(run_dir)
    frame = read_results(run_dir)
    target = run_dir / CONSOLIDATED
    _write_parquet(frame, target)
    old = part_files(run_dir)
    if len(old) > 1:
        # The compacted part gets the highest number, so if this is interrupted after it is
        # written, the older parts it repeats are simply superseded on the next read.
        writer = ResultsWriter(run_dir)
        writer.add(frame.to_dict("records"))
        writer.flush()
        for part in old:
            part.unlink()
    return target


def write_run_config(run_dir: str | Path | Location, config: dict[str, Any]) -> Location:
    """Write ``run.json`` atomically (sorted keys, so the same run writes the same file)."""
    target = Location(run_dir) / RUN_CONFIG
    return target.write_bytes(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")


def read_run_config(run_dir: str | Path | Location) -> dict[str, Any] | None:
    """The run's ``run.json`` (None for a directory that has none yet)."""
    path = Location(run_dir) / RUN_CONFIG
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from exc


def _failed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["error"].notna() & (frame["error"] != "")]


def failures_per_method(frame: pd.DataFrame) -> dict[str, int]:
    """Per method: the number of images with at least one error row."""
    failed = _failed_rows(frame)
    counts = failed.groupby("method")["image_id"].nunique()
    return {method: int(counts.get(method, 0)) for method in frame["method"].unique()}


def failed_images(frame: pd.DataFrame) -> int:
    """Images with at least one error row, whatever the method."""
    return int(_failed_rows(frame)["image_id"].nunique())


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (method, metric): mean over successful images, n, failures, and direction."""
    ok = frame["error"].isna() | (frame["error"] == "")
    grouped = frame.assign(ok=ok, good=frame["value"].where(ok)).groupby(["method", "metric"], sort=True)
    table = grouped.agg(mean=("good", "mean"), n=("ok", "sum"), failures=("ok", lambda s: int((~s).sum())),
                        lower_better=("lower_better", "first"))
    return table.reset_index()


def write_summary(run_dir: str | Path | Location, frame: pd.DataFrame) -> Location:
    """Write ``RUN_DIR/summary.json``: ``{method: {metric: mean, metric_n: n, metric_failures: k}}``.

    Numeric leaves only (non-finite means become null), the shape DVC's metrics commands read.
    """
    import math

    nested: dict[str, dict[str, float | int | None]] = {}
    for row in summary_table(frame).itertuples(index=False):
        entry = nested.setdefault(str(row.method), {})
        mean = float(row.mean) if row.mean == row.mean else None
        entry[str(row.metric)] = mean if mean is None or math.isfinite(mean) else None
        entry[f"{row.metric}_n"] = int(row.n)
        entry[f"{row.metric}_failures"] = int(row.failures)
    return (Location(run_dir) / "summary.json").write_bytes(json.dumps(nested, indent=2, sort_keys=True) + "\n")
