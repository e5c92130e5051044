"""Engines that run stages somewhere other than this process (Ray)."""
