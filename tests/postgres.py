"""A real PostgreSQL for the tests: Debian's `postgresql` package, a throwaway cluster (`initdb`
into a temporary folder) served on a free loopback port with its unix socket in that folder,
started and stopped by the test.

Two roles: `owner` (the cluster's superuser, trusted from loopback: the tests create and change
the source tables as it) and `reader` (a password, checked with SCRAM: what Centinela connects as,
so the password path is the one a bank uses). PostgreSQL refuses to run as root; when the tests
run as root, the server runs as the `postgres` system user (the Debian package creates it)
through `setpriv`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.browser import free_port

READER_PASSWORD = "s3cret-reader-pw"  # only ever in this test cluster


def bindir() -> Path:
    """Where Debian's server binaries are: `pg_config --bindir` (libpq-dev's pg_config names the
    server's folder), else the newest /usr/lib/postgresql/*/bin."""
    candidates = []
    try:
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
        candidates.append(Path(found))
    except (OSError, subprocess.SubprocessError):
        pass
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                           key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                                           reverse=True)]
    for folder in candidates:
        if (folder / "postgres").exists() and (folder / "initdb").exists():
            return folder
    raise RuntimeError("PostgreSQL's server is not installed (make postgres installs Debian's postgresql)")


def available() -> bool:
    try:
        bindir()
        return True
    except RuntimeError:
        return False


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix that runs the server as a non-root user, and that user's ids."""
    if os.geteuid() != 0:
        return [], None, None
    user = pwd.getpwnam("postgres")
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"], user.pw_uid, user.pw_gid


@dataclass
class Cluster:
    port: int
    folder: Path
    database: str = "core"

    def url(self, user: str = "reader", password: str | None = READER_PASSWORD) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{self.database}"

    def execute(self, *statements: str, params: Any = None) -> list[tuple]:
        """Run statements as the owner in one transaction (committed); the last one's rows."""
        import adbc_driver_postgresql.dbapi as pg

        rows: list[tuple] = []
        with pg.connect(self.url("owner", None)) as connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement, params)
                rows = cursor.fetchall() if cursor.description else []
            connection.commit()
        return rows


@contextmanager
def cluster(timeout: float = 30) -> Iterator[Cluster]:
    """A fresh cluster on 127.0.0.1 with database `core`, roles `owner` and `reader`; removed after."""
    bin_ = bindir()
    prefix, uid, gid = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="centinela-pg-"))  # not under pytest's root-only tmp folder
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if uid is not None:
        for path in (folder, sockets):
            os.chown(path, uid, gid)
    log = folder / "server.log"
    process = None
    try:
        subprocess.run([*prefix, str(bin_ / "initdb"), "-D", str(data), "-U", "owner", "--auth=trust", "-E", "UTF8",
                        "--locale=C", "--no-sync"], check=True, capture_output=True, timeout=120)
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all owner 127.0.0.1/32 trust\n"
            "host all reader 127.0.0.1/32 scram-sha-256\n")
        port = free_port()
        process = subprocess.Popen(
            [*prefix, str(bin_ / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=20", "-c", "shared_buffers=64MB"],
            stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run([str(bin_ / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "owner"],
                                   capture_output=True, timeout=10)
            if ready.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        found = Cluster(port, folder)
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(f"postgresql://owner@127.0.0.1:{port}/postgres", autocommit=True) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE core")
        found.execute(f"CREATE ROLE reader LOGIN PASSWORD '{READER_PASSWORD}'",
                      "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
                      "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO reader")
        yield found
    finally:
        if process is not None and process.poll() is None:
            process.terminate()  # SIGTERM: a smart shutdown; then the fast one if sessions linger
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
