"""The ``rainbench`` command: one group, one module per verb."""

from __future__ import annotations

import importlib
import sys

import click

from rainbench import __version__
from rainbench.cli.common import DEBUG, debug_option, stderr_console, warn_deprecated

# Verb -> module under rainbench.cli; each module defines ``command``. Order is the help order:
# the journey from photographs to a leaderboard.
VERBS = {
    "demo": "demo",
    "synth": "synth",
    "ingest": "ingest",
    "publish": "publish",
    "methods": "methods",
    "train": "train",
    "derain": "derain",
    "run": "run",
    "leaderboard": "leaderboard",
    "metric-weights": "weights",
    "analyze-id": "analyze",
}

# Old verb spellings that still work for one release (hidden from the help, warn when used).
ALIASES = {"weights": "metric-weights"}


class VerbGroup(click.Group):
    """A group that imports each verb's module only when that verb (or the help) needs it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [verb for verb in VERBS if self._load(verb) is not None]
        return lazy + sorted(set(self.commands) - set(lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in ALIASES:
            warn_deprecated(f"rainbench {name}", f"rainbench {ALIASES[name]}")
            name = ALIASES[name]
        return self._load(name) or self.commands.get(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        module_name = VERBS.get(name)
        if module_name is None:
            return None
        try:
            module = importlib.import_module(f"rainbench.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"rainbench.cli.{module_name}":
                return None  # a verb whose module has not landed yet
            raise
        return module.command


@click.group(cls=VerbGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="rainbench")
@debug_option
def cli() -> None:
    """rainbench: real-rain image restoration research, from photographs to leaderboards.

    \b
    Typical journey:
      rainbench synth CLEAN_DIR --out synth/          make paired rainy/clean data
      rainbench ingest PHOTOS/ synth/ --out data/     curate, dedup, split into a HF dataset
      rainbench train -m nlcl --rainy R/ --clean C/ -o runs/nlcl    train a learnable method
      rainbench run -m gmm,nlcl --dataset data/ -o runs/b  score methods with pyiqa metrics
      rainbench leaderboard runs/*                    tables, plots, HTML report
      rainbench publish data/ --repo-id ORG/NAME      push the dataset to the Hub

    Every command takes --quiet/--verbose and --debug; --device, --workers and --seed only where
    they have an effect. The grammar (one spelling per idea) is in docs/cli.md.
    Run `rainbench COMMAND --help` for its options.
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; errors become one line on stderr and a non-zero exit code."""
    try:
        result = cli.main(args=argv, prog_name="rainbench", standalone_mode=False)
    except click.exceptions.Abort:
        stderr_console().print("[red]aborted[/red]")
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        stderr_console().print("[red]interrupted[/red]: finished work is kept; re-run to resume")
        return 130
    except Exception as exc:
        if DEBUG["enabled"]:
            raise
        message = str(exc) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        print("(run again with --debug for the full traceback)", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
