"""PasteDeploy support, with Gunicorn's ``gunicorn.app.pasterapp`` names.

Two ways in:

- ``ferrocorn --paste app.ini[#name]``: the command's loader calls ``get_wsgi_app`` in each
  worker (or once with ``--preload``) to build the app an ini file describes;
  ``parse_global_conf`` turns the ``--paste-global KEY=VALUE`` list into the
  ``global_conf`` the app's factory receives.
- ``[server:main]`` with ``use = egg:ferrocorn#main``: ``serve`` is the server runner
  ``pserve`` (or any PasteDeploy host) calls with an app it has already loaded; it runs the
  ferrocorn master with settings taken from that section.

Only what PasteDeploy asks for lives here; the settings, the master and the workers are
the embedding API's (``ferrocorn.app.wsgiapp``).
"""

import configparser
import os
import re

# `=` that is not escaped as `\=`: where a `--paste-global` item splits.
_UNESCAPED_EQ = re.compile(r"(?<!\\)=")


def parse_global_conf(raw_list):
    """``--paste-global`` items (``KEY=VALUE``, ``\\=`` for a literal ``=``) as a dict.

    Each item splits at its first unescaped ``=``; an item without one is an error,
    raised when the app is loaded, as in Gunicorn. ``None`` stays ``None`` (no list at
    all); bytes are read as latin-1.
    """
    if raw_list is None:
        return None
    conf = {}
    for item in raw_list:
        text = item.decode("latin-1") if isinstance(item, bytes) else item
        parts = _UNESCAPED_EQ.split(text, maxsplit=1)
        if len(parts) != 2:
            raise RuntimeError("environment setting %r invalid" % text)
        key, value = (part.replace("\\=", "=") for part in parts)
        conf[key] = value
    return conf


def _config_uri(uri):
    # A bare path gets PasteDeploy's `config:` scheme. An absolute path always does, even
    # when a directory name holds a `:` that would otherwise read as a scheme.
    if uri.startswith(os.sep) or ":" not in uri:
        return "config:" + uri
    return uri


def get_wsgi_app(config_uri, name=None, defaults=None):
    """The WSGI app of a PasteDeploy config: ``config_uri`` is a path (``#section``
    picks an app section other than ``main``) or a PasteDeploy URI (``config:...``,
    ``egg:...``); relative paths are taken from the working directory; ``defaults``
    is the global configuration handed to the app factory."""
    from paste.deploy import loadapp

    return loadapp(
        _config_uri(config_uri),
        name=name,
        relative_to=os.getcwd(),
        global_conf=defaults,
    )


def has_logging_config(config_file):
    """Whether an ini file has a ``[loggers]`` section (so it can configure logging)."""
    parser = configparser.ConfigParser()
    parser.read([config_file])
    return parser.has_section("loggers")


def _bind_from(host, port):
    """``bind`` for a server section's ``host`` and ``port`` (None when neither is
    given): each comma-separated host with the port, a bare IPv6 address bracketed; a
    port without a host listens on the default host."""
    hosts = [h.strip() for h in host.split(",") if h.strip()] if host else []
    if not port:
        return hosts or None
    if not hosts:
        hosts = ["127.0.0.1"]
    out = []
    for h in hosts:
        if ":" in h and not h.startswith("["):
            h = "[%s]" % h
        out.append("%s:%s" % (h, port))
    return out


def serve(app, global_conf, **local_conf):
    """PasteDeploy server runner (``use = egg:ferrocorn#main``), for ``pserve``::

        [server:main]
        use = egg:ferrocorn#main
        host = 127.0.0.1
        port = 8000
        workers = 2
        config = gunicorn.conf.py

    ``host``/``port`` become ``bind``; ``config`` names a config file to load (without
    it, ``./gunicorn.conf.py`` if it exists); every other key is a setting, applied
    after the file. The ini itself is the process name, and configures logging when it
    has a ``[loggers]`` section. Serves ``app`` until the master stops.
    """
    from ferrocorn.app.wsgiapp import WSGIApplication
    from ferrocorn.config import get_default_config_file

    ini_file = global_conf["__file__"]
    settings_file = local_conf.pop("config", None)
    bind = _bind_from(local_conf.pop("host", ""), local_conf.pop("port", ""))
    if bind is not None:
        local_conf["bind"] = bind

    class PasteServerApplication(WSGIApplication):
        def load_config(self):
            self.cfg.set("default_proc_name", ini_file)
            if has_logging_config(ini_file):
                self.cfg.set("logconfig", ini_file)

            settings_file_now = settings_file or get_default_config_file()
            if settings_file_now is not None:
                self.load_config_from_file(settings_file_now)

            for key, value in local_conf.items():
                if value is not None:
                    self.cfg.set(key.lower(), value)

        def load(self):
            return app

    PasteServerApplication().run()
