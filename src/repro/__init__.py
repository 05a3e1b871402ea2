"""repro: reproduction package for the papers of Shuo He and co-authors."""

__version__ = "0.1.0"
