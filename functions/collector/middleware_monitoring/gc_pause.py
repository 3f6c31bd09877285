"""Encoding a pass makes hundreds of thousands of small objects (label tuples, lines) that
all live until the pass is sent: the cyclic garbage collector, triggered by their number,
walks the growing heap again and again and takes half of the encoding's CPU time. None of
them can form a cycle to collect, so the collector is paused while a pass is encoded."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic collector off for the block, back as it was after (it may be off already:
    then it stays off)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
