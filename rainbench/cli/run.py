"""`rainbench run`: benchmark methods on a dataset with reference and no-reference metrics."""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import (
    ListOf,
    PathOrURL,
    common_options,
    deprecated_option,
    flat,
    method_options,
    method_weights,
    stdout_console,
    tile_option,
)

DEFAULT_METRICS = ("psnr", "ssim", "piqe")


def _value(raw: str):
    """A method option's value as JSON where it parses (numbers, booleans), as run.json has always stored it."""
    import json

    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


@click.command("run")
@click.option("--method", "-m", "methods", multiple=True, type=ListOf(), metavar="NAME[,NAME...]",
              help="Methods to run (repeatable or comma-separated); the rainy input is always scored too, as `identity`.")
@click.option("--weights", "weights", multiple=True, metavar="[NAME=]FILE",
              help="Method weights (repeatable); NAME= may be left out when the run has one --method.")
@click.option("--config", "-c", "configs", multiple=True, metavar="[NAME.]KEY=VALUE",
              help="Method option (repeatable, or several in one quoted value); NAME. may be left out with one --method.")
@click.option("--dataset", required=True, metavar="PATH_OR_HUB_ID",
              help="Dataset dir from `rainbench ingest` (a path or an fsspec URL), a Hub tree on disk, or a Hub id "
                   "ORG/NAME.")
@click.option("--split", default="test", show_default=True, metavar="NAME", help="Dataset split to score.")
@click.option("--metric", "metric_names", multiple=True, type=ListOf(), metavar="NAME[,NAME...]",
              help=f"Metrics (repeatable or comma-separated; default {','.join(DEFAULT_METRICS)}; see "
                   "`rainbench metric-weights list`); reference ones only on rows with a clean image.")
