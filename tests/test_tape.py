"""Tapes: a universe's recorded choices, and the files they live in.

A tape round-trips through JSON and CBOR (bytes and files), through its draw sequence,
and reading anything that is not a valid tape raises a *named* ``TapeError`` (all of
them ``ValueError``): corrupt, truncated, foreign or newer-version. Writing a tape
file is atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import simloom
from simloom import (
    CorruptTapeError,
    ForeignTapeError,
    Tape,
    TapeError,
    TapeVersionError,
    TruncatedTapeError,
)

SAMPLE = [(0, 1), (7, 3), (8, 2), (1_000_000, 41), (2**40, 7)]

PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def sample() -> Tape:
    return Tape(SAMPLE)


def tape_json(deviations: Any, version: Any = 1, fmt: Any = "simloom.tape") -> bytes:
    return json.dumps({"format": fmt, "version": version, "deviations": deviations}).encode()


# ------------------------------------------------------------------ the value


def test_empty_tape_is_fifo() -> None:
    tape = Tape()
    assert tape.deviations == ()
    assert len(tape) == 0
    assert tape == Tape([])
    assert "FIFO" in repr(tape)
    assert tape.to_draws() == [0]


def test_a_tape_lists_its_deviations_in_decision_order() -> None:
    tape = sample()
    assert tape.deviations == tuple(SAMPLE)
    assert len(tape) == len(SAMPLE)
    assert tape == Tape(list(SAMPLE))
    assert tape != Tape(SAMPLE[:-1])
    assert hash(tape) == hash(Tape(SAMPLE))


def test_deviations_is_a_lazy_read_only_sequence_equal_to_the_tuple_of_its_pairs() -> None:
    deviations = sample().deviations
    assert not isinstance(deviations, tuple)  # a view of the engine's storage
    assert isinstance(deviations, Sequence)
    assert deviations == tuple(SAMPLE) and tuple(SAMPLE) == deviations
    assert deviations == list(SAMPLE) and deviations != SAMPLE[:-1]
    assert deviations != tuple(reversed(SAMPLE)) and deviations != 5
    assert len(deviations) == len(SAMPLE)
    assert deviations[0] == SAMPLE[0] and deviations[-1] == SAMPLE[-1]
    assert deviations[1:3] == tuple(SAMPLE[1:3])  # a slice is a tuple, as before
    assert deviations[::-2] == tuple(SAMPLE[::-2]) and deviations[10:] == ()
    assert list(deviations) == SAMPLE and list(reversed(deviations)) == SAMPLE[::-1]
    assert (8, 2) in deviations and (8, 3) not in deviations
    assert deviations.index((8, 2)) == 2 and deviations.count((8, 2)) == 1
    for bad in (len(SAMPLE), -len(SAMPLE) - 1):
        with pytest.raises(IndexError):
            deviations[bad]
    with pytest.raises(ValueError, match="not a deviation"):
        deviations.index((8, 3))
    with pytest.raises(TypeError):
        hash(deviations)
    assert Tape(deviations) == sample()


def test_a_large_tape_reads_any_deviation_without_decoding_it_all() -> None:
    pairs = [(3 * i + i % 2, 1 + i % 300) for i in range(100_000)]
    deviations = Tape(pairs).deviations
    for at in (0, 1, 63, 64, 65, 4_097, 99_999, -1, -64):
        assert deviations[at] == pairs[at]
    assert deviations[50_000:50_010] == tuple(pairs[50_000:50_010])
    assert deviations[-3:] == tuple(pairs[-3:])


def test_a_random_walk_tape_costs_at_most_four_bytes_per_deviation() -> None:
    async def two_spinners() -> None:
        async def spin() -> None:
            for _ in range(10_000):
                await asyncio.sleep(0)

        await asyncio.gather(spin(), spin())

    tape = simloom.run(two_spinners, seed=3, scheduler="random").tape
    assert len(tape) > 5_000  # a coin flip at nearly every one of 20,000 steps
    # sys.getsizeof counts the tape's storage: at least a byte per deviation, and
    # far from the 16 bytes of a pair of 64-bit integers (or a Python tuple's 56).
    assert len(tape) <= sys.getsizeof(tape) <= 4 * len(tape) + 1024


def test_large_indexes_and_values_survive_the_compact_storage() -> None:
    pairs = [(0, 2**64 - 1), (1, 1), (2**64 - 2, 2**40)]
    tape = Tape(pairs)
    assert tape.deviations == pairs
    assert Tape.loads(tape.to_cbor()) == tape == Tape.from_draws(tape.to_draws())
    with pytest.raises(CorruptTapeError, match="out of range"):
        Tape([(2**64 - 1, 1)])


def test_deviations_may_be_given_as_lists_and_int_likes() -> None:
    assert Tape([[0, 1], (True, 2.0)]) == Tape([(0, 1), (1, 2)])
    assert Tape(iter([(5, 1)])).deviations == ((5, 1),)
    with pytest.raises(CorruptTapeError, match=r"\('a', 1\)"):
        Tape([(0, 1), ("a", 1)])


def test_replaying_the_empty_tape_is_the_fifo_schedule() -> None:
    async def interleaved() -> list[int]:
        order: list[int] = []

        async def worker(n: int) -> None:
            for _ in range(3):
                order.append(n)
                await asyncio.sleep(0)

        await asyncio.gather(*(worker(n) for n in range(3)))
        return order

    replayed = simloom.replay(interleaved, Tape())
    fifo = simloom.run(interleaved, scheduler="fifo")
    assert replayed.value == [0, 1, 2] * 3
    assert replayed.digest == fifo.digest
    assert replayed.deviations == 0
    assert not replayed.misaligned


def test_tape_rejects_decreasing_indexes() -> None:
    with pytest.raises(CorruptTapeError, match="increase"):
        Tape([(3, 1), (2, 1)])
    with pytest.raises(CorruptTapeError, match="increase"):
        Tape([(3, 1), (3, 2)])


def test_tape_rejects_a_zero_value() -> None:
    with pytest.raises(CorruptTapeError, match="value 0"):
        Tape([(5, 0)])


def test_tape_rejects_a_negative_index_as_a_tape_error() -> None:
    with pytest.raises(TapeError):
        Tape([(-1, 1)])


# --------------------------------------------------------------- round trips


@pytest.mark.parametrize("tape", [Tape(), sample()], ids=["fifo", "sample"])
def test_json_round_trip(tape: Tape) -> None:
    text = tape.to_json()
    document = json.loads(text)
    assert document == {
        "format": "simloom.tape",
        "version": 1,
        "deviations": [list(pair) for pair in tape.deviations],
    }
    assert Tape.loads(text) == tape
    assert Tape.loads(text.encode()) == tape
    assert tape.dumps() == text.encode()
    assert tape.dumps("json") == text.encode()


@pytest.mark.parametrize("tape", [Tape(), sample()], ids=["fifo", "sample"])
def test_cbor_round_trip(tape: Tape) -> None:
    data = tape.to_cbor()
    assert isinstance(data, bytes)
    assert tape.dumps("cbor") == data
    assert Tape.loads(data) == tape
    assert Tape.loads(bytearray(data)) == tape
    assert Tape.loads(memoryview(data)) == tape


def test_loads_returns_a_simloom_tape() -> None:
    assert type(Tape.loads(sample().dumps("cbor"))) is Tape
    assert type(Tape.loads(sample().dumps("json"))) is Tape
    assert type(Tape.from_draws(sample().to_draws())) is Tape


def test_cbor_is_more_compact_than_json() -> None:
    assert len(sample().to_cbor()) < len(sample().to_json())
    assert len(Tape().to_cbor()) <= 16


@pytest.mark.parametrize(
    ("name", "expected_start"),
    [("run.json", b"{"), ("run.cbor", None), ("run.CBOR", None), ("run.tape", b"{")],
)
def test_dump_picks_the_format_from_the_suffix(
    tmp_path: Path, name: str, expected_start: bytes | None
) -> None:
    path = tmp_path / name
    sample().dump(path)
    data = path.read_bytes()
    if expected_start is None:
        assert data == sample().to_cbor()
    else:
        assert data == sample().to_json().encode()
    assert Tape.load(path) == sample()
    assert Tape.load(str(path)) == sample()


def test_dump_format_argument_overrides_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    sample().dump(path, format="cbor")
    assert path.read_bytes() == sample().to_cbor()
    assert Tape.load(path) == sample()


def test_dump_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "run.cbor"
    sample().dump(path)
    assert Tape.load(path) == sample()


def test_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(simloom.SimloomUsageError, match="xml"):
        sample().dumps("xml")  # type: ignore[arg-type]
    with pytest.raises(simloom.SimloomUsageError, match="xml"):
        sample().dump(tmp_path / "run.json", format="xml")  # type: ignore[arg-type]
    assert not (tmp_path / "run.json").exists()


def test_loads_needs_bytes_or_text() -> None:
    with pytest.raises(simloom.SimloomUsageError, match="bytes or str"):
        Tape.loads(42)  # type: ignore[arg-type]


def test_load_of_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(simloom.SimloomUsageError, match="directory"):
        Tape.load(tmp_path)


def test_load_of_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Tape.load(tmp_path / "nope.json")


def test_a_recorded_tape_survives_a_file_round_trip_and_replays(tmp_path: Path) -> None:
    async def racy() -> list[int]:
        order: list[int] = []

        async def worker(n: int) -> None:
            for _ in range(4):
                order.append(n)
                await asyncio.sleep(0)

        await asyncio.gather(*(worker(n) for n in range(4)))
        return order

    result = simloom.run(racy, seed=11, scheduler="random")
    assert len(result.tape) > 0
    for name in ("found.json", "found.cbor"):
        result.tape.dump(tmp_path / name)
        again = simloom.replay(racy, Tape.load(tmp_path / name))
        assert again.digest == result.digest
        assert again.value == result.value


# ---------------------------------------------------------------- draws


def test_to_draws_is_the_sparse_gap_encoding() -> None:
    assert Tape([(0, 1), (7, 3), (8, 2)]).to_draws() == [1, 0, 1, 1, 6, 3, 1, 0, 2, 0]


@pytest.mark.parametrize("tape", [Tape(), sample(), Tape([(0, 5)])], ids=["fifo", "sample", "one"])
def test_from_draws_inverts_to_draws(tape: Tape) -> None:
    assert Tape.from_draws(tape.to_draws()) == tape


def test_from_draws_without_the_final_stop_is_truncated() -> None:
    with pytest.raises(TruncatedTapeError):
        Tape.from_draws([1, 2])
    with pytest.raises(TruncatedTapeError):
        Tape.from_draws([])


def test_from_draws_with_trailing_draws_is_corrupt() -> None:
    with pytest.raises(CorruptTapeError, match="after the final"):
        Tape.from_draws([0, 5])


def test_from_draws_with_a_bad_more_flag_is_corrupt() -> None:
    with pytest.raises(CorruptTapeError, match="0 or 1"):
        Tape.from_draws([2, 0, 1, 0])


def test_from_draws_with_a_zero_value_is_corrupt() -> None:
    with pytest.raises(CorruptTapeError, match="value 0"):
        Tape.from_draws([1, 3, 0, 0])


# ------------------------------------------------------------ the error types


@pytest.mark.parametrize(
    "kind", [TapeError, CorruptTapeError, TruncatedTapeError, ForeignTapeError, TapeVersionError]
)
def test_every_tape_error_is_a_value_error(kind: type[Exception]) -> None:
    assert issubclass(kind, TapeError)
    assert issubclass(kind, ValueError)
    assert issubclass(kind, simloom.SimloomError)


# ---------------------------------------------------------------------- corrupt


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (tape_json([[3, 1], [2, 1]]), "increase"),
        (tape_json([[3, 1], [3, 1]]), "increase"),
        (tape_json([[3, 0]]), "value 0"),
        (tape_json([[1, "x"]]), "non-negative integers"),
        (tape_json([["1", 2]]), "non-negative integers"),
        (tape_json([[-1, 2]]), "non-negative integers"),
        (tape_json([[1.5, 2]]), "non-negative integers"),
        (tape_json([[1, 2, 3]]), "[index, value]"),
        (tape_json([5]), "[index, value]"),
        (tape_json({}), "deviations"),
        (tape_json(None), "deviations"),
        (tape_json([], version="1"), "version"),
        (tape_json([], version=None), "version"),
        (tape_json([], version=0), "version 0"),
        (b'{"format": "simloom.tape", "deviations": []}', "version"),
        (b'{"format": "simloom.tape", "version": 1}', "deviations"),
    ],
    ids=[
        "decreasing",
        "repeated",
        "zero-value",
        "text-value",
        "text-index",
        "negative",
        "float",
        "triple",
        "not-a-pair",
        "object-deviations",
        "null-deviations",
        "text-version",
        "null-version",
        "version-0",
        "no-version",
        "no-deviations",
    ],
)
def test_corrupt_json_tape_is_a_corrupt_tape_error(data: bytes, why: str) -> None:
    with pytest.raises(CorruptTapeError) as info:
        Tape.loads(data)
    assert str(info.value).startswith("corrupt simloom tape")
    assert why in str(info.value)


def _cbor_tape(deviations: bytes, version: bytes = b"\x01") -> bytes:
    """A CBOR tape by hand: [\"sltp\", version, deviations]."""
    return b"\x83" + b"\x64sltp" + version + deviations


def test_hand_built_cbor_matches_the_encoder() -> None:
    assert _cbor_tape(b"\x80") == Tape().to_cbor()
    assert _cbor_tape(b"\x81\x82\x07\x03") == Tape([(7, 3)]).to_cbor()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_cbor_tape(b"\x82\x82\x03\x01\x82\x02\x01"), "increase"),
        (_cbor_tape(b"\x81\x82\x03\x00"), "value 0"),
        (_cbor_tape(b"\x81\x82\x03\x61x"), "non-negative integers"),
        (_cbor_tape(b"\x81\x82\x20\x01"), "non-negative integers"),
        (_cbor_tape(b"\x81\x83\x01\x02\x03"), "[index, value]"),
        (_cbor_tape(b"\xa0"), "deviations"),
        (_cbor_tape(b"\x80", version=b"\x61\x31"), "version"),
        (_cbor_tape(b"\x80", version=b"\x00"), "version 0"),
        (b"\x84\x64sltp\x01\x80\x00", "3 fields"),
    ],
    ids=[
        "decreasing",
        "zero-value",
        "text-value",
        "negative-index",
        "triple",
        "map-deviations",
        "text-version",
        "version-0",
        "extra-field",
    ],
)
def test_corrupt_cbor_tape_is_a_corrupt_tape_error(data: bytes, why: str) -> None:
    with pytest.raises(CorruptTapeError) as info:
        Tape.loads(data)
    assert why in str(info.value)


