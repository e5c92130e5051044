"""llmrec: recommendations from item descriptions with transformer language models."""

import os

from .version import __version__ as __version__

# MKL's strict reproducible mode on its AVX2 code path: float32 matrix products give the same
# bits whatever the thread count (and on any AVX2 CPU), so a vector does not depend on how many
# cores, processes or Ray workers computed it. Set before torch loads MKL; a user's own
# MKL_CBWR wins. Measured here: no slower than MKL's default path for llmrec's shapes.
MKL_REPRODUCIBLE = "AVX2,STRICT"
os.environ.setdefault("MKL_CBWR", MKL_REPRODUCIBLE)
