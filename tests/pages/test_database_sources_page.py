"""The Data page's *Database sources*, through AppTest, against a real PostgreSQL (tests/postgres.py):
the sources with their last sync and row counts, the values its checks stored as empty (by source key), the URL
without its password, and *Sync now*."""

from __future__ import annotations

import pytest

from application import database_sources as sources
from application import users as app_users
from data.datasets import get_dataset
from tests.apptest import app, one, texts
from tests.conftest import as_user
from tests.postgres import READER_PASSWORD, cluster

pytestmark = pytest.mark.usefixtures("server_like_navigation")


def _rows(first: int, last: int) -> str:
    return ("INSERT INTO pos_tx SELECT 'P' || g, timestamp '2026-11-01 08:00' + g * interval '1 minute', g % 90 + 0.5, "
            f"'C' || (g % 17), g, CASE WHEN g = 7 THEN 'north' ELSE '-12.05' END FROM generate_series({first}, {last}) g")


def test_sources_are_listed_with_their_last_sync_and_admins_sync_them(conn, monkeypatch):
    monkeypatch.setenv("CENTINELA_PG_TEST_PASSWORD", READER_PASSWORD)
    with cluster() as pg:
        pg.execute("CREATE TABLE pos_tx (id text PRIMARY KEY, fecha timestamp, monto numeric(10,2), cliente text, "
                   "version bigint NOT NULL, lat text)", _rows(1, 300))
        ctx = as_user(conn, "cli:ops")
        url = f"postgresql://reader:${{CENTINELA_PG_TEST_PASSWORD}}@127.0.0.1:{pg.port}/core"
        sources.add_source(ctx, "pos", url, table="pos_tx", watermark="version", dataset="pos-sales",
                           maps=["transaction_id=id", "timestamp=fecha", "amount=monto", "customer_id=cliente", "lat=lat"])
        sources.sync(ctx, "pos")
        at = app().run()
        assert not at.exception, at.exception
        listed = next(d.value for d in at.dataframe if "watermark" in d.value.columns)
        row = listed.iloc[0]
        assert (row["source"], row["dataset"], row["watermark"], row["last watermark"]) == ("pos", "pos-sales",
                                                                                            "version", "300")
        assert (row["rows new"], row["dataset rows"], row["last sync: read / new / updated / unchanged"]) == \
            (300, 300, "300 / 300 / 0 / 0")
        assert "${CENTINELA_PG_TEST_PASSWORD}" in row["url"] and READER_PASSWORD not in texts(at)
        # What the import's checks stored as empty is said, by source key.
        assert row["last sync: values set to empty"] == 1
        assert "Last sync of 'pos': column 'lat' (lat), 1 value (first id 'P7'): 'north' is not a latitude" in texts(at)

        pg.execute(_rows(301, 350))
        one(at.button, "Sync now").click()
        at.run()
        assert not at.exception, at.exception
        assert "Synced 'pos': 51 rows read, 50 new, 0 updated, 1 unchanged; watermark 350." in texts(at)
        assert get_dataset(conn, "pos-sales").row_count == 350

        app_users.add(as_user(conn, "cli:setup"), "rosa", "a long password for rosa", "data_scientist")
        pg.execute(_rows(351, 360))
        at = app("rosa", "data_scientist").run()
        at.switch_page("pages/data.py").run()
        one(at.button, "Sync now").click()
        at.run()
        assert "cannot sync database sources" in texts(at)
        assert get_dataset(conn, "pos-sales").row_count == 350
