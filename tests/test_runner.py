"""Runner, dataset streaming and results store: correctness, failure handling, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rainbench.data import DatasetError, open_dataset
from rainbench.results import ResultsWriter, consolidate, read_results
from rainbench.runner import run_benchmark

TESTS = Path(__file__).parent
SIZES = [(48, 64), (48, 64), (48, 64), (40, 56), (40, 56), (48, 64)]  # (height, width)


# --- stand-ins: small fakes with the metric and method contracts, used where the real ones are not needed

class _Spec:
    def __init__(self, name: str, lower_better: bool, needs_reference: bool):
        self.name, self.lower_better, self.needs_reference = name, lower_better, needs_reference

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "impl": "test-fake"}, sort_keys=True)


class FakePSNR:
    """RGB PSNR in float64 numpy: an independent check of what the runner feeds metrics."""

    spec = _Spec("fake_psnr", lower_better=False, needs_reference=True)

    def __call__(self, pred, ref=None):
        p = pred.double().numpy() * 255.0
        r = ref.double().numpy() * 255.0
        mse = ((p - r) ** 2).reshape(len(p), -1).mean(axis=1)
        return torch.from_numpy(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)))


class FakeBrightness:
    """A no-reference stand-in: mean pixel value (lower is 'better')."""

    spec = _Spec("fake_bright", lower_better=True, needs_reference=False)

    def __call__(self, pred, ref=None):
        return pred.mean(dim=(1, 2, 3))


def key(x: torch.Tensor) -> list[int]:
    """A per-image signature (fakes see pixels, not ids)."""
    return [round(float(v) * 1e5) for v in x.mean(dim=(1, 2, 3))]


class FakeMethod:
    """Identity, except on the images whose signature is in ``bad``: raise, NaN or wrong shape."""

    def __init__(self, name: str, mode: str = "ok", bad: tuple[int, ...] = (), delay: float = 0.0):
        self.name, self.mode, self.bad, self.delay = name, mode, set(bad), delay
        self.config_hash = f"{name}-{mode}"
        self.calls = 0

    def derain(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        time.sleep(self.delay * len(x))
        hit = [i for i, k in enumerate(key(x)) if k in self.bad]
        y = x.clone()
        if hit and self.mode == "raise":
            raise RuntimeError("boom on a bad image")
        if hit and self.mode == "nan":
            y[hit] = float("nan")
        if hit and self.mode == "shape":
            return y[..., :-1, :]
        return (y * 0.9 + 0.05) if self.mode == "ok" else y


# --- data


def _images() -> list[tuple[np.ndarray, np.ndarray]]:
    from skimage import data as skdata

    sources = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    rng = np.random.default_rng(0)
    out = []
    for i, (h, w) in enumerate(SIZES):
        src = sources[i % len(sources)]
        y0, x0 = 30 * i, 20 * i
        clean = np.ascontiguousarray(src[y0:y0 + h, x0:x0 + w])
        streaks = np.zeros((h, w), np.float32)
        for _ in range(12):  # short bright diagonal streaks
            r, c = rng.integers(0, h - 8), rng.integers(0, w - 4)
            for t in range(8):
                streaks[r + t, min(w - 1, c + t // 2)] = 0.6
        rainy = np.clip(clean / 255.0 + streaks[..., None], 0, 1)
        out.append((clean, np.rint(rainy * 255).astype(np.uint8)))
    return out


def _png(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_dataset(root: Path) -> tuple[Path, list[dict]]:
    """A tiny saved DatasetDict: 4 pairs, 1 rainy-only row, 1 clean-only row, two image sizes."""
    import hashlib

    import datasets

    rows = []
    for i, (clean, rainy) in enumerate(_images()):
        role = "pair" if i < 4 else ("rainy" if i == 4 else "clean")
        rainy_bytes = _png(rainy) if role != "clean" else None
        clean_bytes = _png(clean) if role != "rainy" else None
        main = rainy_bytes if rainy_bytes is not None else clean_bytes
        rows.append({
            "id": hashlib.sha256(main).hexdigest()[:16],
            "rainy": {"bytes": rainy_bytes, "path": None} if rainy_bytes else None,
            "clean": {"bytes": clean_bytes, "path": None} if clean_bytes else None,
            "role": role, "source": "alpha" if i % 2 == 0 else "beta",
            "rain_kind": "heavy" if i < 2 else "light",
            "width": clean.shape[1], "height": clean.shape[0],
            "sha256": hashlib.sha256(main).hexdigest(),
            "_rainy": rainy if role != "clean" else None, "_clean": clean if role != "rainy" else None,
        })
    features = datasets.Features({
        "id": datasets.Value("string"), "rainy": datasets.Image(), "clean": datasets.Image(),
        "role": datasets.Value("string"), "source": datasets.Value("string"), "rain_kind": datasets.Value("string"),
        "width": datasets.Value("int32"), "height": datasets.Value("int32"), "sha256": datasets.Value("string"),
    })
    table = {name: [r[name] for r in rows] for name in features}
    test = datasets.Dataset.from_dict(table, features=features)
    train = test.select([0, 1])
    out = root / "data"
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(out))
    return out, rows


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ds"))


def _bad_key(rows, index: int) -> int:
    from collection.images import to_tensor

    return key(to_tensor(rows[index]["_rainy"]))[0]


# --- tests


def test_open_dataset_metadata_fingerprint_and_errors(dataset, tmp_path):
    path, rows = dataset
    ds = open_dataset(path, "test")
    assert list(ds.meta["id"]) == [r["id"] for r in rows]
    assert list(ds.meta["has_rainy"]) == [r["_rainy"] is not None for r in rows]
    assert list(ds.meta["has_clean"]) == [r["_clean"] is not None for r in rows]
    assert open_dataset(path, "test").fingerprint == ds.fingerprint
    assert open_dataset(path, "train").fingerprint != ds.fingerprint
    with pytest.raises(DatasetError, match="'val'"):
        open_dataset(path, "val")
    with pytest.raises(DatasetError, match="nobody-x/not-cached"):
        open_dataset("nobody-x/not-cached", "test", offline=True)
    with pytest.raises(DatasetError, match="no such dataset"):
        open_dataset(tmp_path / "missing", "test")


def test_hub_tree_directory_gives_the_same_rows(dataset, tmp_path):
    import datasets

    path, _ = dataset
    tree = tmp_path / "tree"
    (tree / "data").mkdir(parents=True)
    datasets.load_from_disk(str(path))["test"].to_parquet(str(tree / "data" / "test-00000-of-00001.parquet"))
    (tree / "README.md").write_text("---\nlicense: mit\n---\n# tiny\n")
    hub = open_dataset(tree, "test")
    disk = open_dataset(path, "test")
    assert hub.fingerprint == disk.fingerprint
    assert list(hub.meta["has_clean"]) == list(disk.meta["has_clean"])


def test_hub_id_resolves_from_the_local_cache_offline(dataset, tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants

    path, _ = dataset
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--someorg--tiny-rain"
    snapshot = repo / "snapshots" / revision
    (snapshot / "data").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    datasets.load_from_disk(str(path))["test"].to_parquet(str(snapshot / "data" / "test-00000-of-00001.parquet"))
    (snapshot / "README.md").write_text("---\nlicense: mit\n---\n")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    hub = open_dataset("someorg/tiny-rain", "test", offline=True)
    assert hub.name == "someorg/tiny-rain"
    assert hub.fingerprint == open_dataset(path, "test").fingerprint


@pytest.mark.parametrize("workers", [0, 1])
def test_batches_are_size_grouped_and_decode_the_stored_pixels(dataset, workers):
    path, rows = dataset
    ds = open_dataset(path, "test")
    seen = []
    for batch in ds.batches(batch_size=2, workers=workers, indices=range(5)):
        assert 1 <= len(batch) <= 2
        assert len({s.rainy.shape for s in batch}) == 1
        for s in batch:
            np.testing.assert_array_equal(s.rainy, rows[s.index]["_rainy"])
            if rows[s.index]["_clean"] is None:
                assert s.clean is None
            else:
                np.testing.assert_array_equal(s.clean, rows[s.index]["_clean"])
            seen.append(s.index)
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_results_writer_keeps_the_last_row_per_key(tmp_path):
    base = {"image_id": "a", "method": "m", "metric": "x", "error": None}
    writer = ResultsWriter(tmp_path)
    writer.add([{**base, "value": 1.0}])
    writer.flush()
    writer.add([{**base, "value": 2.0}, {**base, "metric": "y", "value": 3.0}])
    writer.close()
    assert len(list((tmp_path / "results").glob("part-*.parquet"))) == 2
    frame = read_results(tmp_path)
    assert dict(zip(frame["metric"], frame["value"])) == {"x": 2.0, "y": 3.0}
    consolidate(tmp_path)
    assert len(list((tmp_path / "results").glob("part-*.parquet"))) == 1
    pd.testing.assert_frame_equal(read_results(tmp_path), frame)
    assert (tmp_path / "results.parquet").exists()


def test_scores_match_direct_metric_and_reference_metrics_need_clean(dataset, tmp_path):
    from collection.images import to_tensor

    path, rows = dataset
    summary = run_benchmark(path, [FakeMethod("shift")], [FakePSNR(), FakeBrightness()], tmp_path / "run",
                            batch_size=3, save_outputs=True)
    frame = read_results(tmp_path / "run")
    assert summary.n_images == 5 and summary.n_processed == 5
    assert set(frame["method"]) == {"identity", "shift"}
    assert frame["error"].isna().all()
    by_id = {r["id"]: r for r in rows}
    assert rows[5]["id"] not in set(frame["image_id"])  # clean-only row: nothing to derain
    for _, r in frame.iterrows():
        row = by_id[r["image_id"]]
        pred = to_tensor(row["_rainy"])
        if r["method"] == "shift":  # the runner quantises outputs to uint8 before scoring
            pred = torch.round((pred * 0.9 + 0.05) * 255) / 255
        if r["metric"] == "fake_psnr":
            assert row["_clean"] is not None
            expected = float(FakePSNR()(pred, to_tensor(row["_clean"]))[0])
        else:
            expected = float(FakeBrightness()(pred)[0])
        assert r["value"] == pytest.approx(expected, abs=1e-5)
        assert (r["source"], r["rain_kind"]) == (row["source"], row["rain_kind"])
    rainy_only = frame[frame["image_id"] == rows[4]["id"]]
    assert set(rainy_only["metric"]) == {"fake_bright"}
    assert len(frame) == 2 * (4 * 2 + 1)
    from collection.images import load_image

    saved = load_image(tmp_path / "run" / "outputs" / "identity" / f"{rows[0]['id']}.png")
    np.testing.assert_array_equal(saved, rows[0]["_rainy"])
    assert (tmp_path / "run" / "outputs" / "_clean" / f"{rows[0]['id']}.png").exists()
    config = json.loads((tmp_path / "run" / "run.json").read_text())
    assert config["dataset_fingerprint"] == summary.dataset_fingerprint
    assert (tmp_path / "run" / "results.parquet").exists()


def test_failing_methods_record_error_rows_and_the_run_goes_on(dataset, tmp_path):
    path, rows = dataset
    bad = (_bad_key(rows, 1),)
    methods = [FakeMethod("raises", "raise", bad), FakeMethod("nan", "nan", bad), FakeMethod("shape", "shape", bad)]
    summary = run_benchmark(path, methods, [FakePSNR(), FakeBrightness()], tmp_path / "run", batch_size=4)
    frame = read_results(tmp_path / "run")
    for name in ("raises", "nan", "shape"):
        mine = frame[frame["method"] == name]
        failed = mine[mine["error"].notna()]
        assert set(failed["image_id"]) == {rows[1]["id"]}, name
        assert failed["value"].isna().all()
        assert set(failed["metric"]) == {"fake_psnr", "fake_bright"}
        good = mine[mine["error"].isna()].set_index(["image_id", "metric"])["value"]
        ident = frame[frame["method"] == "identity"].set_index(["image_id", "metric"])["value"]
        assert len(good) == 3 * 2 + 1 and np.allclose(good, ident.loc[good.index])  # batch-mates were still scored
        assert summary.failures[name] == 1
    assert summary.failures["identity"] == 0
    assert "boom" in frame[(frame["method"] == "raises") & frame["error"].notna()]["error"].iloc[0]
    table = summary.table.set_index(["method", "metric"])
    assert table.loc[("raises", "fake_psnr"), "failures"] == 1


def test_resume_skips_complete_pairs_and_adding_a_method_runs_only_it(dataset, tmp_path):
    path, _ = dataset
    first = run_benchmark(path, [FakeMethod("a")], [FakeBrightness()], tmp_path / "run")
    again_method = FakeMethod("a")
    second = run_benchmark(path, [again_method], [FakeBrightness()], tmp_path / "run")
    assert second.n_processed == 0 and second.n_resumed == 5 and again_method.calls == 0
    assert second.run_id == first.run_id
    b = FakeMethod("b")
    third = run_benchmark(path, [FakeMethod("a"), b], [FakeBrightness()], tmp_path / "run")
    assert third.n_processed == 5 and b.calls == 5
    assert set(read_results(tmp_path / "run")["method"]) == {"identity", "a", "b"}


_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_runner import FakeMethod, FakePSNR, FakeBrightness
from rainbench.runner import run_benchmark
run_benchmark({data!r}, [FakeMethod("slow", delay={delay})], [FakePSNR(), FakeBrightness()], {out!r},
              batch_size=1, flush_every=1)
"""


