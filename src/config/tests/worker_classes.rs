//! Worker classes no built-in worker runs: how each is sorted, and the refusal
//! `check_supported` returns for it (the removed eventlet worker, Tornado's worker, names
//! that lead to no class, custom classes).

use pyo3::prelude::*;

use super::super::worker_class::{
    classify, closest_for, custom_refusal, Closest, Found, Named, GUNICORN_WORKERS,
};
use super::{config_file, load_ok, lock, scratch};
use crate::config::ConfigError;

/// Load with these arguments and return the refusal.
fn refused(args: &[&str]) -> ConfigError {
    let cfg = load_ok(args, &[]);
    assert_eq!(cfg.worker_kind(), None, "{args:?}");
    cfg.check_supported().expect_err("a refusal")
}

/// A scratch directory on `sys.path` holding these modules (name, source).
fn modules_dir(name: &str, modules: &[(&str, &str)]) {
    let dir = scratch(name);
    for (module, source) in modules {
        std::fs::write(dir.join(format!("{module}.py")), source).unwrap();
    }
    Python::attach(|py| {
        py.import("sys")
            .unwrap()
            .getattr("path")
            .unwrap()
            .call_method1("insert", (0, dir.to_string_lossy()))
            .unwrap();
    });
}

const EVENTLET_TEXT: &str = "Gunicorn removed its eventlet worker in version 26, and \
    ferrocorn, like Gunicorn 27, has none. Use -k gevent instead (an app that calls eventlet's \
    own API, such as eventlet.monkey_patch() or eventlet.spawn(), must move to gevent's \
    equivalents).";

#[test]
fn names_are_sorted_without_importing() {
    for name in [
        "eventlet",
        "egg:gunicorn#eventlet",
        "gunicorn.workers.geventlet.EventletWorker",
    ] {
        assert_eq!(classify(name), Named::Eventlet, "{name}");
    }
    for name in [
        "tornado",
        "egg:gunicorn#tornado",
        "gunicorn.workers.gtornado.TornadoWorker",
    ] {
        assert_eq!(classify(name), Named::Tornado, "{name}");
    }
    assert_eq!(classify("#sync"), Named::Hashed("sync"));
    assert_eq!(classify("##gevent"), Named::Hashed("gevent"));
    assert_eq!(classify("egg:gunicorn#gevent"), Named::Unknown("gevent"));
    assert_eq!(classify("foo"), Named::Unknown("foo"));
    assert_eq!(classify("#foo"), Named::Unknown("foo"));
    assert_eq!(classify("egg:gunicorn#foo"), Named::Unknown("foo"));
    for name in [
        "myproject.workers.MyWorker",
        "__config__.MyWorker",
        "egg:otherdist#worker",
        "gunicorn.workers.gthread.Other",
    ] {
        assert_eq!(classify(name), Named::Import, "{name}");
    }
}

/// Only `tornado` of Gunicorn's own names reaches the refusals: every other one, in each
/// spelling Gunicorn takes, runs a built-in worker.
#[test]
fn gunicorns_other_worker_names_all_run_a_built_in_worker() {
    let _g = lock();
    for short in GUNICORN_WORKERS.iter().filter(|n| **n != "tornado") {
        for name in [short.to_string(), format!("egg:gunicorn#{short}")] {
            let cfg = load_ok(&["-k", &name, "app:app"], &[]);
            assert!(cfg.worker_kind().is_some(), "{name}");
        }
    }
    for class in [
        "gunicorn.workers.sync.SyncWorker",
        "gunicorn.workers.gthread.ThreadWorker",
        "gunicorn.workers.ggevent.GeventWorker",
        "gunicorn.workers.ggevent.GeventPyWSGIWorker",
        "gunicorn.workers.gasgi.ASGIWorker",
    ] {
        assert!(
            load_ok(&["-k", class, "app:app"], &[])
                .worker_kind()
                .is_some(),
            "{class}"
        );
    }
    let err = refused(&["-k", "#sync", "app:app"]);
    assert_eq!(
        err.message,
        "Error: worker_class '#sync' is not supported: ferrocorn takes Gunicorn's worker names \
         without the leading '#' (-k sync)."
    );
}

#[test]
fn base_classes_map_to_the_closest_built_in_worker() {
    let cases = [
        ("gunicorn.workers.sync.SyncWorker", Closest::Worker("sync")),
        (
            "gunicorn.workers.gthread.ThreadWorker",
            Closest::Worker("gthread"),
        ),
        (
            "gunicorn.workers.ggevent.GeventWorker",
            Closest::Worker("gevent"),
        ),
        (
            "gunicorn.workers.ggevent.GeventPyWSGIWorker",
            Closest::Worker("gevent"),
        ),
        (
            "gunicorn.workers.base_async.AsyncWorker",
            Closest::Worker("gevent"),
        ),
        ("gunicorn.workers.gasgi.ASGIWorker", Closest::Worker("asgi")),
        ("uvicorn.workers.UvicornWorker", Closest::Worker("asgi")),
        (
            "uvicorn_worker._workers.UvicornH11Worker",
            Closest::Worker("asgi"),
        ),
        ("gunicorn.workers.gtornado.TornadoWorker", Closest::Tornado),
        (
            "gunicorn.workers.geventlet.EventletWorker",
            Closest::Eventlet,
        ),
        ("gunicorn.workers.base.Worker", Closest::None),
    ];
    for (class, closest) in cases {
        assert_eq!(closest_for(class), Some(closest), "{class}");
    }
    for class in [
        "builtins.object",
        "myproject.UvicornWorker",
        "SyncWorker",
        "",
    ] {
        assert_eq!(closest_for(class), None, "{class}");
    }
}

