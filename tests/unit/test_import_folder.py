"""Server files come only from the import folder: the Data page lists its files, and a name that
leads outside it (a symlink, `..`, an absolute path) is refused before anything is read, with the
database unchanged."""

from __future__ import annotations

import os

import pytest

from application import datasets as app_datasets
from data.datasets import get_dataset
from data.errors import InvalidInput, NotFound
from data.import_folder import import_dir, list_files, resolve
from tests.apptest import app, one
from tests.conftest import as_user, digest
from tests.samples import GOOD

OUTSIDE = "timestamp,amount,customer_id\n2024-02-01 10:00,99,SECRET\n"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An import folder with two good files, links out of it, a link within it, and files the
    import does not read; and a secret file beside it."""
    inside = tmp_path / "imports"
    (inside / "sub").mkdir(parents=True)
    (inside / "good.csv").write_text(GOOD)
    (inside / "sub" / "inner.csv").write_text(GOOD)
    (inside / ".hidden.csv").write_text(GOOD)
    (inside / "notes.md").write_text("not data")
    secret_dir = tmp_path / "elsewhere"
    secret_dir.mkdir()
    (secret_dir / "secret.csv").write_text(OUTSIDE)
    os.symlink(secret_dir / "secret.csv", inside / "link-out.csv")
    os.symlink(secret_dir, inside / "linked-dir")
    os.symlink(inside / "good.csv", inside / "alias.csv")  # stays inside: allowed
    monkeypatch.setenv("CENTINELA_IMPORT_DIR", str(inside))
    return inside


def test_the_default_folder_is_beside_the_database(db_path, monkeypatch):
    monkeypatch.delenv("CENTINELA_IMPORT_DIR", raising=False)
    assert import_dir() == (db_path.parent / "imports").resolve()


def test_only_the_folders_own_importable_files_are_listed(folder):
    assert [f.name for f in list_files()] == ["alias.csv", "good.csv", "sub/inner.csv"]


@pytest.mark.parametrize("name", ["link-out.csv", "linked-dir/secret.csv", "../elsewhere/secret.csv",
                                  "sub/../../elsewhere/secret.csv", "{outside}", ".."])
def test_names_that_lead_out_are_refused_and_change_nothing(conn, small_dataset, folder, name):
    name = name.format(outside=folder.parent / "elsewhere" / "secret.csv")
    before = digest(conn)
    with pytest.raises(InvalidInput, match="outside the import folder"):
        resolve(name)
    with pytest.raises(InvalidInput, match="outside the import folder"):
        app_datasets.import_server_file(as_user(conn), name, "stolen")
    assert digest(conn) == before


def test_a_file_inside_imports_and_others_are_explained(conn, folder):
    assert resolve("alias.csv") == (folder / "good.csv").resolve()
    with pytest.raises(NotFound):
        resolve("missing.csv")
    with pytest.raises(InvalidInput, match="not a file the import reads"):
        resolve("notes.md")
    app_datasets.import_server_file(as_user(conn), "sub/inner.csv", "from-folder", features=False)
    assert get_dataset(conn, "from-folder").row_count == 2


@pytest.mark.usefixtures("server_like_navigation")
def test_the_data_page_offers_the_folders_files_instead_of_a_free_path(conn, small_dataset, folder):
    at = app().run()
    one(at.radio, "Source").set_value("A path on this server")
    at.run()
    assert not [t for t in at.text_input if "Path" in t.label]  # no free-text path any more
    picker = at.selectbox(key="import-server-file")
    assert [o.split(" (")[0] for o in picker.options] == ["alias.csv", "good.csv", "sub/inner.csv"]  # with size, time
    picker.set_value("good.csv")
    at.run()
    assert not at.exception and [b for b in at.button if b.label == "Import"]
