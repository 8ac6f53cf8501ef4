"""The command line while the app runs: the command goes to the server, which holds the database.

DuckDB lets one process write a file, and the app's server is that process, so a command that
finds the database held sends its arguments to the server (`POST /api/v1/commands` with a key of
the `operate` scope from $CENTINELA_API_KEY, at $CENTINELA_URL) and prints what the server
streams back: the same command, run by the same code on the server's connection, with the same
messages, progress lines, exit status and audit rows (attributed to the key). Paths in the
arguments are made absolute first (the server reads and writes files on this machine's file
system, in the folders it may use); a password the command would ask for is asked for here.
"""

from __future__ import annotations

import getpass
import http.client
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8501"
FILE_SUFFIXES = {".csv", ".tsv", ".txt", ".parquet", ".xlsx", ".xls", ".json", ".duckdb"}
EXIT_DATABASE_IN_USE = 3
PATH_COMMANDS = ("backup",)  # whose first argument is a path, with or without a separator
PASSWORD_COMMANDS = (("users", "add"), ("users", "set"))
HOW_TO = ("Create a key with the 'operate' scope on Users & audit -> API keys and set CENTINELA_API_KEY to it "
          f"(and CENTINELA_URL if the app is not at {DEFAULT_URL}); the command then runs through the app.")


def absolute_paths(argv: list[str]) -> list[str]:
    """Arguments that name files (a folder separator or a data-file suffix, in a folder that
    exists, or the folder `backup` writes) made absolute, so the server finds the same files. A
    plain word stays as it is: it may be a dataset's name."""
    out = []
    for i, arg in enumerate(argv):
        path = Path(arg)
        names_file = os.sep in arg or path.suffix.lower() in FILE_SUFFIXES or (i == 1 and argv[0] in PATH_COMMANDS)
        if not arg.startswith("-") and names_file and (path.exists() or path.parent.exists()):
            arg = str(path.resolve())
        out.append(arg)
    return out


def _stdin_for(argv: list[str]) -> str | None:
    """What the command would read from standard input (a password), read or asked for here."""
    command = next((c for c in PASSWORD_COMMANDS if any(tuple(argv[i:i + 2]) == c for i in range(len(argv) - 1))), None)
    if command is None or (command == ("users", "set") and "--password-stdin" not in argv):
        return None
    if "--password-stdin" in argv or not sys.stdin.isatty():
        return sys.stdin.readline()
    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Password again: ") != first:
        print("error: the passwords differ.", file=sys.stderr)
        raise SystemExit(2)
    return first + "\n"


def forward(argv: list[str], held: Exception, hint: str | None = None) -> int:
    """Run the command through the server that holds the database; exit status 3 and how to set
    it up (and the command's own `hint`, if any) when there is no key."""
    key = os.environ.get("CENTINELA_API_KEY")
    if not key:
        print(f"error: {held}", file=sys.stderr)
        print(f"hint: {HOW_TO}" + (f" {hint}" if hint else ""), file=sys.stderr)
        return EXIT_DATABASE_IN_USE
    url = urlsplit(os.environ.get("CENTINELA_URL") or DEFAULT_URL)
    if url.scheme not in ("http", "https") or not url.hostname:
        print(f"error: CENTINELA_URL {url.geturl()!r} is not an http(s) address.", file=sys.stderr)
        return 2
    body = json.dumps({"argv": absolute_paths(argv), "stdin": _stdin_for(argv)}).encode()
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = kind(url.hostname, url.port, timeout=None)  # a fit can take minutes; the server ends it
    try:
        connection.request("POST", f"{url.path.rstrip('/')}/api/v1/commands", body,
                           {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            detail = json.loads(response.read() or b"{}").get("error", {})
            print(f"error: the app refused the command ({response.status}): {detail.get('message', response.reason)}",
                  file=sys.stderr)
            return 2
        code = 1
        for line in response:
            event = json.loads(line)
            if "exit" in event:
                code = int(event["exit"])
                break
            stream = sys.stderr if event.get("stream") == "stderr" else sys.stdout
            stream.write(event.get("text", ""))
            stream.flush()
        return code
    except OSError as exc:
        print(f"error: {held}; and the app at {url.geturl()} cannot be reached: {exc}", file=sys.stderr)
        return EXIT_DATABASE_IN_USE
    finally:
        connection.close()
