"""ferrocorn: Gunicorn, rebuilt in Rust."""

from ferrocorn._ferrocorn import __version__

__all__ = ["__version__"]
