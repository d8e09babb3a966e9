"""The hash seed: whether ``str``/``bytes`` hashing is pinned in this process, and
re-executing the process with it pinned.

CPython randomises the hashes of ``str`` and ``bytes`` per process unless
``PYTHONHASHSEED`` is set, so a set of strings iterates in a different order in
every process. Within one process that changes nothing (a replay uses the same
hashes); across processes -- a seed or a saved failure replayed tomorrow, digests
compared between workers -- it can. simloom cannot change the hash seed of a
running interpreter; it can say whether it is pinned, re-execute the process with
it pinned (:func:`pin_hashseed`, ``--simloom-pin-hashseed``), and give every process
it starts a pinned one (:func:`pinned_environment`).

Owns: reading, describing and pinning ``PYTHONHASHSEED``. Must not: guess the seed
of an unpinned interpreter (it is not observable).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from .errors import SimloomUsageError

__all__ = [
    "HASHSEED_VARIABLE",
    "current_hashseed",
    "describe_hashseed",
    "pin_hashseed",
    "pinned_environment",
]

HASHSEED_VARIABLE = "PYTHONHASHSEED"
#: Set in the environment of a process :func:`pin_hashseed` re-executed, so that a
#: second re-execution (the pin did not take) is an error instead of a loop.
REEXECUTED_VARIABLE = "SIMLOOM_HASHSEED_REEXECUTED"
MAX_HASHSEED = 4_294_967_295

#: PYTHONHASHSEED as this process started (read at import, before the program can
#: change os.environ for its children).
_STARTUP_VALUE = os.environ.get(HASHSEED_VARIABLE)
#: Whether pin_hashseed() re-executed this process (taken out of the environment
#: so that processes this one starts do not inherit it).
_REEXECUTED = bool(os.environ.pop(REEXECUTED_VARIABLE, ""))


def _parse(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None  # unset, "random", or not a number (Python refuses to start then)
    seed = int(value)
    return seed if seed <= MAX_HASHSEED else None


def current_hashseed() -> int | None:
    """The hash seed this interpreter runs with, or ``None`` if it is random."""
    if not sys.flags.hash_randomization:
        return 0
    if sys.flags.ignore_environment:
        return None  # -E / -I: PYTHONHASHSEED was ignored
    return _parse(_STARTUP_VALUE)


def describe_hashseed() -> str:
    """One line for reports: the pinned seed, or why a replay elsewhere may differ."""
    seed = current_hashseed()
    if seed is not None:
        return f"PYTHONHASHSEED={seed} (pinned; re-run elsewhere with the same)"
    return (
        "random (PYTHONHASHSEED not pinned; in another process a re-run can differ if "
        "the program depends on str/bytes hash order: --simloom-pin-hashseed)"
    )


def pinned_environment(
    environment: Mapping[str, str] | None = None, seed: int | None = None
) -> dict[str, str]:
    """``environment`` (default: ``os.environ``) with ``PYTHONHASHSEED`` pinned: to
    ``seed``, else to this process's own pinned seed, else to 0. Every process
    simloom starts gets its environment from here."""
    pinned = dict(os.environ if environment is None else environment)
    if seed is None:
        seed = current_hashseed() or 0
    pinned[HASHSEED_VARIABLE] = str(_check_seed(seed))
    return pinned


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_HASHSEED:
        raise SimloomUsageError(
            f"the hash seed must be an integer in [0, {MAX_HASHSEED}], got {seed!r}"
        )
    return seed


def pin_hashseed(seed: int | None = None) -> None:
    """Make ``str``/``bytes`` hashes, and so set and dict orders, the same in every
    run of this program: if the hash seed is not pinned (or not to ``seed``),
    re-execute the current process with ``PYTHONHASHSEED`` set (to ``seed``, default
    0), with the same interpreter, options and arguments. Otherwise return at once.

    Call it first thing (``if __name__ == "__main__": simloom.pin_hashseed()``):
    whatever the process did before is done again. Under pytest, pass
    ``--simloom-pin-hashseed`` instead.
    """
    wanted = None if seed is None else _check_seed(seed)
    current = current_hashseed()
    if current is not None and wanted in (None, current):
        return
    if sys.flags.ignore_environment:
        raise SimloomUsageError(
            "cannot pin the hash seed: this interpreter ignores PYTHONHASHSEED "
            "(started with -E or -I); set PYTHONHASHSEED and drop the flag"
        )
    if _REEXECUTED:
        raise SimloomUsageError(
            "simloom.pin_hashseed() re-executed the process, but the hash seed is still "
            f"not pinned (PYTHONHASHSEED={os.environ.get(HASHSEED_VARIABLE)!r})"
        )
    environment = pinned_environment(seed=0 if wanted is None else wanted)
    environment[REEXECUTED_VARIABLE] = "1"
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
