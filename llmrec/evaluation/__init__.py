"""Evaluation: rankings against held-out truth (metrics, intervals, paired tests) and the
reports people and programs read."""
