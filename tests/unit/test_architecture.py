"""The layers stay layers: storage and models never reach up into the front ends, pages hold no
SQL and open no transaction, only the application layer writes audit rows or opens units of work,
and every page is declared once in the registry."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from dashboard.navigation import PAGES
from tests.conftest import ROOT

FRONT_ENDS = ("cli", "pages", "dashboard", "application", "app", "streamlit")


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _calls(path: Path) -> set[str]:
    """Names of every function or method called in a file (`conn.execute(...)` gives "execute")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def test_storage_and_models_never_import_a_front_end():
    for folder in ("data", "detectors"):
        for path in _modules(folder):
            upward = {m for m in _imports(path) if m.split(".")[0] in FRONT_ENDS}
            assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"


def test_the_application_layer_never_imports_a_front_end():
    for path in _modules("application"):
        upward = {m for m in _imports(path) if m.split(".")[0] in ("cli", "pages", "dashboard", "streamlit")}
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"


def test_the_console_script_is_the_cli_package():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"centinela": "cli.main:main"}


def test_pages_hold_no_sql_and_open_no_transaction():
    for path in _modules("pages"):
        text = path.read_text()
        for needle in ("execute(", "sql(", "transaction(", "BEGIN", "COMMIT"):
            assert needle not in text, f"{path.relative_to(ROOT)} contains {needle!r}"
        assert not re.search(r"\bSELECT\b|\bINSERT\b|\bUPDATE\b|\bDELETE FROM\b", text), path.name


def test_only_the_application_layer_writes_audit_rows_and_opens_units_of_work():
    for folder in ("data", "detectors", "dashboard", "pages", "cli", "api"):
        for path in _modules(folder):
            calls = _calls(path)
            if path.name != "audit.py":
                assert "record" not in calls, f"{path.relative_to(ROOT)} writes audit rows itself"
            if path.name != "db.py":  # migrations run in their own transactions
                assert "transaction" not in calls and "unit_of_work" not in calls, \
                    f"{path.relative_to(ROOT)} opens a transaction itself"
    assert any("record" in _calls(p) for p in _modules("application"))


def test_every_page_is_registered_once_and_links_use_the_registry():
    scripts = {f"pages/{p.name}" for p in _modules("pages")}
    assert sorted(p.script for p in PAGES) == sorted(scripts)
    assert len({p.key for p in PAGES}) == len(PAGES) and len({p.title for p in PAGES}) == len(PAGES)
    for path in [*_modules("pages"), *_modules("dashboard"), ROOT / "app.py"]:
        if path.name == "navigation.py":
            continue
        text = path.read_text()
        literal = re.findall(r"""["']pages/\w+\.py["']""", text)
        assert not literal, f"{path.relative_to(ROOT)} names a page by its script: {literal}"


def test_user_errors_are_not_value_errors_anywhere():
    from data.errors import Conflict, Forbidden, InvalidInput, NotFound, UserError

    for kind in (UserError, InvalidInput, NotFound, Conflict, Forbidden):
        assert not issubclass(kind, ValueError)
    assert (InvalidInput.status, NotFound.status, Conflict.status, Forbidden.status) == (422, 404, 409, 403)
    kinds = {"UserError", "InvalidInput", "NotFound", "Conflict", "Forbidden"}
    for folder in ("application", "pages", "dashboard", "cli", "data", "detectors"):
        for path in _modules(folder):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Tuple):
                    caught = {getattr(e, "id", "") for e in node.type.elts}
                    assert not (caught & kinds and "ValueError" in caught), \
                        f"{path.relative_to(ROOT)}:{node.lineno} shows a ValueError as if the user caused it"