def _run_script(data: Path, out: Path, delay: float) -> subprocess.Popen:
    script = _SCRIPT.format(tests=str(TESTS), data=str(data), out=str(out), delay=delay)
    return subprocess.Popen([sys.executable, "-c", script], cwd=str(TESTS.parent))


def _table(run_dir: Path):
    frame = read_results(run_dir).drop(columns=["seconds", "run_id"])
    return frame.sort_values(["image_id", "method", "metric"]).reset_index(drop=True)


def test_killed_run_resumes_to_the_same_table(dataset, tmp_path):
    path, _ = dataset
    proc = _run_script(path, tmp_path / "killed", delay=0.5)
    parts = tmp_path / "killed" / "results"
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*.parquet"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    partial = read_results(tmp_path / "killed")
    assert 0 < partial["image_id"].nunique() < 5
    resumed = run_benchmark(path, [FakeMethod("slow")], [FakePSNR(), FakeBrightness()], tmp_path / "killed")
    assert resumed.n_resumed >= 1 and resumed.n_processed < 5
    run_benchmark(path, [FakeMethod("slow")], [FakePSNR(), FakeBrightness()], tmp_path / "whole", batch_size=1)
    whole, killed = _table(tmp_path / "whole"), _table(tmp_path / "killed")
    assert whole.drop(columns=["value"]).equals(killed.drop(columns=["value"]))
    np.testing.assert_array_equal(whole["value"].to_numpy(), killed["value"].to_numpy())