#[test]
fn custom_refusal_names_the_class_its_base_and_the_closest_worker() {
    let mro = |names: &[&str]| Found::Class(names.iter().map(|s| s.to_string()).collect());
    let text = custom_refusal(
        "myproject.workers.MyWorker",
        &mro(&[
            "myproject.workers.MyWorker",
            "gunicorn.workers.sync.SyncWorker",
            "gunicorn.workers.base.Worker",
        ]),
    );
    assert_eq!(
        text,
        "worker_class 'myproject.workers.MyWorker' is a custom worker class, which ferrocorn \
         cannot run.\n\nferrocorn's workers are written in Rust: there is no Python worker \
         object for a subclass to extend, so nothing the class overrides would ever be called. \
         It subclasses gunicorn.workers.sync.SyncWorker.\n\nThe closest built-in worker is -k \
         sync; move what the class adds into server hooks (post_fork, post_worker_init, \
         pre_request, post_request, worker_exit) or into WSGI/ASGI middleware."
    );

    // The most derived recognised base wins.
    let text = custom_refusal(
        "m.W",
        &mro(&[
            "m.W",
            "gunicorn.workers.ggevent.GeventWorker",
            "gunicorn.workers.base_async.AsyncWorker",
            "gunicorn.workers.base.Worker",
        ]),
    );
    assert!(text.contains(" It subclasses gunicorn.workers.ggevent.GeventWorker.\n"));
    assert!(text.contains("The closest built-in worker is -k gevent;"));

    let text = custom_refusal(
        "m.W",
        &Found::Needs(
            "gunicorn".into(),
            vec!["gunicorn.workers.gthread.ThreadWorker".into()],
        ),
    );
    assert!(text.contains(
        " Its module imports gunicorn, which is not installed here; going by its source, it \
         subclasses gunicorn.workers.gthread.ThreadWorker.\n"
    ));
    assert!(text.contains("The closest built-in worker is -k gthread;"));

    let text = custom_refusal("m.W", &Found::Needs("uvicorn".into(), vec![]));
    assert!(text.contains(" Its module imports uvicorn, which is not installed here.\n"));
    assert!(text.contains("Use one of the built-in workers (sync, gthread, gevent, asgi)"));

    let text = custom_refusal("__config__.MyWorker", &mro(&["__config__.MyWorker"]));
    assert!(text.starts_with(
        "worker_class MyWorker (a class in the config file) is a custom worker class"
    ));
    assert!(text.contains(" It does not derive from a Gunicorn or Uvicorn worker.\n"));

    let text = custom_refusal(
        "m.T",
        &mro(&["m.T", "gunicorn.workers.gtornado.TornadoWorker"]),
    );
    assert!(text.ends_with(
        "It extends Tornado's worker, which ferrocorn does not run either (see -k tornado): a \
         WSGI app runs on -k gthread or -k gevent."
    ));
    let text = custom_refusal(
        "m.E",
        &Found::Needs(
            "gunicorn".into(),
            vec!["gunicorn.workers.geventlet.EventletWorker".into()],
        ),
    );
    assert!(text.ends_with(
        "It extends the eventlet worker, which Gunicorn removed in version 26: use -k gevent."
    ));
}

#[test]
fn eventlet_is_refused_with_gunicorns_first_line() {
    let _g = lock();
    for name in [
        "eventlet",
        "egg:gunicorn#eventlet",
        "gunicorn.workers.geventlet.EventletWorker",
    ] {
        let err = refused(&["-k", name, "app:app"]);
        assert_eq!(
            err.message,
            format!("Error: class uri '{name}' invalid or not found: \n\n{EVENTLET_TEXT}")
        );
        assert_eq!(err.exit_code, 1);
        assert_eq!(
            err.report(),
            format!("\nError: class uri '{name}' invalid or not found: \n\n{EVENTLET_TEXT}\n")
        );
    }
}

