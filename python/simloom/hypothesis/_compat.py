"""The Hypothesis compatibility layer, under the address the strategies, the
provider and the tests import it from: every name is
:mod:`simloom._hypothesis_compat`'s (the module lives at the package's top level,
a leaf the determinism boundary can import without this package's ``__init__``).
"""

from .._hypothesis_compat import *  # noqa: F403
from .._hypothesis_compat import __all__ as __all__
