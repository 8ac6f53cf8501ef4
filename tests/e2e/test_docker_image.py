"""The Dockerfile built and run for real, without a Docker engine: Debian's buildah builds it with
`--isolation chroot` and runs the image's own CMD and HEALTHCHECK on the host's network.

The Dockerfile's base (python:3.11-slim) cannot be pulled here, so the test makes a stand-in from
Debian's own packages (debootstrap bookworm, whose Python is 3.11 too) under the base's name; the
image's requirements come from a wheelhouse that `make wheelhouse` fills beforehand, built with
`--build-arg PIP_NO_INDEX=1`, so no Python package comes from a registry (the image's one
Debian package, libgomp1, comes from the Debian mirror, as the base does). About 3.5 minutes on
2 cores (debootstrap about one, the build about two). Needs root (debootstrap, chroot): `make test`
runs as root in CI; elsewhere it is skipped with the reason."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from tests.browser import free_port
from tests.conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and buildah's chroot isolation need root"),
    pytest.mark.skipif(not (shutil.which("buildah") and shutil.which("debootstrap")),
                       reason="needs Debian's buildah and debootstrap: `make image-tools`"),
]

BASE = "docker.io/library/python:3.11-slim"  # the Dockerfile's FROM, fully qualified
IMAGE = "localhost/centinela:test"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DATASET = "shop"
# Run in the container's /app before the first start: the app's script once, with no user yet,
# must say how to create the first admin (and raise nothing).
APP_RUNS = """
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("/app/app.py", default_timeout=120).run()
assert not at.exception, at.exception
assert any("No user exists yet" in w.value for w in at.warning), [w.value for w in at.warning]
print("app.py ran: no user yet, said so")
"""


class Buildah:
    """buildah on a storage of the test's own (vfs: no overlay mounts needed), chroot isolation."""

    def __init__(self, folder: Path) -> None:
        self.options = ["--root", str(folder / "storage"), "--runroot", str(folder / "run"), "--storage-driver", "vfs"]
        self.env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}

    def command(self, *args: str) -> list[str]:
        return ["buildah", *self.options, *args]

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and done.returncode != 0:
            raise AssertionError(f"buildah {' '.join(args[:3])} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                                 f"{done.stderr[-3000:]}")
        return done

    def run(self, container: str, *command: str, volume: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        return self("run", *self._run_options(volume, env), container, "--", *command, timeout=timeout, check=check)

    def _run_options(self, volume: Path | None, env: dict[str, str] | None) -> list[str]:
        options = ["--isolation", "chroot"]
        if volume is not None:
            options += ["--volume", f"{volume}:/data"]
        for name, value in (env or {}).items():
            options += ["--env", f"{name}={value}"]
        return options

    def start(self, container: str, *command: str, volume: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
        """The container's command in the background, in a process group of its own."""
        return subprocess.Popen(self.command("run", *self._run_options(volume, env), container, "--", *command),
                                stdout=log.open("w"), stderr=subprocess.STDOUT, env=self.env, start_new_session=True)


def _debian_mirror() -> str:
    """$CENTINELA_DEBIAN_MIRROR, else the mirror this machine's apt uses for Debian itself."""
    if os.environ.get("CENTINELA_DEBIAN_MIRROR"):
        return os.environ["CENTINELA_DEBIAN_MIRROR"]
    for sources in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and not line.rstrip().endswith("-security"):
                return line.split()[1]
    listed = Path("/etc/apt/sources.list")
    for line in (listed.read_text().splitlines() if listed.exists() else []):
        parts = line.split()
        if len(parts) > 2 and parts[0] == "deb" and parts[2] == "bookworm":
            return parts[1]
    return DEFAULT_MIRROR


def _stand_in_base(buildah: Buildah, folder: Path) -> None:
    """Debian bookworm with python3 and pip, made to look like python:3.11-slim where the
    Dockerfile relies on it (`python` and `pip` on PATH, pip free to install as root)."""
    rootfs = folder / "rootfs"
    made = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-pip,python3-venv",
                           "bookworm", str(rootfs), _debian_mirror()], capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, f"debootstrap failed:\n{made.stdout[-2000:]}\n{made.stderr[-2000:]}"
    (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    for name, target in (("python", "python3"), ("pip", "pip3")):
        (rootfs / "usr/bin" / name).unlink(missing_ok=True)
        (rootfs / "usr/bin" / name).symlink_to(target)
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
    archive = folder / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], check=True, timeout=300)
    shutil.rmtree(rootfs)
    container = buildah("from", "scratch").stdout.strip()
    buildah("add", container, str(archive), "/")
    buildah("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--cmd", "python3", container)
    buildah("commit", "--rm", container, BASE)
    archive.unlink()


def _build_context(folder: Path) -> Path:
    """The working tree's files as a fresh clone has them (tracked and not ignored), and the
    wheelhouse `make wheelhouse` fills."""
    context = folder / "context"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / name)
    subprocess.run(["make", "-s", "wheelhouse", f"WHEELHOUSE={context / 'wheelhouse'}"], cwd=ROOT, check=True,
                   capture_output=True, timeout=900)
    return context


