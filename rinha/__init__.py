"""rinha: a payment proxy for Rinha de Backend 2025 with compiled Cython hot paths."""

__version__ = "0.1.0"