@deprecated_option("--metrics", new="metric_names", new_flag="--metric", type=ListOf())
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Images per method call (images are grouped by size).")
@click.option("--save-outputs", is_flag=True, help="Save every method output as PNG under RUN_DIR/outputs/<method>/.")
@click.option("--metric-weights", "metric_weights", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Directory with metric weights (default: $RAINBENCH_WEIGHTS_DIR, then the pyiqa cache).")
@deprecated_option("--weights-dir", new="metric_weights", new_flag="--metric-weights",
                   type=click.Path(file_okay=False, path_type=Path))
@click.option("--niqe-model", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="NIQE model file from `rainbench metric-weights fit-niqe` (instead of pyiqa's).")
@click.option("--offline", is_flag=True, envvar="HF_HUB_OFFLINE", help="Never touch the network: Hub ids from the local cache only.")
@click.option("--amp/--no-amp", default=True, show_default=True,
              help="Mixed precision (fp16 autocast) for methods on CUDA; never used on CPU.")
@click.option("--no-identity", is_flag=True, help="Do not score the rainy input as the `identity` method.")
@click.option("--flush-every", type=click.IntRange(min=1), default=16, show_default=True, metavar="N",
              help="Write results to disk every N images (a crash loses at most that many).")
@click.option("--out", "-o", "out", required=True, type=PathOrURL(folder=True), metavar="DIR",
              help="Run directory, a path or an fsspec URL (s3://bucket/run, ...); re-running with the same "
                   "directory resumes.")
@tile_option("Applies to every --method.")
@click.option("--allow-failures", is_flag=True,
              help="Exit 0 even when some images failed (default: exit 1, failures counted in the last line).")
@click.option("--replicas", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --engine ray: workers (Ray actors) per method (default: as many as the cluster holds at "
                   "once, one CPU or --gpus-per-replica of a GPU each, at most one per shard; methods take turns "
                   "when they do not all fit).")
@click.option("--gpus-per-replica", type=click.FloatRange(min=0, max=1), default=None, metavar="F",
              help="With --engine ray on CUDA: the share of a GPU each worker takes, e.g. 0.25 for light methods "
                   "(default 1).")
@common_options(device=True, workers=True, seed=True, torch_threads=True, engine=True,
                workers_help="Processes decoding images while the methods run in this process (default: the CPUs "
                             "this process may use; 0 = decode in this process; runs under 32 images always do). "
                             "Not with --engine ray, whose workers decode their own images (see --replicas).",
                seed_help="Seed of torch's generator before the methods run (for methods that draw random numbers).")
def command(common, methods, weights, configs, dataset, split, metric_names, batch_size, save_outputs, metric_weights,
            niqe_model, offline, amp, no_identity, flush_every, out, tile, allow_failures, replicas,
            gpus_per_replica) -> None:
    """Benchmark methods on a dataset with reference and no-reference metrics.

    \b
    Example:
      rainbench run --method gmm,nlcl --weights nlcl=nlcl.pt \\
          --dataset data/ --metric psnr,ssim,niqe --out runs/first
    Results go to RUN_DIR/results.parquet (one row per image x method x metric);
    an interrupted run resumes when run again with the same --out. The exit code is 1 when any
    image of the run directory failed for any method (unless --allow-failures). Torch computes with
    as many threads as this process has CPUs (OMP_NUM_THREADS overrides); decoding workers use one each.
    """
    import torch

    from collection.lock import OutputLockedError
    from rainbench.runner import MethodRequest, run_benchmark

    names = flat(methods)
    metric_list = flat(metric_names) or list(DEFAULT_METRICS)
    weight_files = method_weights(weights, names)
    method_configs = method_options(configs, names)
    requests = [MethodRequest(n, weight_files.get(n), {k: _value(v) for k, v in method_configs.get(n, {}).items()},
                              tile=tile)
                for n in names]
    torch.manual_seed(common.seed)
    common.ray_only(replicas=replicas, gpus_per_replica=gpus_per_replica)
    if common.engine == "ray" and common.workers is not None:
        raise click.UsageError("--workers is for --engine local; with --engine ray use --replicas")

    try:
        with common.open_engine() as engine, _progress_callback(common) as on_progress:
            summary = run_benchmark(
                dataset, requests, metric_list, out, split=split, device=common.torch_device(), batch_size=batch_size,
                save_outputs=save_outputs, workers=common.n_workers(), progress=on_progress, weights_dir=metric_weights,
                niqe_model=niqe_model, offline=offline, include_identity=not no_identity, amp=amp,
                flush_every=flush_every, engine=engine, replicas=replicas, gpus_per_replica=gpus_per_replica,
            )
    except OutputLockedError as exc:
        raise click.ClickException(str(exc)) from None
    _print_summary(summary, common)
    if summary.failed_images and not allow_failures:
        click.get_current_context().exit(1)


class _progress_callback:
    """A context manager yielding a ``progress(done, total)`` callback that drives a rich bar."""

    def __init__(self, common):
        self.common = common

    def __enter__(self):
        import time

        from rainbench.cli.common import progress

        self._context = progress(self.common)
        bar = self._context.__enter__()
        task = bar.add_task("scoring images", total=None, rate="")
        start = [0.0]

        def update(done: int, total: int) -> None:
            if done == 0:
                start[0] = time.perf_counter()
            elapsed = time.perf_counter() - start[0]
            rate = f"{done / elapsed:.2f} img/s" if done and elapsed > 0 else ""
            bar.update(task, completed=done, total=total, rate=rate)

        return update

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)


def _print_summary(summary, common) -> None:
    from rich.table import Table

    console = stdout_console()
    table = Table(title=f"{summary.dataset}:{summary.split}  run {summary.run_id}")
    for column in ("method", "metric", "mean", "n", "failures"):
        table.add_column(column, justify="left" if column in ("method", "metric") else "right")
    for row in summary.table.itertuples(index=False):
        arrow = "↓" if row.lower_better else "↑"
        table.add_row(row.method, f"{row.metric} {arrow}", "–" if row.mean != row.mean else f"{row.mean:.4f}",
                      str(int(row.n)), str(int(row.failures)) if row.failures else "")
    console.print(table)
    failed = {m: n for m, n in summary.failures.items() if n}
    note = (f"; {summary.failed_images} of {summary.n_scored} image(s) failed "
            f"({', '.join(f'{m} {n}' for m, n in failed.items())}; reasons in the error column)") if failed else ""
    console.print(f"{summary.n_processed} image(s) scored, {summary.n_resumed} already done, "
                  f"{summary.seconds:.1f} s{note}. Results: {summary.run_dir / 'results.parquet'}", highlight=False,
                  soft_wrap=True)
