"""What every rainbench command shares: common options, the grammar's helpers, progress bars, logging.

Each verb lives in its own module under ``rainbench/cli`` and decorates its click command with
:func:`common_options`, naming the shared options it honours (``device``, ``workers``, ``seed``);
``--quiet``, ``--verbose`` and ``--debug`` are on every command. They reach the verb as one
:class:`Common` object named ``common``. The grammar (docs/cli.md) lives here too: list options
(:class:`ListOf`), method weights and options (:func:`method_weights`, :func:`method_options`),
fixed choices loaded lazily (:class:`LazyChoice`) and old spellings that still work for one release
(:class:`DeprecatedOption`). Verb modules import only click at module level, so ``rainbench --help``
stays fast; heavy imports (torch, datasets, ...) happen inside the command.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")

# Set by --debug wherever it appears (group or command), read by main()'s error handler.
DEBUG = {"enabled": os.environ.get("RAINBENCH_DEBUG", "") not in ("", "0")}


@dataclass(frozen=True)
class Common:
    """The shared options as one object; a verb reads only those it declared (see :func:`common_options`)."""

    device: str = "auto"
    workers: int | None = None
    seed: int = 0
    verbosity: int = 1
    debug: bool = False
    engine: str = "local"
    ray_address: str | None = None

    @property
    def quiet(self) -> bool:
        """True when the user asked for no progress output."""
        return self.verbosity == 0

    def torch_device(self):
        """The resolved ``torch.device`` (CUDA when present for ``auto``)."""
        from rainbench.device import resolve_device

        return resolve_device(self.device)

    def n_workers(self, engine: Any = None) -> int:
        """Workers to use: ``--workers``; else a Ray cluster's CPUs, or the CPUs this process may use (affinity, cgroup, SLURM)."""
        from rainbench.cpus import cpu_budget

        if self.workers is not None:
            return self.workers
        return engine.slots() if engine is not None and engine.distributed else cpu_budget()

    def ray_only(self, **flags: Any) -> None:
        """Refuse options of the Ray engine (``--flag-name``: value) given without ``--engine ray``."""
        for name, value in flags.items():
            if value is not None and self.engine != "ray":
                raise click.UsageError(f"--{name.replace('_', '-')} needs --engine ray")

    @contextmanager
    def open_engine(self) -> Iterator[Any]:
        """The engine of ``--engine``/``--ray-address`` (:mod:`collection.engine`), closed on exit."""
        from collection.engine import EngineError, EngineSpec
        from rainbench.cpus import cpu_budget

        try:
            engine = EngineSpec(self.engine, self.ray_address, num_cpus=cpu_budget()).create()
        except EngineError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            yield engine
        except EngineError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            engine.close()


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


DEVICE_HELP = "Where to compute: auto picks CUDA when present, else the CPU; $RAINBENCH_DEVICE sets the default."
WORKERS_HELP = ("Worker processes (default: the CPUs this process may use: affinity mask, cgroup quota, "
                "SLURM_CPUS_PER_TASK; 0 = in this process).")
SEED_HELP = "Random seed: the same seed gives the same result."


ENGINE_HELP = ("Where the heavy work runs: local (this machine's processes) or ray (a Ray cluster's actors; "
               "see docs/scale-out.md).")
RAY_ADDRESS_HELP = ("Ray cluster to join with --engine ray (default: $RAY_ADDRESS, else a local Ray instance "
                    "started for this command).")


