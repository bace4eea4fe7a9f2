"""Gunicorn's exception classes (``gunicorn.errors``), for code that catches them."""

from ferrocorn._loader import AppImportError


class HaltServer(BaseException):
    def __init__(self, reason, exit_status=1):
        self.reason = reason
        self.exit_status = exit_status

    def __str__(self):
        return "<HaltServer %r %d>" % (self.reason, self.exit_status)


class ConfigError(Exception):
    """Exception raised on config error."""


__all__ = ["AppImportError", "ConfigError", "HaltServer"]
