"""Interaction data: reading histories, mapping them onto a catalog, splitting them."""
