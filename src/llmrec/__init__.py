"""llmrec: recommendations from item descriptions with transformer language models."""

__version__ = "0.1.0"
