"""Dirty streams under flow control, and an arbiter that keeps supervising through faults.

Flow control is per call (docs/dirty.md): a stream whose client does not read is paused at
its worker while the worker's other calls, and the other clients, go on; a stream paused
longer than dirty_timeout is cancelled; ferrocorn's async client pauses a stream its
consumer does not read. The arbiter survives running out of file descriptors, a worker
killed mid-stream is replaced on a working link, and a worker that dies before it is
ready is forked again only after a back-off.

All ferrocorn-only: the Gunicorn run has no ferrocorn package, and Gunicorn has no flow
control (it buffers a slow reader's stream in the arbiter; docs/differences.md).
"""

import asyncio
import os
import re
import signal
import socket
import time

import pytest

from conftest import children, wait_until
from control_support import data

dirty_client = pytest.importorskip("ferrocorn.dirty.client")
P = pytest.importorskip("ferrocorn.dirty.protocol")
DirtyTimeoutError = pytest.importorskip("ferrocorn.dirty.errors").DirtyTimeoutError

pytestmark = pytest.mark.ferrocorn_only

TASKS = "dirty_tasks:Tasks"
MIB = 1 << 20


def start(serve, tmp_path, conf, *extra, app=TASKS):
    path = tmp_path / "conf.py"
    path.write_text(conf)
    server = serve("-w", "1", "--dirty-app", app, "--dirty-workers", "1", "-c", str(path),
                   *extra, "dirty_web:app")
    server.wait_for_log(r"Spawned dirty arbiter \(pid: \d+\) at \S+")
    pid, sock = re.findall(r"Spawned dirty arbiter \(pid: (\d+)\) at (\S+)",
                           server.stderr_text())[-1]
    return server, int(pid), sock


def ready_client(path, timeout=30):
    c = dirty_client.DirtyClient(path, timeout=timeout)
    wait_until(lambda: c.execute(TASKS, "add", 1, 1) == 2, what="a dirty worker")
    return c


def made(progress):
    return progress.stat().st_size if progress.exists() else 0


def wait_stalled(progress):
    seen = []

    def settled():
        seen.append(made(progress))
        return len(seen) >= 4 and seen[-1] == seen[-4]

    wait_until(lambda: settled() or time.sleep(0.25), timeout=30, what="the stream to stall")
    return seen[-1]


def test_calls_made_inside_a_stream_loop_share_its_worker(serve, tmp_path):
    # Two threads, one worker: the stream's chunks and the calls made while reading it
    # share the worker's link. A stream outrunning its reader must not hold the replies.
    server, arb, path = start(serve, tmp_path, "dirty_threads = 2\ndirty_timeout = 0\n")
    c = ready_client(path)
    other = dirty_client.DirtyClient(path, timeout=30)
    n = 0
    for chunk in c.stream(TASKS, "blobs", 40, MIB, str(tmp_path / "p")):
        assert other.execute(TASKS, "add", len(chunk), n) == MIB + n
        n += 1
    assert n == 40
    c.close()
    other.close()


def test_a_stalled_stream_does_not_stop_other_calls_on_its_worker(serve, tmp_path):
    server, arb, path = start(serve, tmp_path, "dirty_threads = 4\ndirty_timeout = 0\n")
    stalled = ready_client(path)
    progress = tmp_path / "p"
    it = stalled.stream(TASKS, "blobs", 400, MIB, str(progress))
    assert next(it) == b"\x00" * MIB
    assert wait_stalled(progress) < 100
    (worker,) = children(arb)
    other = dirty_client.DirtyClient(path, timeout=15)
    for i in range(20):
        assert other.execute(TASKS, "add", i, 1) == i + 1
    assert list(other.stream(TASKS, "countdown", 5)) == ["tick %d" % i for i in (5, 4, 3, 2, 1)]
    assert children(arb) == {worker}
    # The stalled reader resumes and gets the rest, in order.
    for i in range(1, 400):
        assert next(it) == bytes([i % 256]) * MIB
    stalled.close()
    other.close()


