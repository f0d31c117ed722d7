"""The package version, in a leaf module: base modules read it without importing the package root."""

__version__ = "0.1.0"
