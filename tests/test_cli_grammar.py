"""The CLI grammar of docs/cli.md: --help matches the doc, curated metavars, one short flag per option,
listings that fit 80 columns, old spellings that still work, and the shared options' effects."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from PIL import Image

from rainbench.cli import VERBS, cli, main

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
UNIVERSAL = {"--quiet", "--verbose", "--debug", "--help"}


def leaf_commands() -> list[tuple[str, click.Command]]:
    """(``verb`` or ``verb sub``, command) for every command a user can run."""
    out = []
    for verb in VERBS:
        command = cli.get_command(click.Context(cli), verb)
        if isinstance(command, click.Group):
            out += [(f"{verb} {sub}", command.get_command(click.Context(command), sub))
                    for sub in command.list_commands(click.Context(command))]
        else:
            out.append((verb, command))
    return out


def visible_options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden and not set(p.opts) & UNIVERSAL]


def is_flag(option: click.Option) -> bool:
    """A flag, or a flag-like option such as ``publish --dry-run`` (whose old value form still parses)."""
    return option.is_flag or bool(getattr(option, "_flag_needs_value", False))


def doc_sections() -> dict[str, str]:
    text = DOC.read_text()
    parts = re.split(r"^### `rainbench ([a-z -]+)`$", text, flags=re.MULTILINE)
    return {name: body for name, body in zip(parts[1::2], parts[2::2])}


def test_every_verb_is_documented_with_the_options_its_help_shows():
    sections = doc_sections()
    assert {name for name, _ in leaf_commands()} == set(sections)
    for name, command in leaf_commands():
        documented = {}
        for line in sections[name].splitlines():
            m = re.match(r"^\| (`-[^|]*?) \| `(.*?)` \|", line)
            if m:
                spellings = frozenset(re.findall(r"`(-[-a-z]+|-[a-z])`", m.group(1)))
                documented[spellings] = m.group(2).replace("\\|", "|")
        shown = {}
        for option in visible_options(command):
            value = "flag" if is_flag(option) else option.make_metavar(click.Context(command))
            shown[frozenset(option.opts + option.secondary_opts)] = value
        assert documented == shown, name


def test_option_values_have_curated_metavars_and_every_option_has_help(capsys):
    for name, command in leaf_commands():
        for option in visible_options(command):
            assert option.help, (name, option.opts)
            if not is_flag(option) and not isinstance(option.type, click.Choice):
                assert option.metavar, (name, option.opts)
        assert main([*name.split(), "--help"]) == 0
        text = capsys.readouterr().out.split("Options:", 1)[-1]
        for default in ("TEXT", "INTEGER", "FLOAT", "RANGE", "PATH", "DIRECTORY", "FILENAME"):
            assert not re.search(rf"\b{default}\b", text), (name, default)


def test_an_option_has_the_same_short_flag_on_every_verb():
    shorts: dict[str, set[str]] = {}
    seen: dict[str, int] = {}
    for _, command in leaf_commands():
        for option in visible_options(command):
            long = max(option.opts, key=len)
            seen[long] = seen.get(long, 0) + 1
            shorts.setdefault(long, set()).update(o for o in option.opts if not o.startswith("--"))
    for long, flags in shorts.items():
        assert len(flags) <= 1, (long, flags)
    for long in ("--out", "--method", "--config"):
        assert shorts[long] == {f"-{long[2]}"}
        # the short flag is on every verb that has the long one
        assert sum(1 for _, c in leaf_commands() for o in visible_options(c) if long in o.opts and f"-{long[2]}" in o.opts) \
            == seen[long]


# --- listings --------------------------------------------------------------------------------------


def _assert_fits_without_split_words(table: str, full_text: str, width: int = 80) -> None:
    words = set(full_text.split())
    for line in table.splitlines():
        assert len(line) <= width, line
        for token in line.split():
            if token.endswith("…"):
                stem = token[:-1]
                assert any(w.startswith(stem) for w in words) or not stem, token
            elif set(token) != {"-"}:
                assert token in words, (token, line)


def test_methods_table_fits_80_columns_and_the_other_formats_are_full(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["methods", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert main(["methods", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == [r["name"] for r in records]
    assert [r["paper"].split(" [")[0] for r in rows] == [r["paper"] for r in records]  # never cut
    assert main(["methods", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert all(r["paper"] in md for r in records)
    assert main(["methods"]) == 0
    table = capsys.readouterr().out
    full = " ".join(" ".join(r.values()) for r in rows) + " name kind learns weights license paper fit"
    _assert_fits_without_split_words(table, full)
    assert "unsupervised" in table.split()  # the word that used to break into "unsupervise" / "d"
    assert len(table.strip().splitlines()) == len(records) + 2  # header, rule, one line per method


def test_a_narrow_terminal_drops_columns_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "50")
    assert main(["methods"]) == 0
    captured = capsys.readouterr()
    assert all(len(line) <= 50 for line in captured.out.splitlines())
    assert "not shown" in captured.err and "license" in captured.err


def test_metric_weights_list_fits_80_columns(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert main(["metric-weights", "list", "--metric-weights", str(tmp_path / "w"), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and all(r["path"].startswith(str(tmp_path)) for r in rows if r["file"])
    assert main(["metric-weights", "list", "--metric-weights", str(tmp_path / "w")]) == 0
    table = capsys.readouterr().out
    assert all(len(line) <= 80 for line in table.splitlines())
    assert {r["metric"] for r in rows} <= set(table.split())


# --- old spellings -------------------------------------------------------------------------------------


def _image(path: Path, seed: int = 0, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_synth_set_is_config_with_a_deprecation_warning(tmp_path, capsys):
    clean = _image(tmp_path / "clean" / "a.png")
    assert main(["synth", str(clean), "-o", str(tmp_path / "new"), "-c", "density=3", "--workers", "0", "-q"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(["synth", str(clean), "--out", str(tmp_path / "old"), "--set", "density=3", "--workers", "0", "-q"]) == 0
    assert "deprecated: --set is now --config" in capsys.readouterr().err
    assert main(["synth", str(clean), "-o", str(tmp_path / "base"), "--workers", "0", "-q"]) == 0
    assert _tree_bytes(tmp_path / "old") == _tree_bytes(tmp_path / "new") != _tree_bytes(tmp_path / "base")


def test_old_and_new_spelling_together_is_a_usage_error(tmp_path, capsys):
    code = main(["ingest", str(tmp_path), "-o", str(tmp_path / "o"), "--split", "train=1", "--split-ratios", "train=1"])
    assert code == 2 and "--split-ratios" in capsys.readouterr().err


def test_ingest_split_reaches_split_ratios(tmp_path, capsys):
    code = main(["ingest", str(tmp_path), "-o", str(tmp_path / "o"), "--split", "train=nonsense", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "deprecated: --split is now --split-ratios" in err and "--split-ratios" in err.splitlines()[-1]


def test_methods_json_and_weights_verb_still_work(tmp_path, monkeypatch, capsys):
    assert main(["methods", "--json"]) == 0
    captured = capsys.readouterr()
    assert {m["name"] for m in json.loads(captured.out)} >= {"identity", "gmm"}
    assert "deprecated: --json is now --format json" in captured.err
    monkeypatch.delenv("RAINBENCH_WEIGHTS_DIR", raising=False)
    assert main(["weights", "path", "--weights-dir", str(tmp_path / "w")]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / "w")
    assert "rainbench weights is now rainbench metric-weights" in captured.err
    assert "--weights-dir is now --metric-weights" in captured.err
    assert main(["--help"]) == 0
    assert "  weights " not in capsys.readouterr().out  # hidden from the verb list


def test_publish_dry_run_is_a_flag_with_tree_and_the_old_value_form_still_works(tmp_path, capsys):
    from test_publish import make_dataset

    data = make_dataset(tmp_path)
    tree = tmp_path / "tree"
    assert main(["publish", "--dry-run", str(data), "--repo-id", "org/rain", "--tree", str(tree), "-q"]) == 0
    assert (tree / "README.md").is_file() and "dry run: nothing uploaded" in capsys.readouterr().out
    assert main(["publish", str(data), "--repo-id", "org/rain", "--dry-run", "-q"]) == 0
    assert (data / ".cache" / "publish" / "org--rain" / "README.md").is_file()
    old = tmp_path / "old"
    assert main(["publish", str(data), "--repo-id", "org/rain", "--dry-run", str(old), "-q"]) == 0
    captured = capsys.readouterr()
    assert (old / "README.md").is_file() and "deprecated: --dry-run DIR" in captured.err
    assert main(["publish", "--repo-id", "org/rain", "--dry-run"]) == 2  # no DATASET at all


# --- the shared options' effects ----------------------------------------------------------------------


@dataclass
class Seen:
    devices: list
    threads: list


@pytest.fixture
def recorder():
    """A registered method that records where and with how many threads it runs, and adds seeded noise."""
    from baselines import Method, MethodInfo, register
    from baselines.registry import unregister

    seen = Seen([], [])

    @register(MethodInfo(name="test-recorder", kind="prior", paper="test", year=None, code_license="MIT",
                         weights_license=None, learns_from="none", needs_weights=False, summary="test"))
    class Recorder(Method):
        @dataclass(frozen=True)
        class Config:
            noise: float = 0.0

        def _derain(self, batch):
            seen.devices.append(str(batch.device))
            seen.threads.append(torch.get_num_threads())
            noise = torch.rand(batch.shape, generator=None).to(batch.device) * self.config.noise
            return (batch + noise).clamp(0, 1)

    before = torch.get_num_threads()
    try:
        yield seen
    finally:
        unregister("test-recorder")
        torch.set_num_threads(before)


def test_device_cpu_is_where_the_method_runs_and_a_missing_cuda_is_an_error(tmp_path, recorder, capsys):
    image = _image(tmp_path / "in" / "a.png")
    assert main(["derain", str(image), "-m", "test-recorder", "-o", str(tmp_path / "o"), "--device", "cpu", "-q"]) == 0
    assert recorder.devices == ["cpu"]
    code = main(["derain", str(image), "-m", "test-recorder", "-o", str(tmp_path / "c"), "--device", "cuda",
                 "--overwrite", "-q"])
    if torch.cuda.is_available():
        assert code == 0 and recorder.devices[-1].startswith("cuda")
    else:
        assert code == 2 and "--device" in capsys.readouterr().err and len(recorder.devices) == 1


def test_auto_device_picks_cuda_when_present(monkeypatch):
    from rainbench.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"


def test_torch_threads_follow_the_cpu_budget_unless_omp_num_threads_is_set(tmp_path, recorder, monkeypatch):
    import rainbench.cpus

    image = _image(tmp_path / "in" / "a.png")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(rainbench.cpus, "cpu_budget", lambda: 3)
    torch.set_num_threads(1)
    assert main(["derain", str(image), "-m", "test-recorder", "-o", str(tmp_path / "a"), "--device", "cpu", "-q"]) == 0
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert main(["derain", str(image), "-m", "test-recorder", "-o", str(tmp_path / "b"), "--device", "cpu", "-q"]) == 0
    assert recorder.threads == [3, 2]


def test_run_seed_fixes_a_stochastic_method(tmp_path, recorder):
    from test_runner import make_dataset

    from rainbench.results import read_results

    data, _ = make_dataset(tmp_path / "data")

    def scores(seed: int, out: str) -> list[float]:
        code = main(["run", "--dataset", str(data), "-m", "test-recorder", "-c", "noise=0.2", "--metric", "psnr",
                     "--no-identity", "-o", str(tmp_path / out), "--seed", str(seed), "--workers", "0",
                     "--device", "cpu", "-q"])
        assert code == 0
        return read_results(tmp_path / out).sort_values("image_id")["value"].tolist()

    first, again, other = scores(1, "a"), scores(1, "b"), scores(2, "c")
    assert first == again and first != other


@pytest.fixture
def pools(monkeypatch) -> list:
    """The max_workers of every process pool created while the test runs (pools still work)."""
    import concurrent.futures

    sizes: list = []

    class Recording(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, max_workers=None, *args, **kwargs):
            sizes.append(max_workers)
            super().__init__(max_workers, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Recording)
    return sizes


def test_synth_seed_and_workers(tmp_path, monkeypatch, pools):
    import rainbench.cpus

    clean = [_image(tmp_path / "clean" / f"{i}.png", seed=i) for i in range(4)]
    folder = str(tmp_path / "clean")
    assert main(["synth", folder, "-o", str(tmp_path / "a"), "--seed", "5", "--workers", "2", "-q"]) == 0
    assert main(["synth", folder, "-o", str(tmp_path / "b"), "--seed", "5", "--workers", "0", "-q"]) == 0
    assert main(["synth", folder, "-o", str(tmp_path / "c"), "--seed", "6", "--workers", "0", "-q"]) == 0
    monkeypatch.setattr(rainbench.cpus, "cpu_budget", lambda: 3)
    assert main(["synth", folder, "-o", str(tmp_path / "d"), "--seed", "5", "-q"]) == 0
    assert pools == [2, 3]  # --workers 2, then the CPU budget by default; --workers 0 makes no pool
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b") == _tree_bytes(tmp_path / "d")
    assert _tree_bytes(tmp_path / "c") != _tree_bytes(tmp_path / "a") and len(clean) == 4


def test_ingest_workers_is_the_probe_pool_size(tmp_path, pools):
    for i in range(3):
        _image(tmp_path / "photos" / f"{i}.png", seed=i, size=40 + 8 * i)
    args = ["ingest", str(tmp_path / "photos"), "--min-side", "8", "-q"]
    assert main([*args, "-o", str(tmp_path / "a"), "--workers", "2"]) == 0
    assert main([*args, "-o", str(tmp_path / "b"), "--workers", "0"]) == 0
    assert pools == [2]


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    from test_runner import make_dataset

    root = tmp_path_factory.mktemp("board")
    data, _ = make_dataset(root / "data")
    assert main(["run", "--dataset", str(data), "--metric", "psnr,ssim", "-o", str(root / "run"), "--workers", "0",
                 "--device", "cpu", "-q"]) == 0
    return root / "run"


def test_leaderboard_prints_every_format_and_writes_what_write_says(scored_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    board = ["leaderboard", str(scored_run), "--bootstrap", "100", "-q"]
    assert main([*board, "-o", str(tmp_path / "a"), "--write", "md", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in records] == ["identity"] and "psnr ↑" in records[0]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["leaderboard.md", "metric_specs.json"]
    assert main([*board, "-o", str(tmp_path / "b"), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["psnr ↑"] == records[0]["psnr ↑"]
    assert {"leaderboard.md", "leaderboard.csv", "report.html"} <= {p.name for p in (tmp_path / "b").iterdir()}
    assert main([*board, "-o", str(tmp_path / "c"), "--write", "csv"]) == 0
    table = capsys.readouterr().out
    assert all(len(line) <= 80 for line in table.splitlines()) and "identity" in table
    # the old spelling: --format LIST named the files
    assert main([*board, "-o", str(tmp_path / "d"), "--format", "md,csv"]) == 0
    assert "deprecated: --format md,csv is now --write md,csv" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["leaderboard.csv", "leaderboard.md", "metric_specs.json"]
