"""Session-wide test setup.

Hypothesis loads its built-in ``ci`` profile (no example database, derandomized,
``print_blob``) when it sees a CI environment variable, and pytest prints whole
failure messages in its short summary there. The tests that run pytest in a
subprocess assert on the example database and on the report's layout, so they
must not depend on where the suite runs: those variables are removed for the
whole session. ``test_simloom_test.py`` checks the CI profile explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from simloom.hypothesis import _compat


@pytest.fixture(scope="session", autouse=True)
def _subprocesses_outside_ci() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in _compat.ci_environment_variables():
            patch.delenv(name, raising=False)
        yield
