"""Formatters named by the logging-configuration tests' dictConfig dicts."""

import json
import logging


class AtomsFormatter(logging.Formatter):
    """Renders an access record from its args: Gunicorn logs each access line as
    ``access_log.info(access_log_format, atoms)``, so ``record.args`` is the atoms mapping."""

    def format(self, record):
        args = record.args
        out = {"args_is_mapping": isinstance(args, dict), "message": record.getMessage()}
        if isinstance(args, dict):
            for key in ("h", "s", "r", "m", "U", "{x-probe}i"):
                try:
                    out[key] = args[key]
                except Exception as exc:  # noqa: BLE001 - reported to the test
                    out[key] = "<%s>" % type(exc).__name__
        return "ATOMS " + json.dumps(out, sort_keys=True, default=str)
