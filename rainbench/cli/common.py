"""What every rainbench command shares: common options, error reporting, progress bars, logging.

Each verb lives in its own module under ``rainbench/cli`` and decorates its click command with
:func:`common_options`, which adds ``--device``, ``--workers``, ``--seed``, ``--quiet``,
``--verbose`` and ``--debug`` and passes them as one :class:`Common` object named ``common``.
Verb modules import only click at module level, so ``rainbench --help`` stays fast; heavy
imports (torch, datasets, ...) happen inside the command.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import click

T = TypeVar("T")

# Set by --debug wherever it appears (group or command), read by main()'s error handler.
DEBUG = {"enabled": os.environ.get("RAINBENCH_DEBUG", "") not in ("", "0")}


class NotImplementedYet(click.ClickException):
    """A verb whose issue has not landed: says so plainly and exits with code 3."""

    exit_code = 3

    def __init__(self, verb: str, issue: int):
        super().__init__(f"`rainbench {verb}` is not implemented yet (tracked in issue #{issue}).")


@dataclass(frozen=True)
class Common:
    """The options every command accepts."""

    device: str = "auto"
    workers: int | None = None
    seed: int = 0
    verbosity: int = 1
    debug: bool = False

    @property
    def quiet(self) -> bool:
        """True when the user asked for no progress output."""
        return self.verbosity == 0

    def torch_device(self):
        """The resolved ``torch.device`` (CUDA when present for ``auto``)."""
        from rainbench.device import resolve_device

        return resolve_device(self.device)

    def n_workers(self) -> int:
        """Worker processes to use: ``--workers`` or every core."""
        return self.workers if self.workers is not None else (os.cpu_count() or 1)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        DEBUG["enabled"] = True
    return value


def debug_option(func: Callable) -> Callable:
    """Add ``--debug`` (full tracebacks instead of one-line errors)."""
    return click.option(
        "--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
        help="Show full tracebacks instead of one-line errors.",
    )(func)


def common_options(func: Callable) -> Callable:
    """Decorate a click command with the shared options, passed on as ``common: Common``."""

    @click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
                  envvar="RAINBENCH_DEVICE", help="Where to compute; auto picks CUDA when present.")
    @click.option("--workers", type=click.IntRange(min=0), default=None, metavar="N",
                  help="Worker processes for decoding and probing (default: all cores; 0 = in-process).")
    @click.option("--seed", type=int, default=0, show_default=True, help="Random seed: the same seed gives the same result.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bars; errors and the final summary only.")
    @click.option("--verbose", "-v", is_flag=True, help="Log every step (and per-file warnings).")
    @debug_option
    @functools.wraps(func)
    def wrapper(*args, device: str, workers: int | None, seed: int, quiet: bool, verbose: bool, **kwargs):
        if quiet and verbose:
            raise click.UsageError("--quiet and --verbose exclude each other")
        common = Common(device=device, workers=workers, seed=seed,
                        verbosity=0 if quiet else (2 if verbose else 1), debug=DEBUG["enabled"])
        configure_logging(common)
        if device != "auto":  # fail on a bad --device before any work is done
            from rainbench.device import DeviceError, resolve_device

            try:
                resolve_device(device)
            except DeviceError as exc:
                raise click.BadParameter(str(exc).split(": ", 1)[-1], param_hint="--device") from None
        return func(*args, common=common, **kwargs)

    return wrapper


def configure_logging(common: Common) -> None:
    """Route library logging to the terminal at the level the user asked for."""
    from rich.logging import RichHandler

    level = logging.DEBUG if common.verbosity >= 2 else (logging.WARNING if common.verbosity == 1 else logging.ERROR)
    handler = RichHandler(console=stderr_console(), show_time=False, show_path=False)
    for name in ("rainbench", "collection", "baselines", "nlcl"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # Library warnings (Pillow's "Corrupt EXIF data", ...) describe files, not the run: through
    # logging, shown with --verbose only, never raw on stderr (ingest also stores them per row).
    logging.captureWarnings(True)
    warned = logging.getLogger("py.warnings")
    warned.handlers[:] = [handler]
    warned.setLevel(logging.WARNING if common.verbosity >= 2 else logging.CRITICAL)
    warned.propagate = False


@functools.cache
def stderr_console():
    """The rich console for progress and logs (stderr, so stdout stays clean for tables)."""
    from rich.console import Console

    return Console(stderr=True)


@functools.cache
def stdout_console():
    """The rich console for results and summary tables."""
    from rich.console import Console

    return Console()


@contextmanager
def progress(common: Common) -> Iterator:
    """A rich progress display with count, rate and ETA; disabled under ``--quiet``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=stderr_console(), disable=common.quiet, transient=False) as bar:
        yield bar


def stage_reporter(bar, labels: dict[str, str]) -> Callable[[str, int, int | None], None]:
    """A ``progress(stage, done, total)`` callback drawing one bar per stage, labelled from ``labels``."""
    tasks: dict[str, int] = {}

    def report(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(labels.get(stage, stage), total=total, rate="")
        bar.update(tasks[stage], completed=done, total=total)

    return report


def track(common: Common, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar showing items/s and ETA."""
    import time

    with progress(common) as bar:
        task = bar.add_task(description, total=total, rate="")
        start = time.perf_counter()
        for n, item in enumerate(items, 1):
            yield item
            elapsed = time.perf_counter() - start
            bar.update(task, advance=1, rate=f"{n / elapsed:.1f} it/s" if elapsed > 0 else "")


def parse_key_values(pairs: Iterable[str], option: str, several: bool = False) -> dict[str, str]:
    """Parse repeated ``key=value`` options into a dict, naming the option on a malformed pair.

    With ``several`` one value may hold several whitespace-separated pairs (``"a=1 b=2"``), which
    is how a single parameter (DVC's params.yaml) passes a list of method options.
    """
    out: dict[str, str] = {}
    if several:
        pairs = [word for value in pairs for word in value.split()]
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint=option)
        out[key.strip()] = value.strip()
    return out
