"""How fast each scheduler finds each bug of the zoo (``tests/zoo``).

    python benchmarks/zoo_rates.py                  # the table, seeds 0..1999
    python benchmarks/zoo_rates.py --markdown       # the same as a Markdown table
    python benchmarks/zoo_rates.py --seeds 500 -s random -s pct:d=5 deep_ordering
    python benchmarks/zoo_rates.py -s 'random|pct' -s 'random|pct:auto' --no-controls

For every zoo program (bugs, then controls) and every scheduler it runs
``simloom.run(program, seed=s, scheduler=...)`` for ``s = 0, 1, ...`` and reports:

* **first failure** -- universes run until the first failure (seed + 1) within seeds
  ``0..N-1`` (``--seeds N``, default 2,000), or ``-`` if none failed;
* **find rate** -- the percentage of failing universes among seeds ``0..R-1``
  (``R = min(N, --rate-seeds)``, default 1,000);
* **deviations** -- ``RunResult.deviations`` of the first failing universe (how many
  decisions it took away from FIFO), plus its error type and decision count.

A bug should fail somewhere; a control must never fail (a failing control is flagged
with ``!`` and makes the script exit 1). This is a measurement, not a test, and it is
not run by ``make bench``; ``tests/test_zoo.py`` holds the checks.

Extending it: a :class:`Cell` is one (program, scheduler) measurement, and the table
is rendered from :data:`COLUMNS`, a list of (header, formatter) pairs. To report
something new (shrunk tapes, say), compute it in :func:`measure` -- or in a hook
passed as ``extra`` -- store it in ``Cell.extra`` and append a :class:`Column`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import simloom
import zoo

DEFAULT_SCHEDULERS = ("random", "pct", "pct:auto")


@dataclass
class Cell:
    """One program under one scheduler."""

    program: str
    kind: str  # "bug" or "control"
    scheduler: str
    seeds: int  # N: first failure searched in seeds 0..N-1
    rate_seeds: int  # R: find rate over seeds 0..R-1
    universes: int = 0  # universes actually run
    failures_in_rate: int = 0
    first_seed: int | None = None
    first_deviations: int | None = None
    first_decisions: int | None = None
    first_error: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.first_seed is not None

    @property
    def rate(self) -> float:
        return 100.0 * self.failures_in_rate / self.rate_seeds if self.rate_seeds else 0.0

    @property
    def unexpected(self) -> bool:
        """A control that failed."""
        return self.kind == "control" and self.found


Extra = Callable[[zoo.Program, str, "Cell", simloom.RunResult | None], None]


def measure(
    name: str,
    scheduler: str,
    seeds: int,
    rate_seeds: int,
    extra: Sequence[Extra] = (),
) -> Cell:
    """Run seeds ``0..max(R, first failure)`` of one program under one scheduler."""
    program = zoo.PROGRAMS[name]
    kind = "bug" if name in zoo.BUGS else "control"
    rate_seeds = min(rate_seeds, seeds)
    cell = Cell(name, kind, scheduler, seeds, rate_seeds)
    first: simloom.RunResult | None = None
    started = time.perf_counter()
    for seed, result in enumerate(zoo.explore(program, scheduler, range(seeds))):
        cell.universes += 1
        if not result.ok:
            if seed < rate_seeds:
                cell.failures_in_rate += 1
            if first is None:
                first = result
                cell.first_seed = seed
                cell.first_deviations = result.deviations
                cell.first_decisions = result.decisions
                cell.first_error = type(result.error).__name__
        if first is not None and seed + 1 >= rate_seeds:
            break
    cell.seconds = time.perf_counter() - started
    for hook in extra:
        hook(program, scheduler, cell, first)
    return cell


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Cell], str]
    right: bool = True


def _first(cell: Cell) -> str:
    if cell.first_seed is None:
        return f">{cell.seeds}" if cell.kind == "bug" else "-"
    return f"{cell.first_seed + 1}{' !' if cell.unexpected else ''}"


def _rate(cell: Cell) -> str:
    return f"{cell.rate:.1f}%"


def _maybe(value: object) -> str:
    return "-" if value is None else str(value)


COLUMNS: list[Column] = [
    Column("program", lambda c: c.program, right=False),
    Column("kind", lambda c: c.kind, right=False),
    Column("scheduler", lambda c: c.scheduler, right=False),
    Column("first failure", _first),
    Column("find rate", _rate),
    Column("deviations", lambda c: _maybe(c.first_deviations)),
    Column("decisions", lambda c: _maybe(c.first_decisions)),
    Column("error", lambda c: _maybe(c.first_error), right=False),
    Column("time", lambda c: f"{c.seconds:.1f}s"),
]


def render(cells: Sequence[Cell], *, markdown: bool) -> str:
    rows = [[column.cell(c) for column in COLUMNS] for c in cells]
    headers = [column.header for column in COLUMNS]
    if markdown:
        rows = [[value.replace("|", "\\|") for value in row] for row in rows]
        align = ["---:" if column.right else "---" for column in COLUMNS]
        lines = [headers, align, *rows]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(COLUMNS))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if col.right else v.ljust(w)
            for v, w, col in zip(values, widths, COLUMNS, strict=True)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def summary(cells: Sequence[Cell], schedulers: Sequence[str]) -> str:
    lines = []
    for scheduler in schedulers:
        mine = [c for c in cells if c.scheduler == scheduler]
        bugs = [c for c in mine if c.kind == "bug"]
        found = [c.program for c in bugs if c.found]
        missed = [c.program for c in bugs if not c.found]
        broken = [c.program for c in mine if c.unexpected]
        seeds = mine[0].seeds if mine else 0
        text = f"{scheduler}: found {len(found)}/{len(bugs)} bugs within {seeds} universes"
        if missed:
            text += f"; missed: {', '.join(missed)}"
        if broken:
            text += f"; CONTROLS FAILED: {', '.join(broken)}"
        lines.append(text)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("programs", nargs="*", help="zoo programs (default: all)")
    parser.add_argument("--seeds", type=int, default=2000, help="N: seeds 0..N-1 (2000)")
    parser.add_argument(
        "--rate-seeds", type=int, default=1000, help="R: find rate over seeds 0..R-1 (1000)"
    )
    parser.add_argument(
        "-s",
        "--scheduler",
        action="append",
        dest="schedulers",
        help="a scheduler to measure; repeat for several (default: random, pct, pct:auto); "
        "'random|pct' alternates across seeds (even seeds random, odd seeds pct)",
    )
    parser.add_argument("--no-controls", action="store_true", help="bugs only")
    parser.add_argument("--markdown", action="store_true", help="emit a Markdown table")
    parser.add_argument("--json", metavar="PATH", help="also write the cells as JSON")
    args = parser.parse_args(argv)

    schedulers = args.schedulers or list(DEFAULT_SCHEDULERS)
    for scheduler in schedulers:
        for option in scheduler.split("|"):
            simloom.parse_scheduler(option)
    names = args.programs or [
        *zoo.BUGS,
        *([] if args.no_controls else zoo.CONTROLS),
    ]
    unknown = [n for n in names if n not in zoo.PROGRAMS]
    if unknown:
        parser.error(f"unknown programs {unknown}; known: {', '.join(zoo.PROGRAMS)}")

    started = time.perf_counter()
    cells: list[Cell] = []
    for name in names:
        for scheduler in schedulers:
            cell = measure(name, scheduler, args.seeds, args.rate_seeds)
            cells.append(cell)
            if not args.markdown:
                print(f"  measured {name} / {scheduler} ({cell.seconds:.1f}s)", file=sys.stderr)
    elapsed = time.perf_counter() - started

    print(render(cells, markdown=args.markdown))
    print()
    print(summary(cells, schedulers))
    universes = sum(c.universes for c in cells)
    print(
        f"\n{universes} universes in {elapsed:.1f}s; first failure within seeds "
        f"0..{args.seeds - 1}, find rate over seeds 0..{min(args.rate_seeds, args.seeds) - 1}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(c) for c in cells], indent=2) + "\n")
    return 1 if any(c.unexpected for c in cells) else 0


if __name__ == "__main__":
    raise SystemExit(main())