def test_corrupt_file_is_a_corrupt_tape_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(tape_json([[3, 1], [2, 1]]))
    with pytest.raises(CorruptTapeError):
        Tape.load(path)


# -------------------------------------------------------------------- truncated


def _big_tape() -> Tape:
    return Tape([(i * 1_000_003 + 17, 1 + i % 200) for i in range(40)] + [(2**63, 2**40)])


def test_every_truncation_of_a_cbor_tape_is_a_tape_error() -> None:
    for tape in (Tape(), sample(), _big_tape()):
        data = tape.to_cbor()
        for length in range(len(data)):
            with pytest.raises(TapeError) as info:
                Tape.loads(data[:length])
            assert isinstance(info.value, TruncatedTapeError), (length, info.value)


def test_truncated_cbor_tape_says_so() -> None:
    data = sample().to_cbor()
    for cut in (1, 2, 5, len(data) // 2, len(data) - 1):
        with pytest.raises(TruncatedTapeError, match="truncated simloom tape"):
            Tape.loads(data[:cut])


def test_truncated_json_tape_is_a_truncated_tape_error() -> None:
    text = sample().to_json()
    # Cut after the opening brace, mid-key, mid-number, before the closing brackets.
    cuts = [1, 5, len(text) // 2, len(text) - 3, len(text) - 1]
    for cut in cuts:
        with pytest.raises(TruncatedTapeError, match="truncated simloom tape"):
            Tape.loads(text[:cut])


def test_every_truncation_of_a_json_tape_is_a_tape_error() -> None:
    text = sample().to_json()
    for length in range(len(text)):
        with pytest.raises(TapeError):
            Tape.loads(text[:length])


def test_truncated_file_is_a_truncated_tape_error(tmp_path: Path) -> None:
    for name, data in (("cut.cbor", sample().to_cbor()), ("cut.json", sample().dumps("json"))):
        path = tmp_path / name
        path.write_bytes(data[: len(data) - 2])
        with pytest.raises(TruncatedTapeError):
            Tape.load(path)


def test_empty_data_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "empty.cbor"
    path.write_bytes(b"")
    with pytest.raises(TruncatedTapeError, match="empty"):
        Tape.load(path)
    for empty in (b"", "", b"  \n\t"):
        with pytest.raises(TruncatedTapeError, match="empty"):
            Tape.loads(empty)


# ---------------------------------------------------------------------- foreign


@pytest.mark.parametrize(
    "data",
    [
        PNG_HEADER,
        PNG_HEADER + b"\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00",
        b"GIF89a",
        b"%PDF-1.7\n",
        b"hello, world\n",
        b"[1, 2]",
        b"[]",
        b"null",
        b"true",
        b"42",
        b'"simloom.tape"',
        b'{"a": 1}',
        b'{"format": "other.tape", "version": 1, "deviations": []}',
        b'{"format": 1, "version": 1, "deviations": []}',
        b"{not json}",
        b"\x83\x64xxxx\x01\x80",
        b"\x83\x01\x01\x80",
        b"\xa1\x61a\x01",
    ],
    ids=[
        "png-header",
        "png-start",
        "gif",
        "pdf",
        "text",
        "json-array",
        "json-empty-array",
        "json-null",
        "json-true",
        "json-number",
        "json-string",
        "json-other-object",
        "json-other-format",
        "json-numeric-format",
        "broken-json",
        "cbor-wrong-marker",
        "cbor-no-marker",
        "cbor-map",
    ],
)
def test_foreign_data_is_a_foreign_tape_error(data: bytes) -> None:
    with pytest.raises(ForeignTapeError, match="not a simloom tape"):
        Tape.loads(data)


def test_random_bytes_are_a_foreign_tape_error() -> None:
    rng = random.Random(20_241_124)
    valid_starts = {0x83, ord("{")}  # a CBOR tape's array header, a JSON object
    tried = 0
    wrong: list[tuple[bytes, str]] = []
    while tried < 500:
        data = rng.randbytes(rng.randrange(1, 64))
        stripped = data.lstrip(b" \t\r\n\x0b\x0c")
        if not stripped or stripped[0] in valid_starts:
            continue
        tried += 1
        try:
            Tape.loads(data)
        except ForeignTapeError:
            continue
        except TapeError as exc:
            wrong.append((data, type(exc).__name__))
        else:  # pragma: no cover - random bytes are never a tape
            wrong.append((data, "accepted"))
    assert wrong == [], f"{len(wrong)} of {tried} random inputs, e.g. {wrong[:3]}"


def test_random_bytes_never_raise_anything_but_a_tape_error() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        data = rng.randbytes(rng.randrange(0, 48))
        with contextlib.suppress(TapeError):
            Tape.loads(data)


def test_hostile_cbor_lengths_fail_fast_with_a_tape_error() -> None:
    huge = b"\xff" * 8
    for data in (
        b"\x5b" + huge,  # byte string of 2**64-1 bytes
        b"\x7b" + huge,  # text string of 2**64-1 bytes
        b"\x9b" + huge,  # array of 2**64-1 items
        b"\xbb" + huge,  # map of 2**64-1 pairs
        b"\x83\x64sltp\x01\x9b" + huge,  # deviations array of 2**64-1 items
        b"\x81" * 100_000,  # deeply nested arrays
    ):
        with pytest.raises(TapeError):
            Tape.loads(data)


def test_foreign_file_is_a_foreign_tape_error(tmp_path: Path) -> None:
    path = tmp_path / "picture.cbor"
    path.write_bytes(PNG_HEADER)
    with pytest.raises(ForeignTapeError):
        Tape.load(path)


def test_json_tape_that_is_not_utf8_is_foreign() -> None:
    with pytest.raises(ForeignTapeError):
        Tape.loads(b'{"format": "\xff\xfe"}')


# ----------------------------------------------------------------- new version


def test_newer_json_version_is_a_version_error_naming_it(tmp_path: Path) -> None:
    document = json.loads(sample().to_json())
    document["version"] = 99
    path = tmp_path / "future.json"
    path.write_text(json.dumps(document))
    with pytest.raises(TapeVersionError) as info:
        Tape.load(path)
    message = str(info.value)
    assert "99" in message
    assert "upgrade simloom" in message
    assert isinstance(info.value, ValueError)


def test_newer_cbor_version_is_a_version_error_naming_it() -> None:
    data = _cbor_tape(b"\x80", version=b"\x18\x63")  # version 99
    with pytest.raises(TapeVersionError, match="99"):
        Tape.loads(data)


def test_newer_version_wins_over_unknown_content() -> None:
    # A newer simloom may change the rest of the document: the version is the error.
    data = b'{"format": "simloom.tape", "version": 99, "deviations": "v99 layout"}'
    with pytest.raises(TapeVersionError, match="99"):
        Tape.loads(data)


# ------------------------------------------------------------- atomic writes


def test_dump_leaves_no_temporary_files(tmp_path: Path) -> None:
    for name in ("a.json", "b.cbor", "a.json"):
        sample().dump(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.cbor"]


def test_dump_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    Tape().dump(path)
    sample().dump(path)
    assert Tape.load(path) == sample()
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_failed_dump_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.cbor"
    Tape().dump(path)
    before = path.read_bytes()

    def fail(src: Any, dst: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk on fire"):
        sample().dump(path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert Tape.load(path) == Tape()
    assert [p.name for p in tmp_path.iterdir()] == ["run.cbor"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.json"
    sample().dump(path)
    before = path.read_bytes()

    def fail(fd: int) -> None:
        raise OSError("fsync failed")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="fsync failed"):
        Tape().dump(path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


# ------------------------------------------------------------ FIFO is tiny


def test_a_fifo_run_of_100000_steps_records_a_tape_of_at_most_16_bytes() -> None:
    async def main() -> None:
        async def worker() -> None:
            for _ in range(10_000):
                await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(10)))

    result = simloom.run(main, scheduler="fifo")
    assert result.error is None
    assert result.steps >= 100_000
    assert result.decisions > 0
    assert result.tape == Tape()
    assert len(result.tape.to_cbor()) <= 16
