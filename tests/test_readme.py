"""The README stays true: its test command is CI's, its config tables are the code's."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from common import config as configuration
from touchpoint.cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert "./dev test " in README
    commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "./dev test" in commands


@pytest.mark.parametrize(("kind", "marker"), [(configuration.EdgeConfig, "edge"), (configuration.HqConfig, "hq")])
def test_config_reference_matches_the_code(kind: type, marker: str) -> None:
    start = f"<!-- {marker}-config-reference -->\n"
    block = README.split(start, 1)[1].split(f"\n<!-- /{marker}-config-reference -->", 1)[0]
    assert block == configuration.reference_markdown(kind), (
        "README config reference is stale: paste common.config.reference_markdown() output"
    )


def _commands(group: click.Group, prefix: str = "touchpoint") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{prefix} {name}"))
    return found


@pytest.mark.parametrize(("name", "command"), _commands(main), ids=lambda v: getattr(v, "name", v))
def test_every_command_has_help_and_is_in_the_readme(name: str, command: click.Command) -> None:
    assert command.help and len(command.help.strip()) > 20, f"{name} has no help text"
    assert name in README, f"{name} is not documented in README.md"
