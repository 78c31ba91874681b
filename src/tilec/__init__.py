"""tilec: a tile-based deep-learning compiler (Roller, Welder, Rammer and Grinder on one textual tile IR)."""

__version__ = "0.1.0"
