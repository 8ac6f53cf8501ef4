"""A backup taken in the server (Users & audit → Back up now, in Chromium) while another system
keeps scoring transactions through the same server's API: the copy reopens, and holds every
transaction whose decision the API had answered before the click, and whole requests only."""

from __future__ import annotations

import json
import threading
import urllib.request

import duckdb
import pytest

from cli.replay import items, read_transactions
from data.db import connect
from tests.browser import admin_env, chromium_page, live_server, sign_in
from tests.live import bearer, prepare

pytestmark = pytest.mark.browser


def _score_one_by_one(url: str, key: str, rows: list[dict], stop: threading.Event, acked: list[str]) -> None:
    for row in rows:
        if stop.is_set():
            return
        request = urllib.request.Request(f"{url}/api/v1/datasets/bank/transactions", method="POST",
                                         data=json.dumps({"transactions": [row]}).encode(),
                                         headers={"Content-Type": "application/json", **bearer(key)})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
        acked.append(row["transaction_id"])


def test_the_page_backs_up_while_the_api_writes(tmp_path):
    db = tmp_path / "centinela.duckdb"
    conn = connect(db)
    setup = prepare(conn, tmp_path, rows=3_000, days=20, live_days=4)
    conn.close()
    rows = items(read_transactions(str(setup.live_file)))
    stop, acked = threading.Event(), []
    with live_server(db, env=admin_env()) as (url, _), chromium_page() as page:
        page.goto(f"{url}/admin")
        sign_in(page)
        page.goto(f"{url}/admin")
        page.get_by_role("tab", name="Backups").click()
        writer = threading.Thread(target=_score_one_by_one, args=(url, setup.keys["all"], rows, stop, acked))
        writer.start()
        try:
            while len(acked) < 10:
                page.wait_for_timeout(100)
            before = list(acked)
            page.get_by_role("button", name="Back up now").click()
            page.get_by_text("the copy was reopened and its row counts match").wait_for(timeout=120_000)
            after = list(acked)
            page.wait_for_timeout(500)
        finally:
            stop.set()
            writer.join()
    assert len(acked) > len(before)  # the API kept writing around the backup
    (folder,) = (tmp_path / "backups").iterdir()
    copy = duckdb.connect(str(folder / "centinela.duckdb"), read_only=True)
    stored = [r[0] for r in copy.execute("SELECT transaction_id FROM decisions").fetchall()]
    audited = copy.execute("SELECT count(*) FROM audit WHERE action = 'score'").fetchall()[0][0]
    copy.close()
    assert set(before) <= set(stored) <= set(after + acked)  # every answered request, nothing invented
    assert set(stored) == set(acked[:len(stored)])  # a prefix of the stream: whole requests only
    assert audited == len(stored)  # one score audit row per one-transaction request, with it
