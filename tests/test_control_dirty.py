"""The control socket's dirty commands against a real dirty arbiter: `show dirty`,
`show all`, `show stats`, `dirty add|remove`, over the raw protocol and through the client
(`ferrocornc`, or `gunicornc` in the suite's Gunicorn mode).
"""

import json

import pytest

from conftest import children, wait_until
from control_support import data, poll, wait_answering
from ctl_support import ctl
from test_dirty_process import APP, arbiter_pid, dirty_workers


def start(serve, tmp_path, workers=2):
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    path = tmp_path / "c.ctl"
    server = serve(
        "-w", "1", "--dirty-app", APP, "--dirty-workers", str(workers),
        "--control-socket", str(path), "dirty_proc_app:app",
        env={"DIRTY_PROBE_DIR": str(probe)},
    )
    wait_until(lambda: len(dirty_workers(server)) == workers, what="dirty workers")
    wait_answering(path)
    return server, path


def test_show_stats_and_show_all_name_the_dirty_arbiter(serve, tmp_path):
    server, path = start(serve, tmp_path)
    arbiter = arbiter_pid(server)
    assert data(path, "show stats")["dirty_arbiter_pid"] == arbiter
    everything = wait_until(
        lambda: (lambda d: d if d and d["dirty_worker_count"] == 2 else None)(
            poll(path, "show all")
        ),
        what="show all listing both dirty workers",
    )
    assert everything["dirty_arbiter"] == {
        "pid": arbiter, "type": "dirty_arbiter", "role": "dirty master",
    }
    assert {w["pid"] for w in everything["dirty_workers"]} == dirty_workers(server)


@pytest.mark.ferrocorn_only
def test_show_dirty_lists_the_live_workers_and_apps(serve, tmp_path):
    # Gunicorn answers from the master's copy of the arbiter object, which never sees a
    # worker: its `workers` and `apps` stay empty.
    server, path = start(serve, tmp_path)
    shown = data(path, "show dirty")
    assert shown["enabled"] is True
    assert shown["pid"] == arbiter_pid(server)
    assert {w["pid"] for w in shown["workers"]} == dirty_workers(server)
    for w in shown["workers"]:
        assert w["apps"] == [APP]
        assert w["booted"] is True
        assert isinstance(w["age"], int)
    (app,) = shown["apps"]
    assert app["import_path"] == APP
    assert app["current_workers"] == 2
    assert set(app["worker_pids"]) == dirty_workers(server)


def test_dirty_add_and_remove_resize_the_pool(serve, tmp_path):
    server, path = start(serve, tmp_path)
    added = data(path, "dirty add 2")
    assert added["success"] is True, added
    wait_until(lambda: len(dirty_workers(server)) == 4, what="four dirty workers")
    removed = data(path, "dirty remove")
    assert removed["success"] is True, removed
    wait_until(lambda: len(dirty_workers(server)) == 3, what="three dirty workers")


def test_dirty_commands_without_dirty_apps(serve, tmp_path):
    path = tmp_path / "c.ctl"
    serve("-w", "1", "--control-socket", str(path), "hello:app")
    wait_answering(path)
    assert data(path, "show dirty") == {
        "enabled": False, "pid": None, "workers": [], "apps": [],
    }
    assert data(path, "dirty add") == {"success": False, "error": "Dirty arbiter not running"}
    assert data(path, "show stats")["dirty_arbiter_pid"] is None


@pytest.mark.ferrocorn_only
def test_client_shows_dirty_workers_as_a_table_and_json(serve, tmp_path):
    server, path = start(serve, tmp_path)
    pids = dirty_workers(server)
    table = ctl(tmp_path, path, "show dirty")
    assert table.returncode == 0, table.stderr
    for pid in pids:
        assert str(pid) in table.stdout
    assert APP in table.stdout
    raw = ctl(tmp_path, path, "show dirty", "-j")
    assert raw.returncode == 0, raw.stderr
    shown = json.loads(raw.stdout)
    assert {w["pid"] for w in shown["workers"]} == pids
    grown = ctl(tmp_path, path, "dirty add 1", "-j")
    assert grown.returncode == 0 and json.loads(grown.stdout)["success"] is True
    wait_until(lambda: len(children(arbiter_pid(server))) == 3, what="a third dirty worker")