def test_other_dataset_in_the_same_run_dir_is_refused(dataset, tmp_path):
    from rainbench.results import ResultsError

    path, _ = dataset
    run_benchmark(path, [], [FakeBrightness()], tmp_path / "run", split="train")
    with pytest.raises(ResultsError, match="new --out"):
        run_benchmark(path, [], [FakeBrightness()], tmp_path / "run", split="test")


def test_undecodable_image_records_errors_for_every_method(tmp_path):
    import datasets

    good, bad = _png(_images()[0][1]), b"\x89PNG\r\n\x1a\n truncated"
    features = datasets.Features({"id": datasets.Value("string"), "rainy": datasets.Image(), "clean": datasets.Image()})
    split = datasets.Dataset.from_dict({"id": ["good", "bad"], "rainy": [{"bytes": good, "path": None}, {"bytes": bad, "path": None}],
                                        "clean": [None, None]}, features=features)
    datasets.DatasetDict({"test": split}).save_to_disk(str(tmp_path / "data"))
    summary = run_benchmark(tmp_path / "data", [FakeMethod("a")], [FakePSNR(), FakeBrightness()], tmp_path / "run")
    frame = read_results(tmp_path / "run").set_index(["image_id", "method"])
    assert frame.loc[("bad", "a"), "error"].startswith("decode: bad:rainy")
    assert frame.loc[("bad", "identity"), "error"].startswith("decode:")
    good_row = frame.loc[("good", "a")]
    assert good_row.isna()["error"] and np.isfinite(good_row["value"])
    assert summary.failures == {"a": 1, "identity": 1}
    assert set(frame["metric"]) == {"fake_bright"}  # no clean image anywhere: no reference rows