def common_options(func: Callable | None = None, *, device: bool = False, workers: bool = False, seed: bool = False,
                   torch_threads: bool = False, engine: bool = False, seed_help: str = SEED_HELP,
                   workers_help: str = WORKERS_HELP) -> Callable:
    """Decorate a click command with the shared options it honours, passed on as ``common: Common``.

    ``--quiet``, ``--verbose`` and ``--debug`` are always added; ``--device``, ``--workers`` and
    ``--seed`` only where the verb uses them (an option that does nothing is not offered);
    ``engine`` adds ``--engine`` and ``--ray-address`` (:meth:`Common.open_engine`).
    ``torch_threads``: the verb computes with torch in this process, which then gets the whole
    CPU budget as threads (``OMP_NUM_THREADS`` overrides).
    """
    if func is None:
        return functools.partial(common_options, device=device, workers=workers, seed=seed,
                                 torch_threads=torch_threads, engine=engine, seed_help=seed_help,
                                 workers_help=workers_help)

    @functools.wraps(func)
    def wrapper(*args, quiet: bool, verbose: bool, **kwargs):
        if quiet and verbose:
            raise click.UsageError("--quiet and --verbose exclude each other")
        values = {name: kwargs.pop(name) for name in ("device", "workers", "seed", "engine", "ray_address")
                  if name in kwargs}
        if values.get("ray_address") and values.get("engine") != "ray":
            raise click.UsageError("--ray-address needs --engine ray")
        common = Common(**values, verbosity=0 if quiet else (2 if verbose else 1), debug=DEBUG["enabled"])
        configure_logging(common)
        _apply_deprecated(kwargs)
        if device and common.device != "auto":  # fail on a bad --device before any work is done
            from rainbench.device import DeviceError, resolve_device

            try:
                resolve_device(common.device)
            except DeviceError as exc:
                raise click.BadParameter(str(exc).split(": ", 1)[-1], param_hint="--device") from None
        if torch_threads:
            from rainbench.cpus import set_torch_threads

            set_torch_threads(1)
        return func(*args, common=common, **kwargs)

    options = [
        click.option("--quiet", "-q", is_flag=True, help="No progress bars; errors and the final summary only."),
        click.option("--verbose", "-v", is_flag=True, help="Log every step (and per-file warnings)."),
        debug_option,
    ]
    if engine:
        options[:0] = [
            click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                         help=ENGINE_HELP),
            click.option("--ray-address", default=None, metavar="ADDR", help=RAY_ADDRESS_HELP),
        ]
    if seed:
        options.insert(0, click.option("--seed", type=int, default=0, show_default=True, metavar="N", help=seed_help))
    if workers:
        options.insert(0, click.option("--workers", type=click.IntRange(min=0), default=None, metavar="N", help=workers_help))
    if device:
        options.insert(0, click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
                                       envvar="RAINBENCH_DEVICE", help=DEVICE_HELP))
    decorated = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


# --- the grammar's helpers (docs/cli.md) -------------------------------------------------------


TILE_HELP = ("Tile size N: process images larger than N pixels in N x N tiles, exact (layer-wise streamed) "
             "for InstanceNorm networks such as nlcl and cut, blended for the others; 0 = never tile. "
             "Default: InstanceNorm networks run the whole image when its activations fit in free "
             "RAM / VRAM, else exact tiles of the method's tile size; other methods tile above their "
             "own tile size (`rainbench methods`).")


def tile_option(extra: str = "") -> Callable[[Callable], Callable]:
    """The ``--tile N`` option of the verbs that derain (``extra`` is appended to its help)."""
    return click.option("--tile", type=click.IntRange(min=0), default=None, metavar="N",
                        help=TILE_HELP + (" " + extra if extra else ""))


def warn_deprecated(old: str, new: str) -> None:
    """Tell the user (on stderr, even under --quiet) that ``old`` is an old spelling of ``new``."""
    logging.getLogger("rainbench.cli").debug("deprecated spelling %s used", old)
    stderr_console().print(f"[yellow]deprecated[/yellow]: {old} is now {new}; the old spelling will be removed "
                           "in the next release", highlight=False, soft_wrap=True)


class DeprecatedOption(click.Option):
    """An old spelling kept for one release: hidden from --help, warns, and feeds its value to the new option.

    ``convert`` maps the old value to the new option's (default: unchanged); for a ``multiple``
    new option the converted values are appended to those given with the new spelling.
    """

    def __init__(self, decls: list[str], *, new: str, new_flag: str, convert: Callable[[Any], Any] | None = None,
                 **kwargs):
        kwargs.setdefault("hidden", True)
        kwargs.setdefault("default", None)
        super().__init__(decls, **kwargs)
        self.new, self.new_flag, self.convert = new, new_flag, convert


def deprecated_option(old: str, *, new: str, new_flag: str, convert: Callable[[Any], Any] | None = None,
                      **kwargs) -> Callable:
    """Keep the old spelling ``old`` of ``new_flag`` (parameter ``new``) working for one release."""
    dest = "deprecated__" + old.lstrip("-").replace("-", "_")
    return click.option(old, dest, cls=DeprecatedOption, new=new, new_flag=new_flag, convert=convert, **kwargs)


def _apply_deprecated(kwargs: dict[str, Any]) -> None:
    """Fold the values of old spellings into the new options' (in place), warning once per old spelling."""
    ctx = click.get_current_context()
    for param in ctx.command.params:
        if not isinstance(param, DeprecatedOption):
            continue
        value = kwargs.pop(param.name, None)
        if value is None or value is False or value == ():
            continue
        old = param.opts[0]
        warn_deprecated(old, param.new_flag)
        value = param.convert(value) if param.convert else value
        current = kwargs.get(param.new)
        if isinstance(current, tuple):
            kwargs[param.new] = current + (tuple(value) if isinstance(value, (tuple, list)) else (value,))
            continue
        source = ctx.get_parameter_source(param.new)
        if source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT):
            raise click.UsageError(f"{old} and {param.new_flag} are the same option: give {param.new_flag} only")
        kwargs[param.new] = value


