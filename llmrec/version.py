"""llmrec's version, in one place for the package metadata and every table it writes."""

__version__ = "0.1.0"
