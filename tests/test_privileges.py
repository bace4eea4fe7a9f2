"""--user / --group / --initgroups: workers drop privileges, the master keeps its own and
hands the workers what they must own (the unix socket file, the log files)."""

import grp
import os
import pwd

import pytest
import requests

from conftest import APPS_DIR

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid)


@pytest.fixture
def world_readable_tmp(tmp_path):
    # pytest's tmp dirs are 0700; the workers, once they are nobody, must reach the log.
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o777)
    return d


def test_workers_run_as_the_given_user_and_group(serve, world_readable_tmp):
    log = world_readable_tmp / "error.log"
    # The log goes to the file, so the port is fixed by a socket handed over (fd://).
    server = serve("-u", "nobody", "-g", NOGROUP.gr_name, "--error-logfile", str(log),
                   "whoami:app", cwd=APPS_DIR, bind="fd")
    seen = requests.get(server.url, timeout=10).json()
    assert (seen["uid"], seen["gid"]) == (NOBODY.pw_uid, NOBODY.pw_gid)
    # The master keeps its identity.
    assert os.stat("/proc/%d" % server.master_pid).st_uid == 0
    # The workers own the log file, so they can reopen it on USR1.
    assert os.stat(log).st_uid == NOBODY.pw_uid
    assert "Booting worker" in log.read_text()


def test_numeric_ids_and_unix_socket_ownership(serve):
    server = serve("--user", str(NOBODY.pw_uid), "--group", str(NOBODY.pw_gid),
                   "whoami:app", bind="unix")
    assert os.stat(server.address).st_uid == NOBODY.pw_uid
    assert os.stat(server.address).st_gid == NOBODY.pw_gid


def test_initgroups_gives_the_users_supplementary_groups(serve):
    expected = sorted({g.gr_gid for g in grp.getgrall() if "nobody" in g.gr_mem}
                      | {NOBODY.pw_gid})
    server = serve("-u", "nobody", "-g", str(NOBODY.pw_gid), "--initgroups", "whoami:app")
    seen = requests.get(server.url, timeout=10).json()
    assert seen["groups"] == expected
