"""Every Hypothesis internal simloom touches, in one place.

Hypothesis's public API has no way to draw raw choices from inside a running test,
to label spans, to seed its example database with a choice sequence, or to compute a
test's database key; these internals move between minor releases. Everything that
imports them lives here, and ``tests/test_hypothesis_compat.py`` pins their
behaviour so an upgrade that breaks them fails loudly in one place.

It is a leaf at the package's top level, not inside ``simloom.hypothesis``:
the determinism boundary reads Hypothesis's generator registry through it, and
importing a module of ``simloom.hypothesis`` would run that package's
``__init__``, which imports the engine's front end, which imports the boundary.
``simloom.hypothesis._compat`` is the same names under their older address.

Owns: the names and call shapes of Hypothesis internals. Must not: contain simloom
logic, or import anything of simloom.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import hypothesis
from hypothesis.database import ExampleDatabase, choices_from_bytes, choices_to_bytes
from hypothesis.internal import entropy
from hypothesis.internal.conjecture.data import ConjectureData
from hypothesis.internal.conjecture.engine import ExitReason
from hypothesis.internal.conjecture.providers import (
    AVAILABLE_PROVIDERS,
    HypothesisProvider,
    PrimitiveProvider,
)
from hypothesis.internal.conjecture.utils import calc_label_from_name
from hypothesis.internal.reflection import function_digest
from hypothesis.strategies._internal.strategies import SearchStrategy

__all__ = [
    "AVAILABLE_PROVIDERS",
    "HYPOTHESIS_VERSION",
    "ConjectureData",
    "HypothesisProvider",
    "PrimitiveProvider",
    "SearchStrategy",
    "ci_environment_variables",
    "database_key",
    "decode_choices",
    "draw_boolean",
    "draw_integer",
    "encode_choices",
    "engine_statistics",
    "is_stop_test",
    "provider_of",
    "provider_random",
    "random_registry_version",
    "registered_randoms",
    "saved_choices",
    "secondary_key",
    "shrink_ran",
    "shrink_stopped_early",
    "span_label",
    "start_span",
    "stop_span",
]

HYPOTHESIS_VERSION: tuple[int, ...] = hypothesis.__version_info__

# Make ``settings(backend="simloom")`` valid even where the entry point did not run
# (an uninstalled checkout, HYPOTHESIS_NO_PLUGINS).
AVAILABLE_PROVIDERS.setdefault("simloom", "simloom.hypothesis._provider.SimloomProvider")


def span_label(name: str) -> int:
    """The integer label Hypothesis uses for a span called ``name``."""
    return int(calc_label_from_name(name))


def start_span(data: ConjectureData, label: int) -> None:
    data.start_span(label)


def stop_span(data: ConjectureData) -> None:
    data.stop_span()


def draw_boolean(data: ConjectureData, p: float, forced: bool | None = None) -> bool:
    """One boolean choice (shrinks toward ``False``); ``forced`` fixes the value
    while still recording it as a choice."""
    return bool(data.draw_boolean(p, forced=forced))


def draw_integer(
    data: ConjectureData, min_value: int, max_value: int, forced: int | None = None
) -> int:
    """One integer choice in ``[min_value, max_value]`` (shrinks toward
    ``min_value``)."""
    return int(data.draw_integer(min_value, max_value, shrink_towards=min_value, forced=forced))


def is_stop_test(error: BaseException) -> bool:
    """Is ``error`` Hypothesis ending the test case (``StopTest``: an overrun, the
    shrinker done with this candidate)?"""
    from hypothesis.errors import StopTest

    return isinstance(error, StopTest)


def provider_of(data: ConjectureData) -> PrimitiveProvider | None:
    """The backend generating this test case's choices."""
    provider = getattr(data, "provider", None)
    return provider if isinstance(provider, PrimitiveProvider) else None


def provider_random(provider: HypothesisProvider) -> Any:
    """The ``random.Random`` a Hypothesis provider generates from."""
    return provider._random


def registered_randoms() -> list[tuple[int, object]]:
    """``(key, generator)`` for every live generator Hypothesis manages: the
    ``random`` module itself and whatever ``register_random`` registered, in
    registration order (keys ascend)."""
    return [(int(key), generator) for key, generator in list(entropy.RANDOMS_TO_MANAGE.items())]


def random_registry_version() -> tuple[int, int]:
    """Changes whenever a generator is registered or collected: registration keys
    only ascend, so (count, newest key) is enough."""
    entries = entropy.RANDOMS_TO_MANAGE.data  # type: ignore[attr-defined]
    return len(entries), next(reversed(entries), -1)


def encode_choices(choices: Sequence[bool | int]) -> bytes:
    """A choice sequence as the bytes Hypothesis stores in its example database."""
    return bytes(choices_to_bytes(list(choices)))


def decode_choices(buffer: bytes) -> tuple[Any, ...] | None:
    """Inverse of :func:`encode_choices` (``None`` if not a choice sequence)."""
    return choices_from_bytes(buffer)


def database_key(test: Any, extra: bytes) -> bytes:
    """The example-database key Hypothesis uses for ``test`` when
    ``test._hypothesis_internal_add_digest`` is ``extra``."""
    test._hypothesis_internal_add_digest = extra
    return bytes(function_digest(test))


def secondary_key(key: bytes) -> bytes:
    """Where Hypothesis keeps failures it has not shrunk yet. Entries under the
    primary key are taken as already minimal and never re-shrunk; a failure found
    elsewhere is saved here so that Hypothesis replays *and shrinks* it."""
    return b".".join((key, b"secondary"))


@contextlib.contextmanager
def engine_statistics() -> Iterator[dict[str, Any]]:
    """Collect the statistics of the Hypothesis runs inside the block (what
    ``--hypothesis-show-statistics`` prints; an outer collector still gets them).
    Empty if the run did not end normally (an interrupt)."""
    from hypothesis import statistics

    collected: dict[str, Any] = {}
    collector: Any = statistics.collector  # typed as holding only its default, None
    outer = collector.value

    def note(stats: dict[str, Any]) -> None:
        collected.update(stats)
        if outer is not None:
            outer(stats)

    with collector.with_value(note):
        yield collected


def shrink_ran(statistics: dict[str, Any]) -> bool:
    """Did the engine get to its shrink phase? It skips it (and reports the run
    finished) when it replays a primary-key entry exactly: one it takes as
    already minimal."""
    return "shrink-phase" in statistics


def shrink_stopped_early(statistics: dict[str, Any]) -> str | None:
    """Why Hypothesis's engine stopped before it had nothing left to do (a limit on
    shrinks or on shrinking time, a flaky failure...), or ``None`` if it finished."""
    stopped = statistics.get("stopped-because")
    if stopped == ExitReason.finished.value:
        return None
    return str(stopped) if stopped else "the engine reported no statistics"


def saved_choices(database: ExampleDatabase | None, key: bytes) -> Iterable[bytes]:
    """The choice sequences saved under ``key``."""
    if database is None:
        return []
    return list(database.fetch(key))


def ci_environment_variables() -> tuple[str, ...]:
    """The environment variables whose presence makes Hypothesis load its ``ci``
    settings profile (no example database, derandomized) at import time."""
    from hypothesis import _settings

    return tuple(_settings._CI_VARS)
