"""The docs document every study-file key (and no key that does not exist) and every
command-line option where its command is described; the README stays a guide."""

import dataclasses
import re
from pathlib import Path

import click
import pytest

from prunesearch.config import studyfile
from prunesearch.cli import main
from prunesearch.pruning.schedule import SPACE_FIELDS

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
STUDY_FILES = (DOCS / "study-files.md").read_text(encoding="utf-8")
COMMANDS = (DOCS / "commands.md").read_text(encoding="utf-8")

STUDY_KEYS = (list(studyfile.TOP_LEVEL)
              + [f"{section}.{field.name}" for section, cls in studyfile.SECTIONS.items()
                 for field in dataclasses.fields(cls)
                 if field.name != "options"]  # model.options: a custom builder's own keys
              + [f"space.{name}" for name in SPACE_FIELDS])
CLI_OPTIONS = [(command.name, option)
               for command in main.commands.values()
               for parameter in command.params if isinstance(parameter, click.Option)
               for option in parameter.opts]


@pytest.mark.parametrize("key", STUDY_KEYS)
def test_every_study_file_key_is_documented(key):
    assert f"| `{key}` |" in STUDY_FILES


def test_the_key_table_lists_only_keys_that_exist():
    table = re.findall(r"^\| `([a-z_.]+)` \|", STUDY_FILES, flags=re.MULTILINE)
    shipped_studies = {path.stem for path in studyfile.available()}
    assert set(table) - shipped_studies == set(STUDY_KEYS)


def command_sections() -> dict[str, str]:
    """docs/commands.md cut where each command's description starts (a paragraph opening with
    `prunesearch NAME); a command's text runs to the next one's or to the next heading."""
    parts = re.split(r"^(?=`prunesearch [a-z]+|#)", COMMANDS, flags=re.MULTILINE)
    sections = {}
    for part in parts:
        found = re.match(r"`prunesearch ([a-z]+)", part)
        if found:
            sections[found.group(1)] = sections.get(found.group(1), "") + part
    return sections


@pytest.mark.parametrize("command, option", CLI_OPTIONS)
def test_every_cli_option_is_documented_with_its_command(command, option):
    sections = command_sections()
    assert command in sections, f"docs/commands.md does not describe `prunesearch {command}`"
    assert re.search(rf"(?<![\w-]){re.escape(option)}\b", sections[command]), (
        f"docs/commands.md does not say what `prunesearch {command} {option}` does")


def test_readme_is_a_guide_of_at_most_200_lines():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200
