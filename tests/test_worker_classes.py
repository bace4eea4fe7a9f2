"""Worker classes the server refuses at start-up: Gunicorn's removed eventlet worker,
Tornado's worker, names that lead to no class, and custom (Python subclass) worker classes.

Each case runs the real command to its exit and checks stderr line for line. Where ferrocorn
words a refusal its own way, the test is ``ferrocorn_only``; the lines Gunicorn 27 prints too
(its ``class uri ... invalid or not found`` line and exit status 1) are checked in both modes.
"""

import importlib.util

import pytest

EVENTLET_NAMES = ["eventlet", "egg:gunicorn#eventlet", "gunicorn.workers.geventlet.EventletWorker"]
TORNADO_NAMES = ["tornado", "egg:gunicorn#tornado", "gunicorn.workers.gtornado.TornadoWorker"]

EVENTLET_TEXT = (
    "Gunicorn removed its eventlet worker in version 26, and ferrocorn, like Gunicorn 27, has "
    "none. Use -k gevent instead (an app that calls eventlet's own API, such as "
    "eventlet.monkey_patch() or eventlet.spawn(), must move to gevent's equivalents)."
)

TORNADO_REASON = (
    "Gunicorn's tornado worker hands its sockets to Tornado's own HTTPServer, which accepts the "
    "connections and parses HTTP in Python. In ferrocorn, Rust owns the sockets and the HTTP "
    "parsing, so serving a Tornado application would mean re-hosting Tornado's server "
    "machinery, which ferrocorn does not do."
)
TORNADO_INSTEAD = (
    "Instead: a WSGI app runs on -k gthread or -k gevent. A tornado.web.Application runs under "
    "Tornado's own server (app.listen(), behind your proxy), or under -k asgi if you already "
    "have an ASGI adapter for it."
)

CUSTOM_WHY = (
    "ferrocorn's workers are written in Rust: there is no Python worker object for a subclass "
    "to extend, so nothing the class overrides would ever be called."
)
HOOKS = (
    "move what the class adds into server hooks (post_fork, post_worker_init, pre_request, "
    "post_request, worker_exit) or into WSGI/ASGI middleware."
)


def refused(run, *args, **kwargs):
    """Run the command with a worker class it must refuse: exit 1, nothing on stdout, no
    server started. Returns stderr's lines."""
    result = run("-b", "127.0.0.1:0", *args, **kwargs)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Listening at" not in result.stderr
    return result.stderr.split("\n")


def not_found_line(name):
    return "Error: class uri '%s' invalid or not found: " % name


# --- Gunicorn's own first line and exit status, in both modes -------------------------------


@pytest.mark.parametrize("name", EVENTLET_NAMES)
def test_eventlet_gets_gunicorns_first_line(run, name):
    lines = refused(run, "-k", name, "hello:app")
    assert lines[:3] == ["", not_found_line(name), ""]


@pytest.mark.parametrize(
    "name", ["nosuchworker", "egg:gunicorn#nosuchworker", "ferro_no_such_module.Worker"]
)
def test_a_name_that_leads_to_no_class_gets_gunicorns_first_line(run, name):
    lines = refused(run, "-k", name, "hello:app")
    assert lines[:3] == ["", not_found_line(name), ""]


def test_a_module_that_fails_to_import_gets_gunicorns_first_line(run, tmp_path):
    (tmp_path / "broken_worker.py").write_text("raise RuntimeError('broken at import')\n")
    lines = refused(run, "--pythonpath", tmp_path, "-k", "broken_worker.Worker", "hello:app")
    assert lines[:3] == ["", not_found_line("broken_worker.Worker"), ""]
    # The traceback ends at the module's own failure.
    assert 'broken_worker.py", line 1, in <module>' in "\n".join(lines)
    assert "RuntimeError: broken at import" in lines


# --- ferrocorn's explanations ---------------------------------------------------------------


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("name", EVENTLET_NAMES)
def test_eventlet_explains_the_removal(run, name):
    lines = refused(run, "-k", name, "hello:app")
    assert lines == ["", not_found_line(name), "", EVENTLET_TEXT, "", ""]


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("name", TORNADO_NAMES)
def test_tornado_is_refused_with_the_reason(run, name):
    lines = refused(run, "-k", name, "hello:app")
    assert lines == [
        "",
        "Error: worker_class '%s' is not supported: ferrocorn does not run Tornado's worker."
        % name,
        "",
        TORNADO_REASON,
        "",
        TORNADO_INSTEAD,
        "",
        "",
    ]


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize(
    "name, why",
    [
        (
            "nosuchworker",
            "No worker is named 'nosuchworker'. The built-in workers are sync, gthread, gevent, "
            "asgi; a worker class of your own is named by its dotted path (module.Class).",
        ),
        (
            "ferro_no_such_module.Worker",
            "ModuleNotFoundError: No module named 'ferro_no_such_module'",
        ),
        ("hello.Worker", "module 'hello' has no attribute 'Worker'"),
        ("hello.app", "hello.app is not a class (its type is function)"),
        ("egg:ferro-no-such-dist#w", "no installed distribution is named 'ferro-no-such-dist'"),
    ],
)
def test_a_name_that_leads_to_no_class_says_why(run, name, why):
    lines = refused(run, "-k", name, "hello:app")
    assert lines == ["", not_found_line(name), "", why, "", ""]


