"""Ranking: users × items → top K per user, from vectors, item-to-item models or baselines."""
