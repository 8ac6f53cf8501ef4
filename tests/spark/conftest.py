"""One Spark session (local mode, two cores) for every Spark test: starting the JVM takes seconds."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from scaleout.features import session

    spark = session("local[2]")
    yield spark
    spark.stop()
