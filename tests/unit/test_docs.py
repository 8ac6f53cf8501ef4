"""The README tells the truth about what the code does."""

from __future__ import annotations

import re

from data.features import CATALOGUE
from data.mapping import ROLES
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no '{title}' section"
    return match.group(1)


def test_quickstart_is_exactly_make_run_and_make_test():
    block = re.search(r"```bash\n(.*?)```", _section("Quickstart"), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_feature_table_matches_the_catalogue():
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| (.*?) \| (.*?) \|$", _section("Features"), re.M)
    documented = {name: (description, unit) for name, description, unit, _ in rows}
    assert documented == {f.name: (f.description, f.unit) for f in CATALOGUE}


def test_role_table_matches_the_roles():
    rows = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \| ", _section("Importing real files"), re.M)
    documented = {name for pair in rows for name in pair if name}
    assert documented == {r.name for r in ROLES} | {"categorical", "numeric"}


def test_every_cli_command_is_documented():
    from cli.main import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    documented = set(re.findall(r"^centinela (\w+)", _section("Command line"), re.M))
    assert documented == commands


def test_every_image_the_readme_shows_exists_and_every_page_has_one():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images and all((ROOT / path).is_file() for path in images), [p for p in images if not (ROOT / p).is_file()]
    for shot in ("data.png", "detect.png", "queue.png", "case.png", "geo.png", "time.png", "drivers.png"):
        assert f"docs/screenshots/{shot}" in images
