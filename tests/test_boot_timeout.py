"""Booting is timed apart from serving: `timeout` starts once a worker is ready, and the
separate `boot_timeout` bounds the boot (a ferrocorn setting; Gunicorn counts a slow import
against `timeout` and kills the worker in a loop)."""

import pytest
import requests

pytestmark = [pytest.mark.ferrocorn_only, pytest.mark.timeout(60)]


def test_a_boot_longer_than_timeout_is_not_killed(serve):
    # Gunicorn would abort this worker after about a second, again and again.
    server = serve("--timeout", "1", "slow_boot:app", env={"BOOT_SLEEP": "4"}, ready_timeout=30)
    assert requests.get(server.url, timeout=10).text.startswith("ready ")
    text = server.stderr_text()
    assert "still booting" in text
    assert "TIMEOUT" not in text
    assert text.count("Booting worker with pid") == 1


def test_a_boot_past_boot_timeout_is_aborted_with_its_stack(serve):
    server = serve("--timeout", "1", "--boot-timeout", "3", "slow_boot:app",
                   env={"BOOT_SLEEP": "60"}, ready=None)
    (crit,) = server.wait_for_log(
        r"\[CRITICAL\] WORKER BOOT TIMEOUT \(pid:(\d+)\) \(still booting after \d+ s, "
        r"boot_timeout 3 s\)", timeout=20)
    pid = int(crit.group(1))
    (match,) = server.wait_for_log(r"Worker \(pid:%d\) aborted while booting" % pid, timeout=15)
    after = server.stderr_text()[match.end():]
    assert "_load_model" in after and "slow_boot.py" in after  # where the boot was stuck
    # The master replaces it and keeps trying, as it does for any worker that dies.
    server.wait_for_log(r"Booting worker with pid", count=2, timeout=15)


def test_boot_timeout_is_never_shorter_than_timeout(serve):
    # --boot-timeout 1 with --timeout 5: the worker still gets 5 s to boot, as under Gunicorn.
    server = serve("--timeout", "5", "--boot-timeout", "1", "slow_boot:app",
                   env={"BOOT_SLEEP": "3"}, ready_timeout=30)
    assert requests.get(server.url, timeout=10).status_code == 200
    assert "TIMEOUT" not in server.stderr_text()
