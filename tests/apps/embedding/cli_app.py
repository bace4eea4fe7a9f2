"""An Application subclass configured like the server command: ``init()`` supplies
defaults, then the config file (``-c`` or ./gunicorn.conf.py), ``GUNICORN_CMD_ARGS`` and
the script's own command line, in the server's order.

    cli_app.py OUTDIR [server options] [positional args]

``init`` records what it was handed (OUTDIR/init.json) and returns its settings; its
``when_ready`` hook records the settings the master ended up with (OUTDIR/ready.json).
"""

import os
import sys

from _impl import base, dump

OUTDIR = sys.argv.pop(1)

# Each setting here is also set by fewer of the later sources, so the value that wins
# shows which source each one came from.
INIT_SETTINGS = {
    "proc_name": "from-init",
    "timeout": 101,
    "graceful_timeout": 102,
    "keepalive": 103,
    "MAX_REQUESTS": 104,  # init's names are lowered, as Gunicorn does
}

SHOWN = ("proc_name", "timeout", "graceful_timeout", "keepalive", "max_requests", "workers",
         "backlog")


def when_ready(server):
    dump(os.path.join(OUTDIR, "ready.json"),
         {name: getattr(server.cfg, name) for name in SHOWN})


class CliApp(base.Application):

    def init(self, parser, opts, args):
        dump(os.path.join(OUTDIR, "init.json"), {
            "args": list(args),
            "opts_args": list(opts.args),
            "opts_workers": opts.workers,
            "opts_timeout": opts.timeout,
            "opts_config": opts.config,
            "opts_bind": opts.bind,
            "parser_is_argparse": type(parser).__name__ == "ArgumentParser",
            "cfg_timeout_then": self.cfg.timeout,
        })
        return dict(INIT_SETTINGS, when_ready=when_ready)

    def load(self):
        from slow import app

        return app


if __name__ == "__main__":
    CliApp().run()
