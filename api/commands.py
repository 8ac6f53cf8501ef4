"""`POST /api/v1/commands`: a `centinela` command run inside the server, for the command line while
the app holds the database (cli/remote.py sends it).

The command runs on its own thread with its own database cursor, as `api:<key name>`, through
`cli.main.execute_argv`: the same parser, handlers and application actions as a local run. What it
prints goes to that thread's standard output and error only (the streams below route by thread),
and is streamed back as JSON lines `{"stream": "stdout"|"stderr", "text": ...}`, then `{"exit": N}`.
A key needs the `operate` scope: such a key can do whatever the command line can.
"""

from __future__ import annotations

import io
import json
import queue
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from application import keys
from application.context import Context
from data.db import thread_cursor
from data.errors import Forbidden, InvalidInput

MAX_ARGS, MAX_ARG, MAX_STDIN = 200, 4_096, 65_536
_local = threading.local()


class CommandRequest(BaseModel):
    argv: list[str] = Field(min_length=1, max_length=MAX_ARGS, description="The arguments after `centinela`")
    stdin: str | None = Field(None, max_length=MAX_STDIN, description="What the command reads from standard input")


class _ThreadStream(io.TextIOBase):
    """sys.stdout / sys.stderr / sys.stdin: a command thread's own stream, else the process's."""

    def __init__(self, name: str, default: Any):
        self.name, self.default = name, default

    def _target(self) -> Any:
        return getattr(_local, self.name, None) or self.default

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def readline(self, size: int = -1) -> str:
        return self._target().readline(size)

    def read(self, size: int = -1) -> str:
        return self._target().read(size)

    def isatty(self) -> bool:
        return self._target().isatty()


class _Lines(io.TextIOBase):
    """A command's stdout or stderr: each write becomes an event for the response."""

    def __init__(self, events: queue.Queue, stream: str):
        self.events, self.stream = events, stream

    def write(self, text: str) -> int:
        if text:
            self.events.put({"stream": self.stream, "text": text})
        return len(text)

    def isatty(self) -> bool:
        return False


def _install() -> None:
    for name in ("stdout", "stderr", "stdin"):
        if not isinstance(getattr(sys, name), _ThreadStream):
            setattr(sys, name, _ThreadStream(name, getattr(sys, name)))


def _run(argv: list[str], stdin: str | None, actor: str, events: queue.Queue) -> None:
    from cli.main import execute_argv  # the command line's own entry, imported where it runs

    _local.stdout, _local.stderr = _Lines(events, "stdout"), _Lines(events, "stderr")
    _local.stdin = io.StringIO(stdin or "")
    try:
        code = execute_argv(argv, Context(thread_cursor(), actor))
    except Exception:  # a bug: shown as the command line would show it, exit status 1
        _local.stderr.write(traceback.format_exc())
        code = 1
    finally:
        _local.stdout = _local.stderr = _local.stdin = None
    events.put({"exit": code})


def register(api: FastAPI, context: Any, key_secret: Any) -> None:
    @api.post("/v1/commands", tags=["operations"],
              summary="Run a centinela command in the server (the command line while the app runs)")
    def command(body: CommandRequest, request: Request) -> StreamingResponse:
        ctx = context(request)
        key = keys.authenticate(ctx, key_secret(request), "operate")
        if key.dataset_id is not None:  # a command may act on any dataset
            raise Forbidden(f"API key {key.name!r} is for one dataset; commands need a key for all.", field="dataset")
        if any(len(a) > MAX_ARG or "\x00" in a for a in body.argv):
            raise InvalidInput(f"arguments are at most {MAX_ARG:,} characters, without NUL.", field="argv")
        _install()
        events: queue.Queue = queue.Queue()
        threading.Thread(target=_run, args=(body.argv, body.stdin, keys.actor(key), events), daemon=True,
                         name=f"command:{key.name}").start()

        def stream() -> Iterator[str]:
            while True:
                event = events.get()
                yield json.dumps(event) + "\n"
                if "exit" in event:
                    return

        return StreamingResponse(stream(), media_type="application/x-ndjson")
