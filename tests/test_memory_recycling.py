"""max_worker_memory: the master replaces a worker whose PSS outgrows the limit, with the
same lossless hand-over as max_requests, and reports once (never recycles in a loop) a
worker that is over the limit as soon as it has booted. A ferrocorn extension.

Each check of the master is observable at debug level: a "Worker memory (PSS, MiB): pid:N
X, ..." line, so the tests count checks instead of sleeping.
"""

import re

import pytest

from conftest import wait_until
from loadgen import LoadGen
from metrics_support import metrics_url, wait_scrape

pytestmark = [pytest.mark.ferrocorn_only, pytest.mark.timeout(60)]

APP = "memory_app:app"
REPLACING = (r"Worker \(pid:(\d+)\) uses ([\d.]+) MiB \(PSS\), "
             r"over max_worker_memory (\d+) MiB: replacing it")
TOO_BIG_AT_BOOT = (r"Worker \(pid:(\d+)\) uses ([\d.]+) MiB \(PSS\) right after booting, "
                   r"over max_worker_memory")
READINGS = re.compile(r"Worker memory \(PSS, MiB\): (.*) \(read in")


def readings(server) -> list:
    """Every check the master logged: a {pid: MiB} dict each."""
    return [{int(pid): float(mib) for pid, mib in re.findall(r"pid:(\d+) ([\d.]+)", m.group(1))}
            for m in READINGS.finditer(server.stderr_text())]


def boot_size(server) -> float:
    """The biggest PSS the first checks found, in MiB."""
    first = wait_until(lambda: readings(server), what="a memory check; " + server.stderr_text())
    return max(first[0].values())


def wait_checks(server, pids, count: int, since: int):
    """Wait until each of `pids` was read `count` more times after the first `since` checks."""
    def done():
        later = readings(server)[since:]
        return all(sum(pid in r for r in later) >= count for pid in pids)

    wait_until(done, timeout=20, what="%d more checks of %s" % (count, pids))


# The leak per request: a sync worker serves one client at a time, the others all four.
@pytest.mark.parametrize("kind, kib", [
    pytest.param(("-k", "sync"), 256, id="sync"),
    pytest.param(("-k", "gthread", "--threads", "4"), 128, id="gthread"),
    pytest.param(("-k", "gevent"), 128, id="gevent"),
])
def test_a_leaking_worker_is_replaced_under_load_without_a_failed_request(serve, kind, kib):
    # The limit sits 30 MiB above the app's size at boot, read from the master's own checks
    # of a first server (the same app and worker class, no leak), so it fits any build.
    probe = serve(*kind, "-w", "1", "--max-worker-memory", "100000", "--log-level", "debug", APP)
    limit = int(boot_size(probe)) + 30
    probe.stop()
    server = serve(*kind, "-w", "2", "--max-worker-memory", str(limit), "--log-level", "debug",
                   "--prometheus-bind", "127.0.0.1:0", APP)
    first_pids = set(server.worker_pids())
    # 4 clients, 20 ms a request: a worker grows by about 12 MiB a second and crosses the
    # limit after two or three seconds, well after its first check (within a second of boot).
    load = LoadGen(server.address, "/?kib=%d&s=0.02" % kib, threads=4, limit=40)
    try:
        wait_until(lambda: len(re.findall(REPLACING, server.stderr_text())) >= 3
                   and len(load.worker_pids() - first_pids) >= 2,
                   timeout=30, what="three memory replacements; " + load.report())
        # The replacements serve the load too.
        since = load.mark("replaced")
        load.wait_ok(20, since=since)
    finally:
        load.stop()
    load.assert_lossless()
    log = server.stderr_text()
    replaced = [(int(pid), float(mib), int(lim)) for pid, mib, lim in re.findall(REPLACING, log)]
    assert all(lim == limit and mib > limit for _, mib, lim in replaced), replaced
    # Each replaced worker left after its hand-over, and answered requests until then.
    wait_until(lambda: all("Worker exiting (pid: %d)" % pid in server.stderr_text()
                           for pid, _, _ in replaced[:3]),
               timeout=15, what="the replaced workers to exit")
    answered = load.worker_pids()
    assert all(pid in answered for pid, _, _ in replaced), (replaced, answered)
    assert not re.search(TOO_BIG_AT_BOOT, log), log[-3000:]
    # The restarts are counted under their own reason.
    wait_scrape(metrics_url(server),
                lambda s: s.value("ferrocorn_worker_restarts_total", reason="memory") >= 3
                and s.value("ferrocorn_worker_restarts_total", reason="max_requests") == 0
                and s.value("ferrocorn_worker_restarts_total", reason="crash") == 0,
                what="three restarts for memory, none for anything else")


def test_a_worker_over_the_limit_at_boot_is_reported_once_and_kept(serve):
    server = serve("-w", "2", "--max-worker-memory", "48", "--log-level", "debug", APP,
                   env={"MEMORY_APP_BOOT_MIB": "96"})
    pids = set(server.worker_pids())
    assert len(pids) == 2
    warned = server.wait_for_log(TOO_BIG_AT_BOOT, count=2)
    assert {int(m.group(1)) for m in warned} == pids
    # Three more checks of both workers (a second apart at least): nothing new happens.
    wait_checks(server, pids, 3, since=len(readings(server)))
    log = server.stderr_text()
    assert len(re.findall(TOO_BIG_AT_BOOT, log)) == 2, log[-3000:]
    assert not re.search(REPLACING, log), log[-3000:]
    assert set(server.worker_pids()) == pids
    assert all(r[pid] > 48 for r in readings(server) for pid in r)
    load = LoadGen(server.address, "/", threads=2, limit=20)
    try:
        load.wait_ok(20)
    finally:
        load.stop()
    load.assert_lossless()
    assert load.worker_pids() <= pids


def test_preloaded_pages_count_by_their_share(serve):
    """With preload_app the workers share the master's pages: PSS charges each worker a
    share of them, while RSS charges each the whole 96 MiB, over the 80 MiB limit."""
    server = serve("-w", "2", "--preload", "--max-worker-memory", "80", "--log-level", "debug",
                   APP, env={"MEMORY_APP_BOOT_MIB": "96"})
    pids = set(server.worker_pids())
    wait_checks(server, pids, 3, since=0)
    log = server.stderr_text()
    assert not re.search(TOO_BIG_AT_BOOT, log), log[-3000:]
    assert not re.search(REPLACING, log), log[-3000:]
    assert all(r[pid] < 80 for r in readings(server) for pid in r)
    for pid in pids:
        status = open("/proc/%d/status" % pid).read()
        rss_mib = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024
        assert rss_mib > 96, status


@pytest.mark.parametrize("args, message, code", [
    (("--max-worker-memory", "-1"), "Invalid value for max_worker_memory: -1", 1),
    (("--max-worker-memory", "lots"), "argument --max-worker-memory: invalid int value: 'lots'",
     2),
])
def test_bad_values_fail_at_start_up(run, args, message, code):
    result = run(*args, APP, timeout=20)
    assert result.returncode == code, result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("value, message", [
    ("-5", "Value must be positive: -5"),
    ("'lots'", "invalid literal for int() with base 0: 'lots'"),
])
def test_bad_values_in_a_config_file_fail_at_start_up(run, tmp_path, value, message):
    conf = tmp_path / "memory.conf.py"
    conf.write_text("max_worker_memory = %s\n" % value)
    result = run("-c", conf, APP, timeout=20)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert "max_worker_memory" in result.stderr, result.stderr
