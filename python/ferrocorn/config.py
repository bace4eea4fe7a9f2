"""``ferrocorn.config.Config``: Gunicorn's ``gunicorn.config.Config`` for the embedding API.

The values live in Rust (``_ferrocorn.ConfigHandle``): ``set`` runs the same validators as
the command line and config files, and ``run()`` hands the very same settings to the Rust
master. This module only gives them Gunicorn's Python shape: ``cfg.settings``,
``cfg.<name>``, ``cfg.set``, ``cfg.parser()`` and the derived properties.
"""

import argparse
import os
import shlex
import sys

from ferrocorn import _ferrocorn

# Gunicorn's Config properties that are not settings of their own.
_DERIVED = (
    "address", "env", "gid", "is_ssl", "proc_name", "sendfile", "ssl_options", "uid",
    "worker_class_str",
)


def get_default_config_file():
    """``./gunicorn.conf.py`` in the working directory, if it exists."""
    path = os.path.join(os.path.abspath(os.getcwd()), "gunicorn.conf.py")
    return path if os.path.exists(path) else None


class Setting:
    """One row of the settings table, bound to a ``Config`` (Gunicorn's ``Setting``)."""

    def __init__(self, cfg, row):
        self._cfg = cfg
        self.name = row["name"]
        self.section = row["section"]
        self.cli = list(row["cli"]) or None
        self.meta = row["meta"]
        self.desc = row["doc"]
        self.short = row["doc"].split(". ")[0].rstrip(".") + "."
        self.default = row["default"]
        self.default_doc = row["default_doc"]
        self.supported = row["supported"]
        self._row = row

    def get(self):
        # The stored value, not the property of the same name (`proc_name`, `sendfile`).
        return self._cfg._handle.get(self.name)

    @property
    def value(self):
        return self.get()

    def set(self, val):
        self._cfg.set(self.name, val)

    def add_option(self, parser):
        if not self.cli:
            return
        row = self._row
        kwargs = {
            "dest": self.name,
            "default": None,
            "help": ("%s [%s]" % (self.short, self.default_doc)).replace("%", "%%"),
        }
        if self.meta:
            kwargs["metavar"] = self.meta
        action = row["action"]
        if action == "optional":
            kwargs.update(action="store", nargs="?", const=row["const"])
        elif action == "store":
            kwargs.update(action="store", type=int if row["int"] else str)
        else:
            kwargs["action"] = action
            kwargs.pop("metavar", None) if action.startswith("store_") else None
        parser.add_argument(*self.cli, **kwargs)

    def __lt__(self, other):
        return (self.section == other.section and self.name < other.name) or (
            self.section < other.section
        )

    def __repr__(self):
        return "<%s.%s object at %x with value %r>" % (
            self.__class__.__module__, self.__class__.__name__, id(self), self.get())


class Config:
    """The settings of one application; ``run()`` serves with exactly these."""

    def __init__(self, usage=None, prog=None):
        object.__setattr__(self, "_handle", _ferrocorn.ConfigHandle())
        object.__setattr__(self, "_cache", None)
        object.__setattr__(self, "settings", {
            row["name"]: Setting(self, row) for row in _ferrocorn.settings_table()
        })
        object.__setattr__(self, "usage", usage)
        object.__setattr__(self, "prog", prog or os.path.basename(sys.argv[0]))
        object.__setattr__(self, "env_orig", os.environ.copy())

    def _values(self):
        if self._cache is None:
            object.__setattr__(self, "_cache", self._handle.values())
        return self._cache

    def __str__(self):
        return self._handle.text()

    def __getattr__(self, name):
        if name not in self.settings and name not in _DERIVED:
            raise AttributeError("No configuration setting for: %s" % name)
        return self._values()[name]

    def __setattr__(self, name, value):
        if name != "settings" and name in self.settings:
            raise AttributeError("Invalid access!")
        object.__setattr__(self, name, value)

    def set(self, name, value):
        """Validate and store a setting (AttributeError for an unknown name, ValueError
        with the validator's reason for a bad value)."""
        object.__setattr__(self, "_cache", None)
        self._handle.set(name, value)

    def validate(self):
        """The checks the command makes once the settings are loaded."""
        self._handle.validate()

    def get_cmd_args_from_env(self):
        if "GUNICORN_CMD_ARGS" in self.env_orig:
            return shlex.split(self.env_orig["GUNICORN_CMD_ARGS"])
        return []

    def parser(self):
        """An ``argparse`` parser with every setting's flags, as Gunicorn builds it. The
        loading steps themselves parse with the ``ferrocorn`` command's parser."""
        parser = argparse.ArgumentParser(usage=self.usage, prog=self.prog)
        parser.add_argument(
            "-v", "--version", action="version", default=argparse.SUPPRESS,
            version="%(prog)s (version " + _ferrocorn.__version__ + ")\n",
            help="show program's version number and exit")
        parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
        for setting in sorted(self.settings.values()):
            setting.add_option(parser)
        return parser

    @property
    def paste_global_conf(self):
        from ferrocorn.app.pasterapp import parse_global_conf

        return parse_global_conf(self.raw_paste_global_conf)
