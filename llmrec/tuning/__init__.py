"""Tuning the training-free ranking recipe on a history alone.

Each user's latest event is held out (`inner`), recipes from a search space (`space`) rank the
rest with the ranking stage's own scorers (`scoring`), an Optuna TPE search keeps the best
(`search`), and the chosen options are written as a config `rank --config` reads (`config`).
"""
