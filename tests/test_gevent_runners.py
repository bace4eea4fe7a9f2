"""The gevent worker's runner greenlets (``ferrocorn._gevent.Runners``), driven directly: a
finished runner takes the next request instead of a new greenlet being started, at most
``worker_connections`` of them wait, and ``trim`` ends those that were not needed."""

import gevent
import pytest

from conftest import is_gunicorn

pytestmark = pytest.mark.ferrocorn_only


def runners(limit):
    if is_gunicorn():
        pytest.skip("ferrocorn's own module")
    from ferrocorn._gevent import IDLE_FLOOR, Runners

    served = []

    def run_call(call):
        served.append((call, gevent.getcurrent()))
        gevent.sleep(0.001)

    return Runners(run_call, limit), served, IDLE_FLOOR


def test_a_finished_runner_takes_the_next_request():
    r, served, _ = runners(100)
    for i in range(10):
        r.submit(i)
    gevent.sleep(0.05)
    assert len(r.idle) == 10
    for i in range(10, 20):
        r.submit(i)
    gevent.sleep(0.05)
    assert sorted(c for c, _ in served) == list(range(20))
    first = {g for c, g in served if c < 10}
    second = {g for c, g in served if c >= 10}
    assert second == first, "the second batch ran on new greenlets"


def test_idle_runners_are_capped_and_trimmed_to_what_was_needed():
    r, served, floor = runners(50)
    for i in range(80):
        r.submit(i)
    gevent.sleep(0.1)
    assert len(served) == 80
    assert len(r.idle) == 50, "more runners wait than worker_connections"
    r.trim()  # a burst just started runners: none is surplus yet
    assert len(r.idle) == 50
    # 30 at once since that trim: 30 runners were needed, 20 were not.
    for i in range(30):
        r.submit(100 + i)
    gevent.sleep(0.05)
    assert len(served) == 110 and len(r.idle) == 50
    r.trim()
    gevent.sleep(0.05)
    assert len(r.idle) == 30
    # Nothing since: down to the floor, and no further.
    r.trim()
    gevent.sleep(0.05)
    assert len(r.idle) == floor
    r.trim()
    gevent.sleep(0.05)
    assert len(r.idle) == floor


def test_a_runner_thrown_an_exception_after_it_was_handed_a_request_still_serves_it():
    r, served, _ = runners(10)
    r.submit(1)
    gevent.sleep(0.05)
    (runner,) = {g for _, g in served}
    assert len(r.idle) == 1
    # In one loop pass: something the app left behind throws into the idle runner, then a
    # request is handed to it (the throw runs first, as a stale timer's would).
    r.run_callback(runner.throw, ValueError("stale"))
    r.submit(2)
    gevent.sleep(0.05)
    assert [c for c, _ in served] == [1, 2], "the request handed over was lost"


def test_a_runner_thrown_an_exception_while_idle_leaves_the_pool():
    r, served, _ = runners(10)
    r.submit(1)
    gevent.sleep(0.05)
    (runner,) = {g for _, g in served}
    r.run_callback(runner.throw, ValueError("stale"))
    gevent.sleep(0.01)
    assert r.idle == [] and runner.dead
    r.submit(2)
    gevent.sleep(0.05)
    assert [c for c, _ in served] == [1, 2]