def test_a_stream_paused_longer_than_dirty_timeout_is_cancelled(serve, tmp_path):
    server, arb, path = start(serve, tmp_path, "dirty_threads = 1\ndirty_timeout = 2\n")
    c = ready_client(path)
    (worker,) = children(arb)
    it = c.stream(TASKS, "blobs", 400, MIB, str(tmp_path / "p"))
    assert next(it)
    server.wait_for_log(r"paused for more than 2s", timeout=20)
    with pytest.raises(DirtyTimeoutError, match="paused for more than 2s"):
        for _ in it:
            pass
    # The worker was waiting for the client, not stuck: it stays, and serves again.
    assert ready_client(path).execute(TASKS, "add", 2, 3) == 5
    assert children(arb) == {worker}
    assert "DIRTY WORKER TIMEOUT" not in server.stderr_text()
    c.close()


def test_a_client_that_half_closes_mid_stream_frees_the_worker(serve, tmp_path):
    server, arb, path = start(serve, tmp_path, "dirty_threads = 1\ndirty_timeout = 0\n")
    ready_client(path).close()
    progress = tmp_path / "p"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(P.frame(P.MSG_REQUEST, 1, {"app_path": TASKS, "action": "blobs",
                                          "args": [400, MIB, str(progress)], "kwargs": {}}))
    wait_until(lambda: made(progress) > 0, what="the stream to start")
    s.shutdown(socket.SHUT_WR)  # EOF to the arbiter; it never reads either
    # The worker's only thread is free again: the stream was cancelled.
    other = dirty_client.DirtyClient(path, timeout=15)
    assert other.execute(TASKS, "add", 2, 2) == 4
    assert made(progress) < 400
    other.close()
    s.close()


def test_async_client_pauses_a_stream_its_consumer_does_not_read(serve, tmp_path):
    server, arb, path = start(serve, tmp_path, "dirty_threads = 2\ndirty_timeout = 0\n")
    ready_client(path).close()
    progress = tmp_path / "p"
    n = 150

    async def scenario():
        c = dirty_client.DirtyClient(path, timeout=30)
        it = c.stream_async(TASKS, "blobs", n, MIB, str(progress))
        assert await it.__anext__() == b"\x00" * MIB
        loop = asyncio.get_running_loop()
        stalled_at = await loop.run_in_executor(None, wait_stalled, progress)
        # Other calls on the same multiplexed connection still get their replies.
        assert await c.execute_async(TASKS, "add", 1, 2) == 3
        got = [await it.__anext__() for _ in range(1, n)]
        await c.close_async()
        return stalled_at, got

    stalled_at, got = asyncio.run(scenario())
    assert stalled_at < 100
    assert got == [bytes([i % 256]) * MIB for i in range(1, n)]


def test_a_worker_killed_mid_stream_is_replaced_on_a_working_link(serve, tmp_path):
    server, arb, path = start(serve, tmp_path, "dirty_threads = 2\ndirty_timeout = 0\n")
    c = ready_client(path)
    (worker,) = children(arb)
    it = c.stream(TASKS, "blobs", 400, MIB, str(tmp_path / "p"))
    assert next(it)
    wait_stalled(tmp_path / "p")
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: children(arb) and worker not in children(arb), what="a replacement")
    other = ready_client(path, timeout=10)
    for i in range(20):
        assert other.execute(TASKS, "add", i, i) == 2 * i
    c.close()
    other.close()


def test_a_worker_killed_before_it_is_ready_is_retried_with_backoff(serve, tmp_path):
    server, arb, path = start(serve, tmp_path, "", app="dirty_crashing:App")
    server.wait_for_log(r"failed to boot 3 time\(s\) in a row; next worker for it in 4s",
                        timeout=30)
    # 1 s, 2 s, 4 s: a handful of forks, not hundreds.
    assert server.stderr_text().count("Spawned dirty worker") <= 4


def test_dirty_add_waits_for_the_boot_back_off(serve, tmp_path):
    ctl_path = tmp_path / "c.ctl"
    server, arb, path = start(serve, tmp_path, "", "--control-socket", str(ctl_path),
                              app="dirty_crashing:App")
    server.wait_for_log(r"failed to boot 3 time\(s\) in a row; next worker for it in 4s",
                        timeout=30)
    added = data(ctl_path, "dirty add 1")
    assert added["spawned"] == 0, added
    assert "failed to boot recently" in added["reason"], added
