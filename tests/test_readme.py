"""The docs document every study-file key (and no key that does not exist) and every
command-line option there is."""

import dataclasses
import re
from pathlib import Path

import pytest

from prunesearch import studyfile
from prunesearch.cli import main
from prunesearch.schedule import SPACE_FIELDS

DOCS = Path(__file__).parents[1] / "docs"
STUDY_FILES = (DOCS / "study-files.md").read_text(encoding="utf-8")
COMMANDS = (DOCS / "commands.md").read_text(encoding="utf-8")

STUDY_KEYS = (list(studyfile.TOP_LEVEL)
              + [f"{section}.{field.name}" for section, cls in studyfile.SECTIONS.items()
                 for field in dataclasses.fields(cls)
                 if field.name != "options"]  # model.options: a custom builder's own keys
              + [f"space.{name}" for name in SPACE_FIELDS])
CLI_OPTIONS = [(command.name, option)
               for command in main.commands.values()
               for parameter in command.params for option in parameter.opts]


@pytest.mark.parametrize("key", STUDY_KEYS)
def test_every_study_file_key_is_documented(key):
    assert f"| `{key}` |" in STUDY_FILES


def test_the_key_table_lists_only_keys_that_exist():
    table = re.findall(r"^\| `([a-z_.]+)` \|", STUDY_FILES, flags=re.MULTILINE)
    shipped_studies = {path.stem for path in studyfile.available()}
    assert set(table) - shipped_studies == set(STUDY_KEYS)


@pytest.mark.parametrize("command, option", CLI_OPTIONS)
def test_every_cli_option_is_documented(command, option):
    assert f"`prunesearch {command}" in COMMANDS and f"`{option}" in COMMANDS
