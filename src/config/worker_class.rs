//! Refusing a `worker_class` that no built-in worker runs, with a message that says why and
//! what to use instead: Gunicorn's removed eventlet worker, Tornado's worker, names that
//! lead to no class, and custom worker classes (Python subclasses of Gunicorn's workers).
//!
//! Owns: sorting such a name into one of those cases and wording the refusal. Must not:
//! decide which names the built-in workers run (`resolved.rs` and `Config::resolve` do), or
//! use what it imports for anything but the message. For a dotted path it imports the
//! class's module, as Gunicorn's `load_class` does at start-up (`support.py`): that tells a
//! name that leads nowhere from a custom class, and shows which worker the class extends.

use pyo3::prelude::*;

use super::pytext::py_repr;
use super::{support, ConfigError};

/// The worker names Gunicorn 27 ships (`gunicorn.workers.SUPPORTED_WORKERS`). All but
/// `tornado` resolve to a built-in worker before anything here is asked.
pub(crate) const GUNICORN_WORKERS: &[&str] = &[
    "sync",
    "gthread",
    "gevent",
    "gevent_wsgi",
    "gevent_pywsgi",
    "tornado",
    "asgi",
];

const TORNADO_CLASS: &str = "gunicorn.workers.gtornado.TornadoWorker";

/// The eventlet worker's class in Gunicorn 25 and earlier.
const EVENTLET_CLASS: &str = "gunicorn.workers.geventlet.EventletWorker";

/// What the refusals offer instead.
const BUILT_IN: &str = "sync, gthread, gevent, asgi";

/// A worker class that no built-in worker runs, sorted by what can be said about it without
/// importing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Named<'a> {
    /// Gunicorn's eventlet worker, gone since Gunicorn 26.
    Eventlet,
    /// Gunicorn's tornado worker.
    Tornado,
    /// One of Gunicorn's worker names after a `#`, which Gunicorn strips; the bare name.
    Hashed(&'a str),
    /// A short name (or `egg:gunicorn#name`) that no worker has; the name without `#`.
    Unknown(&'a str),
    /// A dotted path or another distribution's entry point: what it is takes an import.
    Import,
}

/// Sort a worker class name that resolved to no built-in worker.
pub(crate) fn classify(name: &str) -> Named<'_> {
    // Gunicorn's own distribution declares no worker entry points, so `egg:gunicorn#x`
    // can only mean the short name x.
    let short = name.strip_prefix("egg:gunicorn#").or_else(|| {
        (!name.contains('.') && !name.starts_with("egg:")).then(|| name.trim_start_matches('#'))
    });
    match short {
        Some("eventlet") => Named::Eventlet,
        Some("tornado") => Named::Tornado,
        Some(s) if name.starts_with('#') && GUNICORN_WORKERS.contains(&s) => Named::Hashed(s),
        Some(s) => Named::Unknown(s),
        None if name == EVENTLET_CLASS => Named::Eventlet,
        None if name == TORNADO_CLASS => Named::Tornado,
        None => Named::Import,
    }
}

/// The error for a worker class that resolved to no built-in worker.
pub(crate) fn refusal(py: Python<'_>, name: &str) -> ConfigError {
    match classify(name) {
        Named::Eventlet => not_found(name, EVENTLET_REMOVED),
        Named::Tornado => ConfigError::error(tornado_refusal(name)),
        Named::Hashed(bare) => ConfigError::error(format!(
            "worker_class {} is not supported: ferrocorn takes Gunicorn's worker names without \
             the leading '#' (-k {bare}).",
            py_repr(name)
        )),
        Named::Unknown(short) => not_found(
            name,
            &format!(
                "No worker is named {}. The built-in workers are {BUILT_IN}; a worker class \
                 of your own is named by its dotted path (module.Class).",
                py_repr(short)
            ),
        ),
        Named::Import => match describe(py, name) {
            Ok(Found::Missing(why)) => not_found(name, &why),
            Ok(found) => ConfigError::error(custom_refusal(name, &found)),
            Err(e) => not_found(name, &e.to_string()),
        },
    }
}

/// What importing a dotted path (or entry point) found; see `describe_worker_class` in
/// `support.py`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing usable: why, as text.
    Missing(String),
    /// A class and its MRO (`module.qualname`, most derived first).
    Class(Vec<String>),
    /// The class's module imports this package (gunicorn or uvicorn), which is not
    /// installed; the bases its source names, if they could be read.
    Needs(String, Vec<String>),
}

fn describe(py: Python<'_>, name: &str) -> PyResult<Found> {
    let found = support::module(py)?
        .getattr("describe_worker_class")?
        .call1((name,))?;
    let kind: String = found.get_item(0)?.extract()?;
    Ok(match kind.as_str() {
        "missing" => Found::Missing(found.get_item(1)?.extract()?),
        "class" => Found::Class(found.get_item(1)?.extract()?),
        "needs" => Found::Needs(found.get_item(1)?.extract()?, found.get_item(2)?.extract()?),
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "describe_worker_class answered {other:?}"
            )))
        }
    })
}

/// Gunicorn's own first line (`class uri '<name>' invalid or not found: `, trailing space
/// included), then why, where Gunicorn prints a traceback.
fn not_found(name: &str, why: &str) -> ConfigError {
    ConfigError::error(format!(
        "class uri {} invalid or not found: \n\n{why}",
        py_repr(name)
    ))
}

