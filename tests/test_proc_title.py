"""Process titles, as Gunicorn sets them when setproctitle is installed:
`<prog>: master [<proc_name>]` and `<prog>: worker [<proc_name>]`."""

import pytest

from conftest import is_gunicorn

pytest.importorskip("setproctitle")
PROG = "gunicorn" if is_gunicorn() else "ferrocorn"


def _title(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")[0].decode()


def test_titles_default_to_the_app_module(serve):
    server = serve("hello:app")
    assert _title(server.master_pid) == "%s: master [hello:app]" % PROG
    (worker,) = server.worker_pids()
    assert _title(worker) == "%s: worker [hello:app]" % PROG


def test_proc_name_sets_the_titles(serve):
    server = serve("-n", "shop-api", "hello:app")
    assert _title(server.master_pid) == "%s: master [shop-api]" % PROG
    (worker,) = server.worker_pids()
    assert _title(worker) == "%s: worker [shop-api]" % PROG
