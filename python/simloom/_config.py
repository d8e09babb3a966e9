"""One universe configuration: everything that sets a universe up, validated once.

``simloom.run``, ``simloom.replay``, ``@simloom.test``, ``simloom.universes()`` and
``SimLoop`` all take the same options (the livelock bound, the boundary and its
wall-clock epoch, the simulated world, the three budgets). Each entry point turns its
keyword arguments into one :class:`UniverseConfig` — the one place they are checked,
each misuse a :class:`~simloom.SimloomUsageError` naming the argument and its valid
range — or takes one ready-made (``config=``), and hands that object on: nothing
downstream validates again, so an exploration of thousands of universes checks its
options once.

The choice source is not part of it: a seed and scheduler, a tape or Hypothesis'
draws are given beside the configuration, because an exploration varies them from
universe to universe while the configuration stays fixed.

Owns: the defaults' single home and the validation. Must not: run anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from . import _boundary, _budgets, _core
from ._validation import check_flag, check_int
from .errors import SimloomUsageError

__all__ = [
    "DEFAULT",
    "DEFAULT_LIVELOCK_STEPS",
    "UNHANDLED_POLICIES",
    "UniverseConfig",
    "config_from",
]

#: Steps in a row without the virtual clock moving after which it moves to the next
#: pending timer (time passes on a real loop while callbacks run), or, with no timer
#: pending, that count as a livelock. About a quarter of a second of spinning; raise
#: it (``livelock_steps=``) for programs that do that much real work at one instant.
#: (The engine defines it; ``simloom.loop`` re-exports it.)
DEFAULT_LIVELOCK_STEPS = _core.DEFAULT_LIVELOCK_STEPS


@dataclass(frozen=True, slots=True)
class UniverseConfig:
    """How a universe is set up (validated when made; immutable).

    ``livelock_steps``: steps at one virtual instant before the clock moves to the
    next timer, or, with none pending, a :class:`~simloom.SimLivelockError`.
    ``boundary``/``wall_clock_epoch``: the determinism boundary and where its wall
    clock starts (see :func:`simloom.boundary`). ``world``: a simulated world
    (``False``: network use is an escape). ``files``: file I/O acts on the running
    host's simulated disk (needs the world and the boundary; ``False``: the real
    disk, docs/files.md). ``max_steps``, ``max_virtual_time``,
    ``watchdog``: each run's budgets (``None`` turns one off; docs/testing.md,
    "Budgets"). ``cancellations``: the explorer may cancel a task, or make its
    ``asyncio.timeout``/``wait_for`` expire, at any await (each a decision that
    shrinks away when not needed; see docs/schedulers.md, "Injected cancellations").
    """

    livelock_steps: int = DEFAULT_LIVELOCK_STEPS
    boundary: bool = True
    wall_clock_epoch: datetime | float = _boundary.DEFAULT_WALL_CLOCK_EPOCH
    world: bool = True
    files: bool = True
    max_steps: int | None = _budgets.DEFAULT_MAX_STEPS
    max_virtual_time: float | None = _budgets.DEFAULT_MAX_VIRTUAL_TIME
    watchdog: float | None = _budgets.DEFAULT_WATCHDOG
    unhandled: str = "fail"
    cancellations: bool = False
    #: The validated budgets and boundary settings (derived, not compared).
    budgets: _budgets.Budgets = field(init=False, repr=False, compare=False)
    boundary_settings: _boundary.Settings | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_int("livelock_steps", self.livelock_steps)
        check_flag("world", self.world)
        check_flag("files", self.files)
        check_flag("cancellations", self.cancellations)
        if self.unhandled not in UNHANDLED_POLICIES:
            raise SimloomUsageError(
                f"unhandled must be one of {', '.join(map(repr, UNHANDLED_POLICIES))}, "
                f"got {self.unhandled!r}"
            )
        settings = _boundary.settings(self.boundary, self.wall_clock_epoch)
        budgets = _budgets.budgets(self.max_steps, self.max_virtual_time, self.watchdog)
        object.__setattr__(self, "boundary_settings", settings)
        object.__setattr__(self, "budgets", budgets)

    def loop_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``SimLoop`` this configuration stands for."""
        return {
            "livelock_steps": self.livelock_steps,
            "boundary": self.boundary,
            "wall_clock_epoch": self.wall_clock_epoch,
            "world": self.world,
            "files": self.files,
            "cancellations": self.cancellations,
            **self.budgets.arguments(),
        }

    def with_budgets(self, budgets: _budgets.Budgets) -> UniverseConfig:
        """This configuration with other (already validated) budgets."""
        return replace(self, **budgets.arguments())


#: What an unhandled exception does: fail the run, or be logged (the stock loop).
UNHANDLED_POLICIES = ("fail", "log")

#: The configuration with every default (made once).
DEFAULT = UniverseConfig()

_FIELDS = (
    "livelock_steps",
    "boundary",
    "wall_clock_epoch",
    "world",
    "files",
    "max_steps",
    "max_virtual_time",
    "watchdog",
    "cancellations",
)


def config_from(config: object, options: dict[str, Any]) -> UniverseConfig:
    """The configuration an entry point runs with: ``config`` if given (then every
    option in ``options`` must be left at its default), else one made from
    ``options`` (the all-default case is :data:`DEFAULT`, without validating again)."""
    if config is not None:
        if not isinstance(config, UniverseConfig):
            raise SimloomUsageError(
                f"config must be a simloom.UniverseConfig, got {type(config).__name__}"
            )
        given = [name for name in _FIELDS if options[name] is not getattr(DEFAULT, name)]
        if given:
            raise SimloomUsageError(
                f"pass either config= or {', '.join(f'{n}=' for n in given)}, not both "
                "(the configuration already says)"
            )
        return config
    if all(options[name] is getattr(DEFAULT, name) for name in _FIELDS):
        return DEFAULT
    return UniverseConfig(**{name: options[name] for name in _FIELDS})
