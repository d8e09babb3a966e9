"""PCT's probabilistic guarantee, as ``@simloom.test``'s summary and ``simloom soak``
state it after a passing exploration.

Owns: the bound and its wording, and counting a universe's tasks (PCT's ``n``).
Must not: decide which universes count (the explorers do: PCT without eager starts,
within its horizon; see docs/schedulers.md, "PCT's guarantee").
"""

from __future__ import annotations

from typing import Any

#: PCT depths the guarantee line speaks of.
GUARANTEE_DEPTHS = (1, 2, 3)


def pct_guarantee(pct_universes: int, owners: int, steps: int, *, depth: int = 3) -> str | None:
    """What PCT's guarantee says after ``pct_universes`` passing PCT universes of a
    program with at most ``owners`` tasks and ``steps`` steps: one PCT universe of
    depth >= d finds a given bug of depth d with probability >= 1/(n k^(d-1))
    (Burckhardt et al., ASPLOS 2010), so all of them missed it with probability
    <= (1 - p)^N. ``None`` when no PCT universe ran."""
    if pct_universes <= 0 or owners <= 0 or steps <= 0:
        return None
    parts = []
    for d in GUARANTEE_DEPTHS:
        if depth and d > depth:
            break
        p = 1.0 / (owners * float(steps) ** (d - 1))
        missed = (1.0 - p) ** pct_universes
        parts.append(
            f"depth {d}: p >= {p:.3g} per universe, missed with probability <= {missed:.3g}"
        )
    return (
        f"PCT guarantee after {pct_universes} passing PCT universe(s), with at most "
        f"{owners} task(s) and {steps} step(s) seen: a bug of " + "; ".join(parts)
    )


def task_count(universe: Any) -> int:
    """Tasks (and callbacks) that took a step: PCT's ``n``."""
    from . import _core

    # The raw records (labels interned): cheaper than decoding Event objects.
    return len(
        {raw[1] for raw in _core.decode_event_log(universe.event_log_bytes) if raw[0] == "step"}
    )
