"""Hypothesis strategies for simloom: ``universes()``.

A drawn :class:`Universe` runs an async program in a fresh simulated loop whose
every choice — which ready callback runs, which simultaneous timer fires first,
``simloom.sometimes`` and ``simloom.draw`` — is a Hypothesis draw. So Hypothesis
generates schedules, stores failing ones in its example database, and shrinks them
together with every other argument of the test::

    from hypothesis import given, strategies as st
    import simloom

    @given(st.lists(st.integers()), simloom.universes())
    def test_batches(items, universe):
        universe.run(lambda: process(items))

    @given(simloom.universes())          # async tests run inside the universe
    async def test_counter(universe):
        ...

Requires ``hypothesis`` (``pip install simloom[hypothesis]``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

try:
    from . import _compat
except ImportError as exc:  # pragma: no cover - exercised without hypothesis installed
    raise ImportError(
        "simloom.hypothesis needs Hypothesis: pip install 'simloom[hypothesis]'"
    ) from exc

from .._api import RunResult, _check_main, _universe
from .._scheduler import SchedulerSpec, parse_scheduler
from ..errors import SimloomUsageError
from ..loop import DEFAULT_LIVELOCK_STEPS, SimLoop
from ..tape import MAX_GAP

__all__ = ["Universe", "universes"]

#: Chance, while generating, that one more deviation follows (so about four per
#: universe on average). Shrinking drives every ``more?`` toward ``False``.
MORE_DEVIATIONS_P = 0.8
_SPAN_DEVIATION = _compat.span_label("simloom.deviation")
_span_labels: dict[str, int] = {}


def _decision_span(label: str) -> int:
    kind = label.split(":", 1)[0]
    if kind not in _span_labels:
        _span_labels[kind] = _compat.span_label(f"simloom.decision:{kind}")
    return _span_labels[kind]


class _HypothesisDraws:
    """The choice source of a universe: the sparse encoding's draws, each one a
    ``ConjectureData`` draw inside a span labelled by what it decides."""

    def __init__(self, data: _compat.ConjectureData) -> None:
        self.data = data
        self.open_spans = 0
        self.draws = 0

    def more(self) -> bool:
        _compat.start_span(self.data, _SPAN_DEVIATION)
        self.open_spans += 1
        self.draws += 1
        more = _compat.draw_boolean(self.data, MORE_DEVIATIONS_P)
        if not more:
            self._close()
        return more

    def gap(self) -> int:
        self.draws += 1
        return _compat.draw_integer(self.data, 0, MAX_GAP)

    def value(self, label: str, bound: int) -> int:
        self.draws += 1
        _compat.start_span(self.data, _decision_span(label))
        try:
            return _compat.draw_integer(self.data, 1, bound - 1)
        finally:
            _compat.stop_span(self.data)
            self._close()

    def _close(self) -> None:
        if self.open_spans:
            _compat.stop_span(self.data)
            self.open_spans -= 1


class Universe:
    """One simulated universe whose choices are Hypothesis draws.

    ``run(main)`` runs the async function ``main`` in it and returns what ``main``
    returns, raising what it raises; ``result`` then holds the full
    :class:`~simloom.RunResult` (tape, event log, digest...). A universe runs one
    program once. It shrinks toward the FIFO schedule with no faults: every choice
    toward 0, every ``sometimes`` toward ``False``.
    """

    def __init__(
        self, data: _compat.ConjectureData, scheduler: SchedulerSpec, livelock_steps: int
    ) -> None:
        self._data = data
        self.scheduler = scheduler
        self.livelock_steps = livelock_steps
        self.result: RunResult | None = None

    def run_result(self, main: Callable[[], Awaitable[Any]]) -> RunResult:
        """Run ``main`` and return its :class:`~simloom.RunResult` without raising
        the program's error."""
        _check_main(main)
        if self.result is not None:
            raise SimloomUsageError(
                "a Universe runs one program once; draw another universe for another run"
            )
        draws = _HypothesisDraws(self._data)
        loop = SimLoop(draws=draws, livelock_steps=self.livelock_steps)
        try:
            self.result = _universe(main, loop, None, "hypothesis")
        finally:
            while draws.open_spans:
                draws._close()
        return self.result

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``main`` in this universe; return its value or raise its error."""
        result = self.run_result(main)
        result.raise_error()
        return result.value

    def __repr__(self) -> str:
        if self.result is None:
            return "Universe(not run yet)"
        return (
            f"Universe(tape={list(self.result.tape.deviations)!r}, "
            f"steps={self.result.steps}, decisions={self.result.decisions})"
        )


class _UniverseStrategy(_compat.SearchStrategy[Universe]):
    def __init__(self, scheduler: SchedulerSpec, livelock_steps: int) -> None:
        super().__init__()
        self.scheduler = scheduler
        self.livelock_steps = livelock_steps

    def do_draw(self, data: _compat.ConjectureData) -> Universe:
        return Universe(data, self.scheduler, self.livelock_steps)

    def calc_is_empty(self, recur: Any) -> bool:
        return False

    def __repr__(self) -> str:
        return "universes()"


def universes(
    *, scheduler: str | None = None, livelock_steps: int = DEFAULT_LIVELOCK_STEPS
) -> _compat.SearchStrategy[Universe]:
    """A strategy for simulated universes whose choices Hypothesis makes.

    Each draw of the sparse encoding (``more?``, ``gap``, ``value``) is a Hypothesis
    choice, so a universe **shrinks toward FIFO with no faults**: fewer deviations,
    earlier deviations, smaller choice values, ``sometimes`` toward ``False``.
    ``scheduler`` names the Rust generator Hypothesis's ``backend="simloom"`` uses
    (``"random"``, ``"pct"``...); the default Hypothesis backend ignores it.
    """
    spec = parse_scheduler(scheduler or "random")
    if not isinstance(livelock_steps, int) or livelock_steps < 1:
        raise SimloomUsageError(
            f"livelock_steps must be a positive integer, got {livelock_steps!r}"
        )
    return _UniverseStrategy(spec, livelock_steps)
