"""Registers ``backend="simloom"`` with Hypothesis (its ``hypothesis`` entry point).

Kept free of Hypothesis imports beyond the provider table: Hypothesis calls this
while it is still importing itself.
"""

from __future__ import annotations

__all__ = ["register"]

PROVIDER_PATH = "simloom.hypothesis._provider.SimloomProvider"


def register() -> None:
    """Make ``settings(backend="simloom")`` available."""
    from hypothesis.internal.conjecture.providers import AVAILABLE_PROVIDERS

    AVAILABLE_PROVIDERS.setdefault("simloom", PROVIDER_PATH)
