"""Messages from a Kafka topic scored through the API's path (application.streams), and the
consumer's settings: on a real DuckDB file, no broker needed."""

from __future__ import annotations

import json

import pytest

from api.schemas import transaction_item
from application import streams
from application.context import Context
from cli.replay import items, read_transactions
from data.errors import Conflict, InvalidInput, NotFound
from tests.conftest import digest
from tests.live import DATASET, prepare


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streams")
    from data.db import connect

    conn = connect(folder / "centinela.duckdb")
    setup = prepare(conn, folder, rows=3_000, days=20, live_days=4)
    yield conn, items(read_transactions(str(setup.live_file)))
    conn.close()


def _encoded(*values) -> list[bytes | None]:
    return [v if isinstance(v, bytes) or v is None else json.dumps(v).encode() for v in values]


def test_a_batch_of_messages_is_scored_and_the_bad_ones_are_dead_letters(live):
    conn, rows = live
    ctx = Context(conn, "kafka:tx")
    a, b, c = rows[0], rows[1], rows[2]
    values = _encoded(a, b"{oops", b, dict(c, amount="much"), a, None, [1], dict(b, amount=b["amount"] + 1), c)
    scored = streams.score_messages(ctx, DATASET, values, source="kafka:tx", check=transaction_item)
    assert sorted(scored.decisions) == [0, 2, 4, 8]
    assert scored.stored == 3  # the second `a` is a retry of the first
    assert scored.decisions[0]["score"] == scored.decisions[4]["score"]
    assert {d.index: d.field for d in scored.dead} == {1: "value", 3: "amount", 5: "value", 6: "value", 7: "amount"}
    assert "another amount" in next(d.reason for d in scored.dead if d.index == 7)
    assert all(scored.decisions[i]["api_key"] == "kafka:tx" for i in (0, 2, 8))
    again = streams.score_messages(ctx, DATASET, _encoded(a, b, c), source="kafka:tx", check=transaction_item)
    assert again.stored == 0 and [again.decisions[i]["score"] for i in range(3)] == [
        scored.decisions[i]["score"] for i in (0, 2, 8)]


def test_messages_that_break_the_parser_are_dead_letters_not_poison(live):
    conn, rows = live
    ctx = Context(conn, "kafka:tx")
    a = rows[40]
    huge = ('{"transaction_id": "huge", "timestamp": "2026-01-01T00:00:00", "amount": ' + "1" * 5000 + "}").encode()
    padded = dict(a, transaction_id=a["transaction_id"] + "  ")  # the checks strip it: a retry of `a`
    scored = streams.score_messages(ctx, DATASET, [huge, *_encoded(a, padded)], source="kafka:tx",
                                    check=transaction_item)
    assert [d.index for d in scored.dead] == [0] and "could not be read" in scored.dead[0].reason
    assert sorted(scored.decisions) == [1, 2] and scored.stored == 1


def test_the_schema_is_the_apis(live):
    conn, rows = live
    before = digest(conn)
    # The API refuses a number as an id (TransactionIn: a string); so does the consumer.
    scored = streams.score_messages(Context(conn, "kafka:tx"), DATASET, _encoded(dict(rows[10], transaction_id=77)),
                                    source="kafka:tx", check=transaction_item)
    assert not scored.decisions and scored.dead[0].field == "transaction_id"
    assert digest(conn) == before


def test_only_bad_messages_change_nothing(live):
    conn, rows = live
    before = digest(conn)
    values = _encoded(b"\xff\xfe", b"[" * 3000 + b"]" * 3000, dict(rows[20], timestamp="soon"),
                      dict(rows[21], favourite="red"), b"x" * (streams.MAX_MESSAGE + 1))
    scored = streams.score_messages(Context(conn, "kafka:tx"), DATASET, values, source="kafka:tx",
                                    check=transaction_item)
    assert [d.index for d in scored.dead] == [0, 1, 2, 3, 4] and not scored.decisions
    assert "UTF-8" in scored.dead[0].reason and scored.dead[3].field == "favourite"
    assert digest(conn) == before


def test_a_problem_that_is_not_a_messages_is_raised_and_stores_nothing(live):
    conn, rows = live
    before = digest(conn)
    with pytest.raises(NotFound):
        streams.score_messages(Context(conn, "kafka:tx"), "no-such-dataset", _encoded(rows[30]), source="kafka:tx")
    assert digest(conn) == before


def test_consumer_settings_are_checked_audited_and_stopped(live):
    conn, _ = live
    ctx = Context(conn, "cli:ops")
    before = digest(conn)
    for kwargs, field in (({"bootstrap": "no port"}, "bootstrap"), ({"bootstrap": "h:70000"}, "bootstrap"),
                          ({"topic": "bad topic!"}, "topic"), ({"group": "x" * 300}, "group"),
                          ({"decisions_topic": "card-tx"}, "decisions_topic"),
                          ({"decisions_topic": "out", "dead_letter_topic": "out"}, "dead_letter_topic")):
        args = {"bootstrap": "127.0.0.1:9092", "topic": "card-tx", **kwargs}
        with pytest.raises(InvalidInput) as refused:
            streams.configure_consumer(ctx, DATASET, **args)
        assert refused.value.field == field
    with pytest.raises(Conflict):
        streams.stop_consumer(ctx, DATASET)
    assert digest(conn) == before
    saved = streams.configure_consumer(ctx, DATASET, "127.0.0.1:9092, 127.0.0.1:9093", "card-tx")
    assert saved.bootstrap == "127.0.0.1:9092,127.0.0.1:9093" and saved.group_id == f"centinela-{DATASET}"
    assert saved.dead_letter_topic == "card-tx.dead-letter" and saved.decisions_topic is None
    assert [s.enabled for s in streams.list_consumers(ctx)] == [True]
    streams.stop_consumer(ctx, DATASET)
    assert [s.enabled for s in streams.list_consumers(ctx)] == [False]
    actions = [r[0] for r in conn.execute("SELECT action FROM audit WHERE action LIKE 'kafka%' ORDER BY id").fetchall()]
    assert actions == ["kafka_consumer_set", "kafka_consumer_stop"]
