"""The README documents every study-file key and every command-line option there is."""

import dataclasses
from pathlib import Path

import pytest

from prunesearch import studyfile
from prunesearch.cli import main
from prunesearch.schedule import SCHEDULE_FIELDS

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")

STUDY_KEYS = (list(studyfile.TOP_LEVEL)
              + [f"{section}.{field.name}" for section, cls in studyfile.SECTIONS.items()
                 for field in dataclasses.fields(cls)]
              + [f"space.{name}" for name in SCHEDULE_FIELDS])
CLI_OPTIONS = [(command.name, option)
               for command in main.commands.values()
               for parameter in command.params for option in parameter.opts]


@pytest.mark.parametrize("key", STUDY_KEYS)
def test_every_study_file_key_is_documented(key):
    assert f"| `{key}` |" in README


@pytest.mark.parametrize("command, option", CLI_OPTIONS)
def test_every_cli_option_is_documented(command, option):
    assert f"`prunesearch {command}" in README and f"`{option}" in README
