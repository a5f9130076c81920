"""The package version (the public API re-exports it as gan_stretch.__version__)."""

__version__ = "0.1.0"
