"""WSGI entry point of the fuller project.

At load it creates the SQLite schema and an `admin` superuser (password `admin-pass`), and
connects `request_finished` to a marker file under `$DJANGO_MARKER_DIR`: Django sends that
signal from the close() of its response, so the file shows the server called close().
The WSGI callable reports in `X-File-Wrapper` whether Django returned the server's
`wsgi.file_wrapper` (it does for a FileResponse), without changing what the server gets.
"""

import os

import django
from django.core.management import call_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings_full")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402  (needs django.setup())
from django.core.signals import request_finished  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
if not get_user_model().objects.filter(username="admin").exists():
    get_user_model().objects.create_superuser("admin", "admin@example.test", "admin-pass")

MARKER_DIR = os.environ.get("DJANGO_MARKER_DIR")


def _finished(sender, **kwargs):
    if MARKER_DIR:
        with open(os.path.join(MARKER_DIR, "request_finished"), "a") as f:
            f.write("%d\n" % os.getpid())


request_finished.connect(_finished)

django_app = get_wsgi_application()


def application(environ, start_response):
    # Hold start_response back until Django's result is known (allowed: no body byte has
    # gone out yet), then pass the same result on untouched.
    held = {}

    def hold(status, headers, exc_info=None):
        held["args"] = (status, list(headers), exc_info)
        return lambda data: None  # Django never uses write()

    result = django_app(environ, hold)
    status, headers, exc_info = held["args"]
    wrapper = environ.get("wsgi.file_wrapper")
    used = wrapper is not None and isinstance(result, wrapper)
    headers.append(("X-File-Wrapper", "yes" if used else "no"))
    start_response(status, headers, exc_info)
    return result
