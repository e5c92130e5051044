"""Files: the tables stages exchange, vector tables, and outputs written whole or not at all."""
