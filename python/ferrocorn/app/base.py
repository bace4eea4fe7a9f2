"""``BaseApplication`` and ``Application``: Gunicorn's embedding API, with its method names
and call order, in front of ferrocorn's Rust master.

``__init__`` loads the settings (``load_default_config`` then ``load_config``, then
``cfg.validate()``); ``run()`` starts the same master, workers and signal handling as the
``ferrocorn`` command with exactly those settings. Workers get the app from ``wsgi()``,
which calls ``load()`` once per process; HUP calls ``reload()``, which loads the settings
again through ``load_config()``.
"""

import argparse
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import traceback

from ferrocorn import _ferrocorn
from ferrocorn.config import Config, get_default_config_file


class BaseApplication:
    """An application that supplies its own settings (``load_config``) and WSGI app
    (``load``)."""

    def __init__(self, usage=None, prog=None):
        self.usage = usage
        self.cfg = None
        self.callable = None
        self.prog = prog
        self.logger = None
        self.do_load_config()

    def do_load_config(self):
        """Load the settings; a failure prints ``Error: ...`` and exits 1, as Gunicorn."""
        try:
            self.load_default_config()
            self.load_config()
            self.cfg.validate()
        except Exception as e:
            print("\nError: %s" % str(e), file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)

    def load_default_config(self):
        self.cfg = Config(self.usage, prog=self.prog)

    def init(self, parser, opts, args):
        raise NotImplementedError

    def load(self):
        raise NotImplementedError

    def load_config(self):
        """Set ``self.cfg`` values (``self.cfg.set(name, value)``)."""
        raise NotImplementedError

    def reload(self):
        # A reload that fails leaves the application as the master still serves it: its
        # settings and whatever load_config() or init() changed (app_uri, ...).
        saved = dict(self.__dict__)
        try:
            self.do_load_config()
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def wsgi(self):
        if self.callable is None:
            self.callable = self.load()
        return self.callable

    def run(self):
        """Serve until the master stops; exits the process with the master's status."""
        sys.exit(_ferrocorn.run_application(self))


class Application(BaseApplication):
    """An application configured like the ``ferrocorn`` command: argv,
    ``GUNICORN_CMD_ARGS`` and a config file, in Gunicorn's order, plus what ``init()``
    returns."""

    def chdir(self):
        self.cfg._handle.chdir()

    def get_config_from_filename(self, filename):
        """Execute a config file and return its namespace (nothing is applied)."""
        if not os.path.exists(filename):
            raise RuntimeError("%r doesn't exist" % filename)
        ext = os.path.splitext(filename)[1]
        try:
            module_name = "__config__"
            if ext in (".py", ".pyc"):
                spec = importlib.util.spec_from_file_location(module_name, filename)
            else:
                msg = "configuration file should have a valid Python extension.\n"
                print("!!!\n!!! WARNING: %s!!!\n" % msg, file=sys.stderr)
                loader = importlib.machinery.SourceFileLoader(module_name, filename)
                spec = importlib.util.spec_from_file_location(
                    module_name, filename, loader=loader)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = mod
            spec.loader.exec_module(mod)
        except Exception:
            print("Failed to read config file: %s" % filename, file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            sys.exit(1)
        return vars(mod)

    def get_config_from_module_name(self, module_name):
        return vars(importlib.import_module(module_name))

    def load_config_from_module_name_or_filename(self, location):
        """Load ``python:MODULE``, ``file:PATH`` or ``PATH`` and apply every setting name
        in it (with the ``ferrocorn`` command's rules and messages); returns its
        namespace."""
        if location.startswith("python:"):
            namespace = self.get_config_from_module_name(location[len("python:"):])
        else:
            filename = location[len("file:"):] if location.startswith("file:") else location
            namespace = self.get_config_from_filename(filename)
        self._drop_cache()
        self.cfg._handle.apply_namespace(namespace)
        return namespace

    def load_config_from_file(self, filename):
        return self.load_config_from_module_name_or_filename(location=filename)

    def _drop_cache(self):
        object.__setattr__(self.cfg, "_cache", None)

    def _parse(self, args):
        values, positionals = _ferrocorn.parse_args(self.cfg.prog, list(args))
        opts = argparse.Namespace(**{
            name: None for name, setting in self.cfg.settings.items() if setting.cli
        })
        for name, value in values:
            setattr(opts, name, value)
        opts.args = positionals
        return opts, values

    def load_config(self):
        opts, cli_values = self._parse(sys.argv[1:])
        cfg = self.init(self.cfg.parser(), opts, opts.args)

        # Paths are set up before anything is imported.
        self.chdir()

        if cfg:
            for k, v in cfg.items():
                self.cfg.set(k.lower(), v)

        env_opts, env_values = self._parse(self.cfg.get_cmd_args_from_env())

        if opts.config:
            self.load_config_from_file(opts.config)
        elif env_opts.config:
            self.load_config_from_file(env_opts.config)
        else:
            default_config = get_default_config_file()
            if default_config is not None:
                self.load_config_from_file(default_config)

        # The environment's arguments, then the command line's, win over the file.
        for name, value in env_values:
            self.cfg.set(name, value)
        for name, value in cli_values:
            self.cfg.set(name, value)

        # The config may have changed chdir.
        self.chdir()

    def run(self):
        super().run()
