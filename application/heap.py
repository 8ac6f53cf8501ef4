"""Long-lived objects kept out of the cyclic garbage collector's way, in the server process.

The server holds hundreds of thousands of objects that live as long as it does: the imported
modules, the loaded models, the live-scoring histories in memory. Python's automatic full
collection walks all of them every time, with the interpreter held: measured 150-240 ms, every
10-40 s under 1,000 transactions a second from Kafka, each one a stall of the scoring thread and
of every request behind it. `gc.freeze()` moves the objects that exist to a permanent generation
the collections skip. Frozen objects are still freed by reference counting when dropped (a
reloaded history, a replaced model). A freeze also takes whatever else is alive at that moment
(browser sessions, requests in flight), and cycles among frozen objects are never collected: so
each freeze first unfreezes and collects everything, which frees the cycles frozen by the last
one that have died since, and freezes only what survives.

Only the server turns this on (serve.py, at startup): a test process or the command line, which
build and drop many short-lived databases, keep Python's defaults.
"""

from __future__ import annotations

import gc
import logging
import time

LOG = logging.getLogger(__name__)
_enabled = False


def enable() -> None:
    """Freeze what exists now, and after every later large load (`freeze_long_lived`)."""
    global _enabled
    _enabled = True
    freeze_long_lived()


def disable() -> None:
    global _enabled
    _enabled = False


def freeze_long_lived() -> None:
    """In the server: unfreeze, collect, then freeze everything that survived (call after a large
    load: a model, a history). Costs one full collection, once per load."""
    if not _enabled:
        return
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    LOG.info("froze %s long-lived objects in %.2f s", f"{gc.get_freeze_count():,}", time.perf_counter() - started)