def _post(url: str, key: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def buildah(tmp_path):
    tool = Buildah(tmp_path)
    yield tool
    tool("rm", "--all", check=False)
    tool("rmi", "--all", "--force", check=False)
    shutil.rmtree(tmp_path / "storage", ignore_errors=True)  # gigabytes of vfs layers


def test_the_image_builds_starts_scores_and_keeps_the_database_in_the_volume(buildah, tmp_path):
    _stand_in_base(buildah, tmp_path)
    context = _build_context(tmp_path)
    assert any(context.glob("wheelhouse/duckdb-*.whl")) and any(context.glob("wheelhouse/setuptools-*.whl"))
    buildah("build", "--isolation", "chroot", "--format", "docker", "--pull=never", "--build-arg", "PIP_NO_INDEX=1",
            "--tag", IMAGE, str(context), timeout=1500)
    config = json.loads(buildah("inspect", "--type", "image", IMAGE).stdout)["Docker"]["config"]
    assert config["User"] and config["User"] != "root"
    assert "/data" in config["Volumes"]
    kind, health_command = config["Healthcheck"]["Test"]
    assert kind == "CMD-SHELL"

    volume = tmp_path / "data"  # what `-v DIR:/data` would be
    volume.mkdir()
    server = buildah("from", IMAGE).stdout.strip()
    # buildah run (1.28) mounts an image's declared VOLUME over a --volume bind at the same path;
    # Docker and Podman put the bind there. Dropping the declaration from this working container
    # (not from the image) gives buildah run the same behaviour.
    buildah("config", "--volume", "/data-", server)
    uid = int(buildah.run(server, "id", "-u").stdout)
    assert uid != 0
    os.chown(volume, uid, 0)  # as an operator prepares a host folder for the image's user

    # No password in the environment: the first start says what to set, and creates nobody.
    told = buildah.run(server, "centinela", "users", "first-admin", volume=volume).stdout
    assert "CENTINELA_ADMIN_PASSWORD" in told
    # A dataset, the default detector and a scoring key, made by the image's own command line.
    made = buildah.run(server, "sh", "-c", f"centinela --quiet generate --rows 4000 --days 20 --start 2026-03-01 --fraud-rate 0.05 "
                       f"--name {DATASET} && centinela --quiet fit {DATASET} && "
                       "centinela keys create till --scope score --json", volume=volume, timeout=600).stdout
    key = json.loads(made.strip().splitlines()[-1])["key"]
    # A model learned from the label column (LightGBM, which needs the image's libgomp1), and the
    # app's script itself run once through AppTest in the image (its pages, icon and config).
    buildah.run(server, "centinela", "--quiet", "retrain", DATASET, volume=volume, timeout=600)
    app_ran = buildah.run(server, "python", "-c", APP_RUNS, volume=volume, timeout=300).stdout
    assert "app.py ran: no user yet, said so" in app_ran, app_ran

    port = free_port()
    log = tmp_path / "container.log"
    process = buildah.start(server, *config["Cmd"], volume=volume, log=log,
                            env={"HOST": "127.0.0.1", "PORT": str(port),  # loopback only: the host network
                                 "CENTINELA_ADMIN_PASSWORD": "a long container password"})
    try:
        probe = buildah("from", IMAGE).stdout.strip()  # the health check runs in the image, as Docker runs it
        deadline = time.monotonic() + 240
        while buildah.run(probe, "sh", "-c", health_command, env={"PORT": str(port)}, check=False).returncode != 0:
            assert process.poll() is None, f"the container exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never healthy:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(url + "/", timeout=30) as page:  # the pages, on the same port
            assert page.status == 200 and b"<html" in page.read().lower()
        transaction = {"transaction_id": "docker-tx-1", "timestamp": "2026-03-21T12:30:00-05:00", "amount": 1234.5,
                       "customer_id": "C-docker", "merchant_id": "M-docker", "city": "Lima"}
        status, answer = _post(f"{url}/api/v1/datasets/{DATASET}/transactions", key, {"transactions": [transaction]})
        assert status == 200, answer
        assert answer["stored"] == 1 and answer["decisions"][0]["transaction_id"] == "docker-tx-1"
    finally:
        _stop(process)
    printed = log.read_text()
    assert "created the first admin, 'admin'" in printed

    # The database is in the volume, written by the image's unprivileged user, and holds the
    # transaction the API answered for, its decision and the admin the first start created.
    database = volume / "centinela.duckdb"
    assert database.stat().st_uid == uid and (volume / "models").is_dir()
    conn = duckdb.connect(str(database), read_only=True)
    try:
        table = conn.execute("SELECT table_name FROM datasets WHERE name = ?", [DATASET]).fetchone()[0]
        assert conn.execute(f'SELECT count(*) FROM "{table}" WHERE transaction_id = ?', ["docker-tx-1"]).fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM decisions WHERE transaction_id = ?", ["docker-tx-1"]).fetchone()[0] == 1
        assert conn.execute("SELECT role FROM users WHERE username = 'admin'").fetchone()[0] == "admin"
    finally:
        conn.close()
