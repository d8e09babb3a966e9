"""The Hypothesis internals simloom relies on, pinned against the installed Hypothesis.

Everything in ``simloom/_hypothesis_compat.py`` (``simloom.hypothesis._compat``) is
exercised here exactly the way ``_shrink.py`` and ``simloom.universes()`` use it:
choice sequences round-trip through the database encoding, the database key is
the one Hypothesis itself uses, a failure saved under the *secondary* key is
replayed and shrunk while one saved under the primary key is replayed as already
minimal, and raw draws and spans work inside a real ``ConjectureData``. An upgrade
of Hypothesis that moves any of these fails here, in one place.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.errors import StopTest
from simloom.hypothesis import _compat

# ------------------------------------------------------------------ version


def test_hypothesis_version_is_the_installed_one_and_at_least_6_115() -> None:
    assert hypothesis.__version_info__ == _compat.HYPOTHESIS_VERSION
    assert _compat.HYPOTHESIS_VERSION >= (6, 115)


# ------------------------------------------------------------------ encoding


@pytest.mark.parametrize(
    "choices",
    [
        [],
        [False],
        [True, False, True],
        [0, 1, 4294967295],
        [True, 0, 7, True, 3, 1, False],  # the sparse encoding of a two-deviation tape
        [-5, 2**70, True, 0],
    ],
)
def test_encode_then_decode_choices_round_trips_bools_and_ints(choices: list[Any]) -> None:
    encoded = _compat.encode_choices(choices)
    assert isinstance(encoded, bytes)
    decoded = _compat.decode_choices(encoded)
    assert decoded is not None
    assert list(decoded) == choices
    # bools stay bools and ints stay ints (True == 1, so compare the types too)
    assert [type(c) for c in decoded] == [type(c) for c in choices]


def test_decode_choices_of_bytes_that_are_not_a_choice_sequence_is_none() -> None:
    assert _compat.decode_choices(b"\xff\xff\xff") is None


# ------------------------------------------------------------------ database keys


def _always_fails(x: int) -> None:
    raise AssertionError(f"x = {x}")


def _another_test(x: int) -> None:
    raise AssertionError(f"x = {x}")


def test_database_key_is_deterministic_and_depends_on_extra() -> None:
    first = _compat.database_key(_always_fails, b"simloom.test:test_a.py::test_a")
    again = _compat.database_key(_always_fails, b"simloom.test:test_a.py::test_a")
    other_extra = _compat.database_key(_always_fails, b"simloom.test:test_a.py::test_b")
    other_function = _compat.database_key(_another_test, b"simloom.test:test_a.py::test_a")
    assert isinstance(first, bytes)
    assert first == again
    assert first != other_extra
    assert first != other_function


def test_database_key_is_the_key_hypothesis_saves_a_failure_under() -> None:
    database = InMemoryExampleDatabase()

    def body(x: int) -> None:
        assert x < 3

    key = _compat.database_key(body, b"simloom.test:some::test")
    test = settings(database=database, max_examples=200, derandomize=False)(
        given(st.integers(min_value=0, max_value=100))(body)
    )
    with pytest.raises(AssertionError):
        test()
    saved = [_compat.decode_choices(b) for b in _compat.saved_choices(database, key)]
    assert saved == [(3,)]


def test_secondary_key_is_the_primary_key_dot_secondary() -> None:
    assert _compat.secondary_key(b"abc") == b"abc.secondary"
    key = _compat.database_key(_always_fails, b"x")
    assert _compat.secondary_key(key) == key + b".secondary"


def test_saved_choices_lists_what_is_saved_under_a_key_and_nothing_without_a_database() -> None:
    database = InMemoryExampleDatabase()
    assert list(_compat.saved_choices(database, b"k")) == []
    database.save(b"k", _compat.encode_choices([True, 2]))
    database.save(b"other", _compat.encode_choices([False]))
    assert list(_compat.saved_choices(database, b"k")) == [_compat.encode_choices([True, 2])]
    assert list(_compat.saved_choices(None, b"k")) == []


# ------------------------------------------------------------------ primary vs secondary


def _reuse_and_shrink(database: InMemoryExampleDatabase, calls: list[int]) -> tuple[Any, bytes]:
    """A tiny @given test run the way testing.py runs its shrinker: reuse and shrink
    phases only, one example."""

    def body(x: int) -> None:
        calls.append(x)
        assert x < 10, f"x = {x}"

    key = _compat.database_key(body, b"simloom.test:pinned")
    test = settings(
        database=database,
        phases=[Phase.reuse, Phase.shrink],
        max_examples=1,
        suppress_health_check=list(HealthCheck),
    )(given(st.integers())(body))
    return test, key


def test_a_failure_saved_under_the_secondary_key_is_replayed_and_shrunk() -> None:
    database = InMemoryExampleDatabase()
    calls: list[int] = []
    test, key = _reuse_and_shrink(database, calls)
    database.save(_compat.secondary_key(key), _compat.encode_choices([1000]))

    with pytest.raises(AssertionError, match="x = 10"):
        test()

    assert calls[0] == 1000  # replayed first ...
    assert calls[-1] == 10  # ... then shrunk to the minimal failure
    # and the minimal failure is now saved under the primary key
    assert [_compat.decode_choices(b) for b in database.fetch(key)] == [(10,)]


def test_a_failure_saved_under_the_primary_key_is_replayed_but_not_reshrunk() -> None:
    database = InMemoryExampleDatabase()
    calls: list[int] = []
    test, key = _reuse_and_shrink(database, calls)
    database.save(key, _compat.encode_choices([1000]))

    with pytest.raises(AssertionError, match="x = 1000"):
        test()

    assert set(calls) == {1000}
    assert [_compat.decode_choices(b) for b in database.fetch(key)] == [(1000,)]


# ------------------------------------------------------------------ raw draws and spans


def test_draws_inside_a_conjecture_data_take_the_given_choices() -> None:
    data = _compat.ConjectureData.for_choices([True, 7, False, 3])
    assert _compat.draw_boolean(data, 0.8) is True
    assert _compat.draw_integer(data, 0, 10) == 7
    assert _compat.draw_boolean(data, 0.8) is False
    assert _compat.draw_integer(data, 1, 5) == 3
    data.freeze()
    assert data.choices == (True, 7, False, 3)


def test_forced_draws_are_recorded_as_choices() -> None:
    data = _compat.ConjectureData.for_choices([False, 0])
    assert _compat.draw_boolean(data, 0.8, forced=True) is True
    assert _compat.draw_integer(data, 0, 2**32 - 1, forced=12345) == 12345
    data.freeze()
    assert data.choices == (True, 12345)


def test_draws_past_the_end_of_the_choices_stop_the_test_case() -> None:
    data = _compat.ConjectureData.for_choices([True])
    _compat.draw_boolean(data, 0.8)
    with pytest.raises(StopTest):
        _compat.draw_integer(data, 0, 10)


def test_spans_wrap_draws_under_their_label() -> None:
    outer = _compat.span_label("simloom.deviation")
    inner = _compat.span_label("simloom.decision:sched")
    data = _compat.ConjectureData.for_choices([True, 0, 1])
    _compat.start_span(data, outer)
    _compat.draw_boolean(data, 0.8)
    _compat.draw_integer(data, 0, 2**32 - 1)
    _compat.start_span(data, inner)
    _compat.draw_integer(data, 1, 2)
    _compat.stop_span(data)
    _compat.stop_span(data)
    data.freeze()
    spans = {span.label: (span.start, span.end) for span in data.spans}
    assert spans[outer] == (0, 3)  # more?, gap, value
    assert spans[inner] == (2, 3)  # value


def test_span_label_is_a_stable_64_bit_integer_per_name() -> None:
    label = _compat.span_label("simloom.deviation")
    assert isinstance(label, int)
    assert 0 <= label < 2**64
    assert _compat.span_label("simloom.deviation") == label
    assert _compat.span_label("simloom.decision:sched") != label
    # the same in another process with another string-hash seed
    script = (
        "from simloom.hypothesis import _compat; print(_compat.span_label('simloom.deviation'))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert int(out.stdout) == label


class _Pair(_compat.SearchStrategy[tuple[bool, int]]):
    """A strategy made of raw draws, like ``universes()``."""

    def __init__(self, seen: list[Any]) -> None:
        super().__init__()
        self.seen = seen

    def do_draw(self, data: Any) -> tuple[bool, int]:
        self.seen.append(data)
        return _compat.draw_boolean(data, 0.8), _compat.draw_integer(data, 5, 1000)


def test_raw_draws_shrink_toward_false_and_the_minimum() -> None:
    seen: list[Any] = []
    found: list[tuple[bool, int]] = []

    @settings(database=None, derandomize=True)
    @given(_Pair(seen))
    def always_fails(pair: tuple[bool, int]) -> None:
        found.append(pair)
        raise AssertionError

    with pytest.raises(AssertionError):
        always_fails()
    assert found[-1] == (False, 5)


def test_provider_of_a_running_test_case_and_its_random() -> None:
    seen: list[Any] = []

    @settings(database=None, max_examples=5)
    @given(_Pair(seen))
    def passes(pair: tuple[bool, int]) -> None:
        pass

    passes()
    assert seen
    provider = _compat.provider_of(seen[-1])
    assert isinstance(provider, _compat.PrimitiveProvider)
    assert isinstance(provider, _compat.HypothesisProvider)
    assert isinstance(_compat.provider_random(provider), random.Random)


def test_provider_of_something_without_a_provider_is_none() -> None:
    assert _compat.provider_of(object()) is None  # type: ignore[arg-type]


def test_the_simloom_backend_is_registered_with_hypothesis() -> None:
    assert "simloom" in _compat.AVAILABLE_PROVIDERS
    settings(backend="simloom")  # accepted: no InvalidArgument


def test_ci_environment_variables_are_the_ones_that_load_the_ci_profile() -> None:
    names = _compat.ci_environment_variables()
    assert "CI" in names
    assert "GITHUB_ACTIONS" in names
    code = "import hypothesis; from hypothesis import settings; print(settings._current_profile)"
    env = {k: v for k, v in os.environ.items() if k not in names}
    outside = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert outside.stdout.strip() == "default"
    inside = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "CI": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert inside.stdout.strip() == "ci"


# ------------------------------------------------------------- registered randoms


class _LibraryRandom(random.Random):
    """Stands for a library's module-level generator."""


_LIBRARY_RANDOM = _LibraryRandom(3)


def test_registered_randoms_lists_the_random_module_and_what_register_random_added() -> None:
    hypothesis.register_random(_LIBRARY_RANDOM)
    registered = _compat.registered_randoms()
    generators = [generator for _, generator in registered]
    assert generators[0] is random  # Hypothesis manages the global instance itself
    assert any(generator is _LIBRARY_RANDOM for generator in generators)
    keys = [key for key, _ in registered]
    assert keys == sorted(keys)


def test_the_registry_version_changes_when_a_generator_is_registered() -> None:
    before = _compat.random_registry_version()
    fresh = _LibraryRandom(4)
    hypothesis.register_random(fresh)
    assert _compat.random_registry_version() != before
    assert any(generator is fresh for _, generator in _compat.registered_randoms())
