"""Keeping memory management off the key-press path: collector tuning, a Textual cache fix.

A long investigation churns widgets (cells move through the notebook's window, agent
entries through the agent pane's), and Textual allocates a few thousand small objects
per frame (each rendered line is a ``Strip`` with seven caches of its own). Left at
CPython's defaults, full garbage collections of 100-300 ms ran every few seconds and
landed on whatever key the person pressed; see ``benchmarks/bench_tui.py``.
"""

from __future__ import annotations

import gc

try:
    from textual._styles_cache import StylesCache
except ImportError:  # a private module: if it goes, so does the bug worked around below
    StylesCache = None  # type: ignore[assignment,misc]

#: Allocations between young collections (CPython's default is 700). At 700, objects
#: that live for a frame or two are promoted, and the old generation fills fast enough
#: for a full collection every second or so of a busy run (67 in the benchmark's first
#: 500 cells); at 10,000 most of them die young (3 full collections).
YOUNG_THRESHOLD = 10_000


def tune_collector() -> tuple[int, int, int]:
    """Raise the young-generation threshold; returns the thresholds to restore on exit."""
    previous = gc.get_threshold()
    gc.set_threshold(max(previous[0], YOUNG_THRESHOLD), *previous[1:])
    return previous


def restore_collector(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(*thresholds)


def release_styles_caches() -> None:
    """Let go of the rendered lines of removed widgets (Textualize/textual#6665).

    ``StylesCache.get_inner_outer`` is an ``lru_cache`` on an *instance* method, so its
    keys pin up to 1,024 ``StylesCache`` objects, each still holding the rendered lines
    (and the lines derived from them) of a widget long since removed: ~250k dead objects
    for every full collection to walk. Clearing it costs a recomputed colour pair.
    """
    method = getattr(StylesCache, "get_inner_outer", None)
    cache_clear = getattr(method, "cache_clear", None)
    if cache_clear is not None:  # a fixed Textual may make it a plain method, or move it
        cache_clear()
