"""`rainbench methods`: list the registered deraining methods with their kind, paper, license and weights."""

from __future__ import annotations

import click

from rainbench.cli.common import common_options, stderr_console, stdout_console


@click.command("methods")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON (one object per method) instead of a table.")
@common_options
def command(as_json: bool, common) -> None:
    """List the registered deraining methods (built-in and plugins) with their kind, paper, license and weights."""
    import json

    import baselines
    from baselines.registry import load_errors

    infos = [baselines.info(name) for name in baselines.available()]
    errors = load_errors()
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
    else:
        from rich.table import Table

        table = Table(title="rainbench methods", show_lines=False)
        for column in ("name", "kind", "paper", "license", "learns from", "weights"):
            table.add_column(column, overflow="fold")
        for i in infos:
            license_text = i.code_license + (f" (weights: {i.weights_license})" if i.weights_license else "")
            weights = "required" if i.needs_weights else ("trained with fit" if i.learns_from != "none" else "none")
            paper = f"{i.paper}" + (f" [{i.year}]" if i.year and str(i.year) not in i.paper else "")
            table.add_row(i.name, i.kind, paper, license_text, i.learns_from, weights)
        stdout_console().print(table)
    for where, why in errors.items():
        stderr_console().print(f"[yellow]warning[/yellow]: {where} could not be loaded: {why}")
