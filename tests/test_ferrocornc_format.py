"""ferrocornc's formatters and command splitting, called in-process on values a live server
rarely produces. The tables of ordinary replies are checked through the real command, against
gunicornc too, in test_ferrocornc_replies.py."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ferrocorn_only


@pytest.fixture
def fmt():
    from ferrocorn.ctl import format as module

    return module


@pytest.mark.parametrize(
    "uptime, shown",
    [
        (None, "unknown"),
        (0, "unknown"),  # as gunicornc: a zero uptime reads unknown
        (0.4, "0s"),
        (59.99, "59s"),
        (60, "1m 0s"),
        (3599.5, "59m 59s"),
        (3600, "1h 0m 0s"),
        (90061.2, "25h 1m 1s"),
        (True, "unknown"),
        ("12", "unknown"),
        (float("inf"), "inf"),
        (float("nan"), "nan"),
    ],
)
def test_uptime(fmt, uptime, shown):
    first = fmt.format_stats({"uptime": uptime}).splitlines()[0]
    assert first == "Uptime:           " + shown


def test_columns_are_padded_not_truncated(fmt):
    table = fmt.format_workers({"workers": [{"pid": 12345678901, "age": 1234567,
                                              "booted": 1, "last_heartbeat": 0}], "count": 1})
    assert table.splitlines()[2] == "12345678901 1234567 yes      0s ago"


def test_reply_of_another_command_is_json_or_ok(fmt):
    assert fmt.format_reply(["worker", "add"], {"added": 1}) == '{\n  "added": 1\n}'
    assert fmt.format_reply(["reload"], {}) == "OK"
    assert fmt.format_reply(["reload"], None) == "OK"
    assert fmt.format_reply(["SHOW", "Dirty"], {"enabled": False}) == "Dirty arbiter not running"


def test_wrong_container_types_fall_back_to_json(fmt):
    assert fmt.format_workers({"workers": {"1": 2}}) == '{\n  "workers": {\n    "1": 2\n  }\n}'
    assert fmt.format_listeners([1]) == "[\n  1\n]"
    assert fmt.format_help({}) == "Available commands:\n"


def test_split_command():
    from ferrocorn.ctl.client import ControlError, split_command

    assert split_command("worker add 2") == (["worker", "add"], ["2"])
    assert split_command("worker add -1") == (["worker", "add"], ["-1"])
    assert split_command("show  'workers'") == (["show", "workers"], [])
    assert split_command("worker kill 12 extra") == (["worker", "kill"], ["12", "extra"])
    assert split_command("") == ([], [])
    with pytest.raises(ControlError, match="No closing quotation"):
        split_command('show "workers')