const EVENTLET_REMOVED: &str = "Gunicorn removed its eventlet worker in version 26, and \
    ferrocorn, like Gunicorn 27, has none. Use -k gevent instead (an app that calls eventlet's \
    own API, such as eventlet.monkey_patch() or eventlet.spawn(), must move to gevent's \
    equivalents).";

fn tornado_refusal(name: &str) -> String {
    format!(
        "worker_class {} is not supported: ferrocorn does not run Tornado's worker.\n\n\
         Gunicorn's tornado worker hands its sockets to Tornado's own HTTPServer, which \
         accepts the connections and parses HTTP in Python. In ferrocorn, Rust owns the \
         sockets and the HTTP parsing, so serving a Tornado application would mean re-hosting \
         Tornado's server machinery, which ferrocorn does not do.\n\n\
         Instead: a WSGI app runs on -k gthread or -k gevent. A tornado.web.Application runs \
         under Tornado's own server (app.listen(), behind your proxy), or under -k asgi if \
         you already have an ASGI adapter for it.",
        py_repr(name)
    )
}

/// The built-in worker nearest to a recognised base class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closest {
    Worker(&'static str),
    Tornado,
    Eventlet,
    /// A Gunicorn base every worker type shares: nothing to tell apart.
    None,
}

/// The base classes ferrocorn recognises: Gunicorn's workers (27 and earlier) and Uvicorn's.
pub(crate) fn closest_for(class: &str) -> Option<Closest> {
    let (module, name) = class.rsplit_once('.')?;
    let closest = match class {
        "gunicorn.workers.sync.SyncWorker" => Closest::Worker("sync"),
        "gunicorn.workers.gthread.ThreadWorker" => Closest::Worker("gthread"),
        "gunicorn.workers.ggevent.GeventWorker"
        | "gunicorn.workers.ggevent.GeventPyWSGIWorker"
        | "gunicorn.workers.base_async.AsyncWorker" => Closest::Worker("gevent"),
        "gunicorn.workers.gasgi.ASGIWorker" => Closest::Worker("asgi"),
        "gunicorn.workers.gtornado.TornadoWorker" => Closest::Tornado,
        EVENTLET_CLASS => Closest::Eventlet,
        "gunicorn.workers.base.Worker" => Closest::None,
        // uvicorn-worker keeps its classes in a private module and re-exports them.
        _ if (module == "uvicorn.workers" || module.starts_with("uvicorn_worker"))
            && matches!(name, "UvicornWorker" | "UvicornH11Worker") =>
        {
            Closest::Worker("asgi")
        }
        _ => return None,
    };
    Some(closest)
}

/// How the class is named in the message: a class object from the config file is stored as
/// `__config__.<qualname>`, which the user never wrote.
fn shown(name: &str) -> String {
    match name.strip_prefix("__config__.") {
        Some(class) => format!("{class} (a class in the config file)"),
        None => py_repr(name),
    }
}

/// The refusal of a custom worker class, naming its recognised base and the closest
/// built-in worker when there is one.
pub(crate) fn custom_refusal(name: &str, found: &Found) -> String {
    let bases: &[String] = match found {
        Found::Class(bases) | Found::Needs(_, bases) => bases,
        Found::Missing(_) => &[],
    };
    let recognised = bases
        .iter()
        .find_map(|b| closest_for(b).map(|c| (b.as_str(), c)));
    let base_sentence = match (found, recognised) {
        (Found::Needs(package, _), Some((base, _))) => format!(
            " Its module imports {package}, which is not installed here; going by its source, \
             it subclasses {base}."
        ),
        (Found::Needs(package, _), None) => {
            format!(" Its module imports {package}, which is not installed here.")
        }
        (_, Some((base, _))) => format!(" It subclasses {base}."),
        (_, None) => " It does not derive from a Gunicorn or Uvicorn worker.".to_string(),
    };
    let instead = match recognised.map(|(_, c)| c) {
        Some(Closest::Worker(kind)) => {
            format!("The closest built-in worker is -k {kind}; move {WHAT_IT_ADDS}")
        }
        Some(Closest::Tornado) => "It extends Tornado's worker, which ferrocorn does not run \
             either (see -k tornado): a WSGI app runs on -k gthread or -k gevent."
            .to_string(),
        Some(Closest::Eventlet) => "It extends the eventlet worker, which Gunicorn removed in \
             version 26: use -k gevent."
            .to_string(),
        Some(Closest::None) | None => {
            format!("Use one of the built-in workers ({BUILT_IN}) and move {WHAT_IT_ADDS}")
        }
    };
    format!(
        "worker_class {} is a custom worker class, which ferrocorn cannot run.\n\n\
         ferrocorn's workers are written in Rust: there is no Python worker object for a \
         subclass to extend, so nothing the class overrides would ever be called.\
         {base_sentence}\n\n{instead}",
        shown(name)
    )
}

/// Where what a worker subclass did goes instead (docs/migrating.md has the details).
const WHAT_IT_ADDS: &str = "what the class adds into server hooks (post_fork, \
    post_worker_init, pre_request, post_request, worker_exit) or into WSGI/ASGI middleware.";
