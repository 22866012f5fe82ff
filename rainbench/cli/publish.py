"""`rainbench publish`: push a curated dataset to the Hugging Face Hub with a complete dataset card."""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import (
    common_options,
    deprecated_option,
    progress,
    stage_reporter,
    stdout_console,
)

_STAGES = {"rows": "writing Parquet shards", "files": "uploading files"}


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from collection.publish import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _repo_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from collection.publish import PublishError, check_repo_id

    try:
        return check_repo_id(value)
    except PublishError as exc:
        raise click.BadParameter(str(exc)) from None


def _license(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from collection.publish import PublishError, check_license_id

    try:
        return check_license_id(value)
    except PublishError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("publish")
@click.argument("dataset", required=False, type=click.Path(path_type=Path), metavar="DATASET")
@click.option("--repo-id", required=True, callback=_repo_id, metavar="ORG/NAME", help="Hub dataset repository to create or update.")
@click.option("--private", is_flag=True, help="Create the repository private (an existing repo keeps its visibility).")
@click.option("--revision", default=None, metavar="BRANCH", help="Branch to upload to (created if missing; default main).")
@click.option("--token", default=None, metavar="TOKEN",
              help="Hub token (default: HF_TOKEN or the cached `hf auth login`).")
@click.option("--dry-run", "dry_run", is_flag=False, flag_value="", default=None, metavar="",
              help="Write the exact repository tree (into --tree) and upload nothing.")
@click.option("--tree", "tree", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Where the repository tree is written before upload (default: DATASET/.cache/publish/ORG--NAME).")
@deprecated_option("--work-dir", new="tree", new_flag="--tree", type=click.Path(file_okay=False, path_type=Path))
@click.option("--shard-size", default="500MB", show_default=True, callback=_size, metavar="SIZE",
              help="Target size of one Parquet shard (e.g. 500MB, 2GiB).")
@click.option("--license", "license_", default="cc-by-4.0", show_default=True, metavar="ID", callback=_license,
              help="Licence of your own images (Hub licence id); public sets keep their own terms.")
@click.option("--keep-gps", is_flag=True, help="Publish GPS and other personal EXIF data (removed by default).")
@click.option("--pretty-name", default=None, metavar="NAME", help="Human-readable dataset name for the card (default: from the repo name).")
@click.option("--files-per-commit", type=click.IntRange(min=1), default=20, show_default=True, metavar="N",
              help="Data files per Hub commit (smaller commits lose less on an interruption).")
@common_options
def command(dataset: Path | None, repo_id: str, private: bool, revision: str | None, token: str | None,
            dry_run: str | None, tree: Path | None, shard_size: int, license_: str, keep_gps: bool,
            pretty_name: str | None, files_per_commit: int, common) -> None:
    """Push the curated DATASET (written by `rainbench ingest --out`) to the Hub with a dataset card."""
    from collection.publish import PublishError, upload
    from collection.publish import dry_run as build_tree

    dataset, tree, dry = _dry_run_spelling(dataset, dry_run, tree)
    tree_dir = tree or dataset / ".cache" / "publish" / repo_id.replace("/", "--")
    with progress(common) as bar:
        report = stage_reporter(bar, _STAGES)
        try:
            built = build_tree(dataset, tree_dir, repo_id=repo_id, shard_size=shard_size, license=license_,
                           keep_gps=keep_gps, pretty_name=pretty_name, progress=report)
            result = None if dry else upload(
                tree_dir, repo_id, token=token, private=private, revision=revision,
                files_per_commit=files_per_commit, progress=report)
        except PublishError as exc:
            raise click.ClickException(str(exc)) from None
    _show(built, result)


def _dry_run_spelling(dataset: Path | None, value: str | None, tree: Path | None) -> tuple[Path, Path | None, bool]:
    """(DATASET, --tree, dry run?) from the parsed words, keeping the old ``--dry-run DIR`` working.

    ``--dry-run`` is a flag, but click lets a flag-like option take the next word: ``--dry-run
    DATASET`` (the flag, then the argument) and the old ``DATASET --dry-run DIR`` both parse as a
    value, told apart by whether DATASET is still missing.
    """
    from rainbench.cli.common import warn_deprecated

    dry = value is not None
    if value:
        if dataset is None:
            dataset = Path(value)
        else:
            warn_deprecated("--dry-run DIR", "--dry-run --tree DIR")
            if tree is not None:
                raise click.UsageError("--dry-run DIR and --tree DIR both name the tree: give --dry-run --tree DIR")
            tree = Path(value)
    if dataset is None:
        raise click.UsageError("Missing argument 'DATASET'.")
    if not dataset.is_dir():
        raise click.BadParameter(f"{dataset}: not a folder (give the --out of `rainbench ingest`)", param_hint="DATASET")
    return dataset, tree, dry


def _show(tree, result) -> None:
    """Print the tree's splits and what the upload did."""
    from rich.table import Table

    console = stdout_console()
    table = Table(title=f"rainbench publish: tree in {tree.out}")
    for name, justify in (("split", "left"), ("rows", "right"), ("shards", "right"), ("MB", "right")):
        table.add_column(name, justify=justify)
    for split, rows in tree.rows.items():
        shards = [s for s in tree.shards if s.split == split]
        table.add_row(split, str(rows), str(len(shards)), f"{sum(s.size for s in shards) / 1e6:.1f}")
    console.print(table)
    removed = ", ".join(tree.dropped_columns) or "none"
    console.print(f"personal columns removed: {removed}; images with EXIF scrubbed: {tree.scrubbed_images}; "
                  f"card: {tree.card}")
    if result is None:
        console.print("dry run: nothing uploaded")
        return
    console.print(f"uploaded {len(result.uploaded)} file(s), skipped {len(result.skipped)} already there, "
                  f"deleted {len(result.deleted)} stale in {result.commits} commit(s) -> "
                  f"{result.url} @ {result.revision}")
