"""A small Django project on the real server: a form protected by CSRF, the admin login page
(and a real login), and a FileResponse that Django hands to `wsgi.file_wrapper`."""

from __future__ import annotations

import re
import time

import pytest
import requests

from conftest import RawResponse, raw_request

pytestmark = pytest.mark.timeout(90)

DOWNLOAD = bytes(range(256)) * 2048


@pytest.fixture(params=["sendfile", "no-sendfile"])
def django_server(request, serve, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    args = ["--no-sendfile"] if request.param == "no-sendfile" else []
    server = serve(
        *args, "djproject.wsgi_full:application",
        env={"DJANGO_DB": str(tmp_path / "db.sqlite3"), "DJANGO_MARKER_DIR": str(markers)},
        ready_path="/greet/",
    )
    server.finished = lambda: (
        len((markers / "request_finished").read_text().splitlines())
        if (markers / "request_finished").exists() else 0
    )
    return server


def _csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF field in:\n" + html[:2000]
    return match.group(1)


def _wait_finished(server, count: int) -> int:
    deadline = time.monotonic() + 10
    while server.finished() < count and time.monotonic() < deadline:
        time.sleep(0.05)  # poll interval
    return server.finished()


def test_form_with_csrf(django_server):
    url = django_server.url + "/contact/"
    with requests.Session() as browser:
        page = browser.get(url, timeout=10)
        assert page.status_code == 200
        assert "csrftoken" in browser.cookies
        token = _csrf_token(page.text)
        assert 'name="email"' in page.text

        fields = {"name": "Grace Hopper", "email": "grace@example.test", "message": "Hi\nthere"}
        # Without the token the CSRF middleware refuses the POST.
        refused = browser.post(url, data=fields, timeout=10)
        assert refused.status_code == 403
        assert "CSRF" in refused.text

        accepted = browser.post(url, data=dict(fields, csrfmiddlewaretoken=token), timeout=10)
        assert accepted.status_code == 200
        assert accepted.json() == {"thanks": "Grace Hopper", "email": "grace@example.test"}

        invalid = browser.post(url, data=dict(fields, email="nope", csrfmiddlewaretoken=token),
                               timeout=10)
        assert invalid.status_code == 400
        assert invalid.json() == {"errors": ["email"]}
        # The token also works from the header, as JavaScript clients send it.
        via_header = browser.post(url, data=fields, timeout=10,
                                  headers={"X-CSRFToken": browser.cookies["csrftoken"]})
        assert via_header.status_code == 200


def test_admin_login_page_and_login(django_server):
    base = django_server.url
    with requests.Session() as browser:
        redirect = browser.get(base + "/admin/", timeout=10, allow_redirects=False)
        assert redirect.status_code == 302
        assert redirect.headers["Location"] == "/admin/login/?next=/admin/"

        login = browser.get(base + "/admin/login/?next=/admin/", timeout=10)
        assert login.status_code == 200
        assert "<title>Log in | Django site admin</title>" in login.text
        assert 'name="username"' in login.text and 'name="password"' in login.text
        token = _csrf_token(login.text)

        wrong = browser.post(base + "/admin/login/?next=/admin/", timeout=10, data={
            "username": "admin", "password": "wrong", "csrfmiddlewaretoken": token,
            "next": "/admin/"})
        assert wrong.status_code == 200
        assert "Please enter the correct username and password" in wrong.text

        right = browser.post(base + "/admin/login/?next=/admin/", timeout=10,
                             allow_redirects=False, data={
                                 "username": "admin", "password": "admin-pass",
                                 "csrfmiddlewaretoken": _csrf_token(wrong.text),
                                 "next": "/admin/"})
        assert right.status_code == 302
        assert right.headers["Location"] == "/admin/"
        assert "sessionid" in browser.cookies
        index = browser.get(base + "/admin/", timeout=10)
        assert index.status_code == 200
        assert "Site administration" in index.text
        users = browser.get(base + "/admin/auth/user/", timeout=10)
        assert users.status_code == 200
        assert "admin@example.test" in users.text


def test_file_response_goes_through_file_wrapper(django_server):
    before = django_server.finished()
    resp = requests.get(django_server.url + "/download/", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["X-File-Wrapper"] == "yes"
    assert resp.headers["Content-Length"] == str(len(DOWNLOAD))
    assert resp.headers["Content-Disposition"] == 'attachment; filename="report.bin"'
    assert resp.content == DOWNLOAD
    # Django closes the file and sends request_finished from close(): the server called it.
    assert _wait_finished(django_server, before + 1) == before + 1

    head = RawResponse(raw_request(django_server.address,
                                   b"HEAD /download/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
    assert head.status == 200
    assert head.header("content-length") == str(len(DOWNLOAD))
    assert head.raw_body == b""
    assert _wait_finished(django_server, before + 2) == before + 2


def test_request_finished_fires_once_per_request(django_server):
    before = django_server.finished()
    for _ in range(3):
        assert requests.get(django_server.url + "/greet/?q=x", timeout=10).status_code == 200
    assert requests.get(django_server.url + "/missing/", timeout=10).status_code == 404
    assert _wait_finished(django_server, before + 4) == before + 4
    # Not a wait for an event: the window in which a duplicate signal would show up.
    time.sleep(0.2)
    assert django_server.finished() == before + 4
