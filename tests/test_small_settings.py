"""The small settings: --spew, tmp_upload_dir and --http-parser, against the real server."""

import pytest

from conftest import http_get


def test_spew_prints_the_lines_the_worker_runs(serve):
    server = serve("--spew", "hello:app")
    assert http_get(server.address).status == 200
    server.stop()
    out = server.stdout_text()
    # The app's own lines, with module name and line number, from the worker's main thread.
    assert 'hello:5:     body = b"Hello, World!\\n"' in out
    assert "hello:6:     start_response(" in out


def test_without_spew_nothing_is_traced(serve):
    server = serve("hello:app")
    assert http_get(server.address).status == 200
    server.stop()
    assert "hello:5:" not in server.stdout_text()


def test_spew_traces_hooks_in_the_master(serve, tmp_path):
    conf = tmp_path / "spew.conf.py"
    conf.write_text(
        "spew = True\n"
        "def when_ready(server):\n"
        "    marker = 'when_ready ran'\n"
        "    return marker\n"
    )
    server = serve("-c", conf, "hello:app")
    server.stop()
    assert "__config__:3:     marker = 'when_ready ran'" in server.stdout_text()


def test_tmp_upload_dir_is_accepted(serve, tmp_path):
    conf = tmp_path / "tmp.conf.py"
    conf.write_text("tmp_upload_dir = %r\n" % str(tmp_path))
    server = serve("-c", conf, "echo:app")
    body = b"x" * 300_000
    resp = http_get(server.address, "/", method="POST", body=body)
    assert resp.status == 200
    assert resp.body == body


def test_tmp_upload_dir_must_be_a_string(run, tmp_path):
    conf = tmp_path / "tmp.conf.py"
    conf.write_text("tmp_upload_dir = 5\n")
    result = run("-c", conf, "hello:app")
    assert result.returncode == 1
    assert "Invalid value for tmp_upload_dir: 5" in result.stderr
    assert "Error: Not a string: 5" in result.stderr


@pytest.mark.parametrize("parser", ["auto", "python"])
def test_http_parser_values_serve(serve, parser):
    server = serve("--http-parser", parser, "hello:app")
    resp = http_get(server.address)
    assert resp.status == 200
    assert resp.body == b"Hello, World!\n"


@pytest.mark.ferrocorn_only
def test_http_parser_fast_serves(serve):
    # Gunicorn answers every request 500 when its C parser is not installed.
    server = serve("--http-parser", "fast", "hello:app")
    assert http_get(server.address).status == 200


@pytest.mark.parametrize("parser", ["python", "fast"])
@pytest.mark.ferrocorn_only
def test_http_parser_keeps_the_limits(serve, parser):
    # Whatever the value, malformed requests get the same 400 from the one parser.
    server = serve("--http-parser", parser, "hello:app")
    resp = http_get(server.address, headers={"Bad Header": "x"})
    assert resp.status == 400


def test_http_parser_rejects_other_values(run):
    result = run("--http-parser", "slow", "hello:app")
    assert result.returncode == 1
    assert "Error: http_parser must be one of: auto, fast, python" in result.stderr
