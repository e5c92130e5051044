"""Embedding: item texts → a vector table, through a language model."""