#[test]
fn tornado_is_refused_with_the_reason() {
    let _g = lock();
    let err = refused(&["-k", "tornado", "app:app"]);
    assert_eq!(err.exit_code, 1);
    let paragraphs: Vec<&str> = err.message.split("\n\n").collect();
    assert_eq!(
        paragraphs,
        [
            "Error: worker_class 'tornado' is not supported: ferrocorn does not run Tornado's \
             worker.",
            "Gunicorn's tornado worker hands its sockets to Tornado's own HTTPServer, which \
             accepts the connections and parses HTTP in Python. In ferrocorn, Rust owns the \
             sockets and the HTTP parsing, so serving a Tornado application would mean \
             re-hosting Tornado's server machinery, which ferrocorn does not do.",
            "Instead: a WSGI app runs on -k gthread or -k gevent. A tornado.web.Application \
             runs under Tornado's own server (app.listen(), behind your proxy), or under -k \
             asgi if you already have an ASGI adapter for it.",
        ]
    );
    let err = refused(&["-k", "gunicorn.workers.gtornado.TornadoWorker", "app:app"]);
    assert!(err.message.starts_with(
        "Error: worker_class 'gunicorn.workers.gtornado.TornadoWorker' is not supported: \
         ferrocorn does not run Tornado's worker.\n\n"
    ));
}

#[test]
fn names_that_lead_to_no_class_get_gunicorns_first_line() {
    let _g = lock();
    let err = refused(&["-k", "nosuchworker", "app:app"]);
    assert_eq!(
        err.message,
        "Error: class uri 'nosuchworker' invalid or not found: \n\nNo worker is named \
         'nosuchworker'. The built-in workers are sync, gthread, gevent, asgi; a worker class \
         of your own is named by its dotted path (module.Class)."
    );
    assert_eq!(err.exit_code, 1);

    modules_dir(
        "wc-missing",
        &[
            ("ferro_wc_plain", "VALUE = 1\n"),
            (
                "ferro_wc_raises",
                "raise RuntimeError('broken at import')\n",
            ),
        ],
    );
    let cases = [
        (
            "ferro_wc_no_such_module.Worker",
            "ModuleNotFoundError: No module named 'ferro_wc_no_such_module'",
        ),
        (
            "ferro_wc_plain.Worker",
            "module 'ferro_wc_plain' has no attribute 'Worker'",
        ),
        (
            "ferro_wc_plain.VALUE",
            "ferro_wc_plain.VALUE is not a class (its type is int)",
        ),
        (
            "egg:ferro-wc-no-such-dist#w",
            "no installed distribution is named 'ferro-wc-no-such-dist'",
        ),
    ];
    for (name, why) in cases {
        let err = refused(&["-k", name, "app:app"]);
        assert_eq!(
            err.message,
            format!("Error: class uri '{name}' invalid or not found: \n\n{why}")
        );
    }
    // A module whose own code fails: its traceback, as Gunicorn prints it, from the
    // module's own frame (none of the loader's).
    let err = refused(&["-k", "ferro_wc_raises.Worker", "app:app"]);
    let (first, rest) = err.message.split_once("\n\n").unwrap();
    assert_eq!(
        first,
        "Error: class uri 'ferro_wc_raises.Worker' invalid or not found: "
    );
    assert!(rest.starts_with("Traceback (most recent call last):\n  File \""));
    assert!(rest.contains("ferro_wc_raises.py\", line 1, in <module>"));
    assert!(rest.ends_with("RuntimeError: broken at import"));
    assert!(!rest.contains("importlib"));
}

#[test]
fn custom_classes_are_imported_to_name_their_base() {
    let _g = lock();
    modules_dir(
        "wc-custom",
        &[
            (
                "ferro_wc_custom",
                "class Plain:\n    pass\n\nclass Child(Plain):\n    pass\n",
            ),
            (
                "ferro_wc_needs",
                "import os\nfrom gunicorn.workers.ggevent import GeventWorker as GW\n\n\
                 class MyGevent(GW):\n    pass\n",
            ),
        ],
    );
    let err = refused(&["-k", "ferro_wc_custom.Child", "app:app"]);
    assert_eq!(err.exit_code, 1);
    assert!(err.message.starts_with(
        "Error: worker_class 'ferro_wc_custom.Child' is a custom worker class, which ferrocorn \
         cannot run.\n\n"
    ));
    assert!(err
        .message
        .contains(" It does not derive from a Gunicorn or Uvicorn worker.\n\n"));

    // gunicorn is not among this project's dependencies; where it is installed after all,
    // the class is imported for real and its MRO names the same base.
    let gunicorn_installed = Python::attach(|py| py.import("gunicorn").is_ok());
    let err = refused(&["-k", "ferro_wc_needs.MyGevent", "app:app"]);
    if !gunicorn_installed {
        assert!(err.message.contains(
            " Its module imports gunicorn, which is not installed here; going by its source, it \
             subclasses gunicorn.workers.ggevent.GeventWorker.\n\n"
        ));
    }
    assert!(err
        .message
        .contains("The closest built-in worker is -k gevent;"));
}

#[test]
fn a_class_object_in_the_config_file_is_refused_by_its_name() {
    let _g = lock();
    let file = config_file(
        "wc-object",
        "class MyWorker:\n    pass\n\nworker_class = MyWorker\n",
    );
    let err = refused(&["-c", &file, "app:app"]);
    assert!(
        err.message.starts_with(
            "Error: worker_class MyWorker (a class in the config file) is a custom worker \
             class, which ferrocorn cannot run.\n\n"
        ),
        "{}",
        err.message
    );
}