def custom(name, base_sentence, instead):
    return [
        "",
        "Error: worker_class %s is a custom worker class, which ferrocorn cannot run." % name,
        "",
        CUSTOM_WHY + base_sentence,
        "",
        instead,
        "",
        "",
    ]


def write_stub_gunicorn(root):
    """A stand-in for an installed Gunicorn: the two worker classes the tests subclass, at
    Gunicorn's module paths (the refusal goes by those names)."""
    workers = root / "gunicorn" / "workers"
    workers.mkdir(parents=True)
    (root / "gunicorn" / "__init__.py").write_text("")
    (workers / "__init__.py").write_text("")
    (workers / "sync.py").write_text("class SyncWorker:\n    pass\n")
    (workers / "ggevent.py").write_text("class GeventWorker:\n    pass\n")


WORKERS_MODULE = (
    "from gunicorn.workers.sync import SyncWorker\n"
    "from gunicorn.workers import ggevent\n"
    "\n"
    "class MySync(SyncWorker):\n"
    "    pass\n"
    "\n"
    "class MyGevent(ggevent.GeventWorker):\n"
    "    def handle_request(self, *args):\n"
    "        return super().handle_request(*args)\n"
)


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("cls, base, kind", [
    ("MySync", "gunicorn.workers.sync.SyncWorker", "sync"),
    ("MyGevent", "gunicorn.workers.ggevent.GeventWorker", "gevent"),
])
def test_a_gunicorn_subclass_is_refused_naming_the_closest_worker(run, tmp_path, cls, base, kind):
    if importlib.util.find_spec("gunicorn") is not None:
        pytest.skip("gunicorn is installed next to ferrocorn: the class would import for real")
    pkg = tmp_path / "myproject"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "workers.py").write_text(WORKERS_MODULE)
    name = "myproject.workers." + cls
    # Found through --pythonpath, as Gunicorn finds it.
    lines = refused(run, "--pythonpath", tmp_path, "-k", name, "hello:app")
    assert lines == custom(
        "'%s'" % name,
        " Its module imports gunicorn, which is not installed here; going by its source, it "
        "subclasses %s." % base,
        "The closest built-in worker is -k %s; %s" % (kind, HOOKS),
    )

    # With Gunicorn importable the class itself is imported and its MRO read.
    stub = tmp_path / "stub"
    write_stub_gunicorn(stub)
    lines = refused(
        run, "--pythonpath", "%s,%s" % (tmp_path, stub), "-k", name, "hello:app"
    )
    assert lines == custom(
        "'%s'" % name,
        " It subclasses %s." % base,
        "The closest built-in worker is -k %s; %s" % (kind, HOOKS),
    )


@pytest.mark.ferrocorn_only
def test_a_class_object_in_the_config_file_is_refused(run, tmp_path):
    conf = tmp_path / "workers.conf.py"
    conf.write_text(
        "class MyWorker:\n"
        "    def init_process(self):\n"
        "        pass\n"
        "\n"
        "worker_class = MyWorker\n"
    )
    lines = refused(run, "-c", conf, "hello:app")
    assert lines == custom(
        "MyWorker (a class in the config file)",
        " It does not derive from a Gunicorn or Uvicorn worker.",
        "Use one of the built-in workers (sync, gthread, gevent, asgi) and " + HOOKS,
    )


@pytest.mark.ferrocorn_only
def test_a_subclass_from_a_config_file_is_refused_with_its_base(run, tmp_path):
    stub = tmp_path / "stub"
    write_stub_gunicorn(stub)
    conf = tmp_path / "workers.conf.py"
    conf.write_text(
        "import sys\n"
        "sys.path.insert(0, %r)\n"
        "from gunicorn.workers.ggevent import GeventWorker\n"
        "\n"
        "class PooledGevent(GeventWorker):\n"
        "    pass\n"
        "\n"
        "worker_class = PooledGevent\n" % str(stub)
    )
    lines = refused(run, "-c", conf, "hello:app")
    assert lines == custom(
        "PooledGevent (a class in the config file)",
        " It subclasses gunicorn.workers.ggevent.GeventWorker.",
        "The closest built-in worker is -k gevent; " + HOOKS,
    )


@pytest.mark.ferrocorn_only
def test_another_distributions_entry_point_is_refused_as_a_custom_class(run, tmp_path):
    # An installed distribution that declares a worker in Gunicorn's entry point group.
    dist = tmp_path / "ferro_uv_workers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ferro-uv-workers\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[gunicorn.workers]\nuv = ferro_uv_workers:UvicornWorker\n"
    )
    # Named like uvicorn's worker, but it is not uvicorn's: nothing to recognise.
    (tmp_path / "ferro_uv_workers.py").write_text("class UvicornWorker:\n    pass\n")
    name = "egg:ferro-uv-workers#uv"
    lines = refused(run, "--pythonpath", tmp_path, "-k", name, "hello:app")
    assert lines == custom(
        "'%s'" % name,
        " It does not derive from a Gunicorn or Uvicorn worker.",
        "Use one of the built-in workers (sync, gthread, gevent, asgi) and " + HOOKS,
    )
    lines = refused(run, "--pythonpath", tmp_path, "-k", "egg:ferro-uv-workers#nope", "hello:app")
    assert lines == [
        "",
        not_found_line("egg:ferro-uv-workers#nope"),
        "",
        "ferro-uv-workers has no entry point 'nope' in the group 'gunicorn.workers'",
        "",
        "",
    ]
