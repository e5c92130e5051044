"""llmrec: recommendations from item descriptions with transformer language models.

The stages are functions of this package: `llmrec.split`, `llmrec.embed`, `llmrec.profile`,
`llmrec.rank`, `llmrec.evaluate` and `llmrec.tune` (see `llmrec.api`). They load on first
use, so importing llmrec (and starting the command line) stays fast.
"""

import os

from .version import __version__ as __version__

# MKL's strict reproducible mode on its AVX2 code path: float32 matrix products give the same
# bits whatever the thread count (and on any AVX2 CPU), so a vector does not depend on how many
# cores, processes or Ray workers computed it. Set before torch loads MKL; a user's own
# MKL_CBWR wins. Measured here: no slower than MKL's default path for llmrec's shapes.
MKL_REPRODUCIBLE = "AVX2,STRICT"
os.environ.setdefault("MKL_CBWR", MKL_REPRODUCIBLE)

VERBS = ("split", "embed", "profile", "rank", "evaluate", "tune", "train")
__all__ = ["__version__", *VERBS]


def __getattr__(name: str):
    if name in VERBS:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'llmrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(VERBS))
