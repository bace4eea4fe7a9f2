"""The Config object seen from Python, without a server: prints one JSON object.

    cfg_checks.py

Every value is given as its repr (or the exception it raised), so the test compares
them as text.
"""

import argparse
import json
import sys

from _impl import base, config


def outcome(fn):
    try:
        return repr(fn())
    except Exception as e:  # the test compares the class and the message
        return "%s: %s" % (type(e).__name__, e)


def hook(server):
    pass


def main():
    out = {}
    cfg = config.Config()
    out["names"] = sorted(cfg.settings)
    out["get_is_value"] = sorted(
        name for name, s in cfg.settings.items() if s.get() is s.value or s.get() == s.value)
    out["cli"] = {name: s.cli for name, s in cfg.settings.items()}
    out["defaults"] = {name: outcome(lambda name=name: cfg.settings[name].get())
                       for name in ("workers", "timeout", "bind", "keepalive", "backlog",
                                    "preload_app", "proc_name", "sendfile", "worker_class",
                                    "raw_env", "config")}
    out["attr_defaults"] = {name: outcome(lambda name=name: getattr(cfg, name))
                            for name in ("workers", "timeout", "bind", "proc_name", "sendfile",
                                         "address", "worker_class_str", "env", "is_ssl")}

    sets = [
        ("workers", "3"), ("timeout", "5"), ("bind", "127.0.0.1:9"), ("preload_app", "true"),
        ("raw_env", ["A=1", "B=2"]), ("forwarded_allow_ips", "10.0.0.1, 10.0.0.2"),
        ("proc_name", "named"), ("keepalive", 7), ("limit_request_fields", "50"),
        ("reuse_port", "false"), ("secure_scheme_headers", {"X-PROTO": "https"}),
    ]
    out["set"] = {}
    for name, value in sets:
        out["set"][name] = outcome(lambda: (cfg.set(name, value), getattr(cfg, name))[1])
    cfg.set("when_ready", hook)
    out["set_callable_is_same"] = (cfg.when_ready is hook
                                   and cfg.settings["when_ready"].get() is hook)
    cfg.settings["max_requests"].set("12")
    out["setting_set"] = outcome(lambda: cfg.max_requests)
    out["after_set_address"] = outcome(lambda: cfg.address)
    out["after_set_env"] = outcome(lambda: cfg.env)
    out["bad"] = {
        "getattr_unknown": outcome(lambda: cfg.no_such_setting),
        "set_unknown": outcome(lambda: cfg.set("no_such_setting", 1)),
        "assign": outcome(lambda: setattr(cfg, "workers", 4)),
        "workers_abc": outcome(lambda: cfg.set("workers", "abc")),
        "timeout_negative": outcome(lambda: cfg.set("timeout", -3)),
        "bind_int": outcome(lambda: cfg.set("bind", 5)),
        "bool_maybe": outcome(lambda: cfg.set("preload_app", "maybe")),
        "hook_not_callable": outcome(lambda: cfg.set("post_fork", 5)),
    }
    out["workers_after_bad"] = outcome(lambda: cfg.workers)

    parser = cfg.parser()
    out["parser_is_argparse"] = isinstance(parser, argparse.ArgumentParser)
    opts = parser.parse_args(["-w", "3", "-b", "a:1", "-b", "b:2", "--preload", "app:app"])
    out["parsed"] = {"workers": repr(opts.workers), "bind": repr(opts.bind),
                     "preload_app": repr(opts.preload_app), "args": repr(opts.args),
                     "timeout": repr(opts.timeout)}
    out["parser_dests"] = sorted(vars(parser.parse_args([])))

    # What Application.init() is handed as `opts`: the same names as the parser's.
    class Probe(base.Application):
        def init(self, parser, opts, args):
            out["init_opts"] = sorted(vars(opts))
            out["init_workers"] = repr(opts.workers)
            out["init_args"] = list(args)

        def load(self):
            raise AssertionError("not served")

    sys.argv = ["probe", "-w", "2", "mod:app"]
    probe = Probe()
    out["probe_workers"] = probe.cfg.workers
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