class LazyChoice(click.Choice):
    """A fixed set of values owned by a library module, imported only when the values are needed."""

    def __init__(self, load: Callable[[], Iterable[str]], case_sensitive: bool = True):
        self._load = load
        self._loaded: tuple[str, ...] | None = None
        super().__init__((), case_sensitive)

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        """The values, loaded on first use."""
        if self._loaded is None:
            self._loaded = tuple(self._load())
        return self._loaded

    @choices.setter
    def choices(self, value) -> None:
        pass  # click's __init__ assigns (); the real values come from ``load``


class PathOrURL(click.ParamType):
    """A local path, or an fsspec URL (``s3://bucket/run``, ``memory://...``) kept as written.

    ``exists``: the path or URL must be there; ``folder``: an output folder (must not be a file).
    """

    name = "path_or_url"

    def __init__(self, *, exists: bool = False, folder: bool = False):
        self.exists, self.folder = exists, folder

    def convert(self, value, param, ctx):
        """URLs stay text (a Path would fold ``//``); paths become Paths."""
        from collection.storage import Location, is_url

        if not isinstance(value, str) or not is_url(value):
            path = Path(value).expanduser()
            if self.exists and not path.exists() and not path.is_symlink():
                self.fail(f"{path}: no such file or folder", param, ctx)
            if self.folder and path.exists() and not path.is_dir():
                self.fail(f"{path}: is a file, not a folder", param, ctx)
            return path
        try:
            import fsspec

            for protocol in value.split("://", 1)[0].split("::"):  # chained: simplecache::s3://...
                fsspec.get_filesystem_class(protocol)
        except (ImportError, ValueError) as exc:
            self.fail(f"{value}: no fsspec filesystem for this URL ({exc})", param, ctx)
        if self.exists:
            try:
                there = Location(value).exists()
            except OSError as exc:
                self.fail(f"{value}: cannot be read ({exc})", param, ctx)
            if not there:
                self.fail(f"{value}: no such file or folder", param, ctx)
        return value


class ListOf(click.ParamType):
    """One value of a list option: ``a,b,c`` (the option is also repeatable); items checked against ``choices``."""

    name = "list"

    def __init__(self, choices: Iterable[str] | Callable[[], Iterable[str]] | None = None):
        self._choices = choices

    def choices(self) -> tuple[str, ...] | None:
        """The allowed items, or None when any item goes."""
        if self._choices is None:
            return None
        return tuple(self._choices() if callable(self._choices) else self._choices)

    def convert(self, value, param, ctx) -> tuple[str, ...]:
        """Split ``a,b`` into its items and check them."""
        if isinstance(value, tuple):
            return value
        items = tuple(v.strip() for v in str(value).split(",") if v.strip())
        allowed = self.choices()
        if allowed is not None:
            bad = [v for v in items if v not in allowed]
            if bad:
                self.fail(f"unknown value(s) {', '.join(bad)} (choose from {', '.join(allowed)})", param, ctx)
        return items


def flat(values: Iterable[Iterable[str]] | Iterable[str]) -> list[str]:
    """The items of a repeatable list option, in order, each once."""
    out: list[str] = []
    for value in values:
        out += [value] if isinstance(value, str) else list(value)
    return list(dict.fromkeys(out))


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


def method_options(pairs: Iterable[str], methods: list[str], option: str = "--config") -> dict[str, dict[str, str]]:
    """``[NAME.]KEY=VALUE`` pairs -> {method: {key: value}}; the NAME. prefix may be left out with one method."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_key_values(pairs, option, several=True).items():
        name, dot, field = key.rpartition(".")
        if not dot:
            if len(methods) != 1:
                raise click.BadParameter(f"{key}={value}: with several methods prefix the option with its method, "
                                         f"e.g. {methods[0] if methods else 'NAME'}.{key}={value}", param_hint=option)
            name = methods[0]
        elif name not in methods:
            raise click.BadParameter(f"{name} is not a --method of this command", param_hint=option)
        if not field:
            raise click.BadParameter(f"expected [NAME.]KEY=VALUE, got {key}={value}", param_hint=option)
        out.setdefault(name, {})[field] = value
    return out


def method_weights(values: Iterable[str], methods: list[str], option: str = "--weights") -> dict[str, Path]:
    """``[NAME=]FILE`` values -> {method: file}; the NAME= prefix may be left out with one method."""
    out: dict[str, Path] = {}
    for text in values:
        name, sep, file = text.partition("=")
        if not (sep and name in methods):  # a plain FILE (which may itself hold '=')
            if len(methods) != 1:
                raise click.BadParameter(f"{text}: expected NAME=FILE with NAME one of this command's --method",
                                         param_hint=option)
            name, file = methods[0], text
        if name in out:
            raise click.BadParameter(f"two weight files for {name}", param_hint=option)
        out[name] = Path(file).expanduser()
    return out

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
