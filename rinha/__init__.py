"""rinha: a payment proxy for Rinha de Backend 2025 with compiled Cython hot paths."""

# The one place the version is written: pyproject.toml reads it ([tool.setuptools.dynamic]),
# `rinha --version` prints it. CHANGELOG.md says what each version holds.
__version__ = "0.1.0"
