"""HGPO (He, Feng, Wei et al., ICLR 2026): figures; methods live in repro.rl."""

from repro.studies.hgpo import figures  # noqa: F401  (registers the figures)
