"""Argument checks shared by every public entry point.

Each check names the argument, says what is valid (type and range) and shows what
was given, and raises :class:`~simloom.SimloomUsageError`. They are written once
here so ``run``, ``replay``, ``SimLoop``, ``@simloom.test`` and ``universes()``
reject the same values with the same words, and so no odd value reaches the Rust
engine, where it would surface as a bare ``OverflowError`` or ``TypeError``.

Owns: what a valid option value is. Must not: know what the options do.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import SimloomUsageError

__all__ = ["U32_MAX", "U64_MAX", "check_flag", "check_int", "check_labels"]

#: The largest values the engine's counters hold (Rust ``u32`` / ``u64``).
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1


def _bound_text(value: int) -> str:
    for power in (32, 64):
        if value == 2**power - 1:
            return f"2**{power} - 1"
    return str(value)


def check_int(name: str, value: object, *, minimum: int = 1, maximum: int = U64_MAX) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; ``bool`` is not an int here
    (``livelock_steps=True`` is a mistake, not 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SimloomUsageError(
            f"{name} must be an integer in [{minimum}, {_bound_text(maximum)}], "
            f"got {value!r} ({type(value).__name__})"
        )
    if not minimum <= value <= maximum:
        raise SimloomUsageError(
            f"{name} must be an integer in [{minimum}, {_bound_text(maximum)}], got {value!r}"
        )
    return value


def check_flag(name: str, value: object) -> bool:
    """``value`` must be ``True`` or ``False`` (not a truthy string such as ``'no'``)."""
    if not isinstance(value, bool):
        raise SimloomUsageError(f"{name} must be True or False, got {value!r}")
    return value


def check_labels(name: str, value: object) -> list[str]:
    """One label or an iterable of labels, each a non-empty string."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        raise SimloomUsageError(
            f"{name} must be a label or a list of labels (non-empty strings), got {value!r}"
        )
    labels = list(value)
    for label in labels:
        if not isinstance(label, str) or not label:
            raise SimloomUsageError(f"{name} labels must be non-empty strings, got {label!r}")
    return labels
