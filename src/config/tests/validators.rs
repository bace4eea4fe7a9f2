//! Each validator kind against the inputs Gunicorn's `test_config.py` pins.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::super::validate::Kind;
use super::super::value::Value;

/// Validate a Python expression's value with a kind, for setting `name`.
fn check(kind: Kind, name: &str, expr: &str) -> Result<Value, String> {
    Python::attach(|py| {
        let code = std::ffi::CString::new(expr).expect("expr");
        let obj = py.eval(&code, None, None).expect("eval");
        kind.validate(name, &obj)
    })
}

fn int(v: Result<Value, String>) -> i64 {
    match v {
        Ok(Value::Int(i)) => i,
        other => panic!("not an int: {other:?}"),
    }
}

fn text(v: Result<Value, String>) -> Option<String> {
    match v {
        Ok(Value::Text(t)) => t,
        other => panic!("not text: {other:?}"),
    }
}

fn items(v: Result<Value, String>) -> Vec<String> {
    match v {
        Ok(Value::List(l)) => l,
        Ok(Value::Addrs(a)) => a.entries().to_vec(),
        other => panic!("not a list: {other:?}"),
    }
}

#[test]
fn bool_accepts_true_false_in_any_case() {
    for (expr, want) in [
        ("True", Some(true)),
        ("'true'", Some(true)),
        ("' FaLsE '", Some(false)),
        ("None", None),
    ] {
        match check(Kind::Boolean, "preload_app", expr) {
            Ok(Value::Flag(b)) => assert_eq!(b, want, "{expr}"),
            other => panic!("{expr}: {other:?}"),
        }
    }
    assert_eq!(
        check(Kind::Boolean, "x", "'yes'").unwrap_err(),
        "Invalid boolean: yes"
    );
    assert_eq!(
        check(Kind::Boolean, "x", "1").unwrap_err(),
        "Invalid type for casting: 1"
    );
}

#[test]
fn pos_int_uses_int_base_zero_and_rejects_negatives() {
    assert_eq!(int(check(Kind::PosInt, "workers", "4")), 4);
    assert_eq!(int(check(Kind::PosInt, "workers", "'4'")), 4);
    assert_eq!(int(check(Kind::PosInt, "workers", "'0x10'")), 16);
    assert_eq!(int(check(Kind::PosInt, "workers", "True")), 1);
    assert_eq!(
        check(Kind::PosInt, "workers", "-1").unwrap_err(),
        "Value must be positive: -1"
    );
    assert_eq!(
        check(Kind::PosInt, "workers", "'abc'").unwrap_err(),
        "invalid literal for int() with base 0: 'abc'"
    );
    assert_eq!(
        check(Kind::PosInt, "umask", "'0022'").unwrap_err(),
        "invalid literal for int() with base 0: '0022'"
    );
    assert_eq!(int(check(Kind::PosInt, "umask", "0o22")), 18);
    assert_eq!(
        check(Kind::PosInt, "workers", "4.5").unwrap_err(),
        "int() can't convert non-string with explicit base"
    );
}

#[test]
fn http2_ranges() {
    assert!(check(Kind::Http2FrameSize, "http2_max_frame_size", "16384").is_ok());
    assert_eq!(
        check(Kind::Http2FrameSize, "http2_max_frame_size", "100").unwrap_err(),
        "http2_max_frame_size must be between 16384 and 16777215, got 100"
    );
    assert!(check(Kind::Http2Streams, "http2_max_concurrent_streams", "0").is_err());
    assert!(check(Kind::Http2Window, "http2_initial_window_size", "2147483648").is_err());
    assert!(check(Kind::Http2Window, "http2_initial_window_size", "2147483647").is_ok());
}

#[test]
fn strings_are_stripped_and_typed() {
    assert_eq!(
        text(check(Kind::Text, "pidfile", "'  /run/x.pid \\n'")),
        Some("/run/x.pid".into())
    );
    assert_eq!(text(check(Kind::Text, "pidfile", "None")), None);
    assert_eq!(
        check(Kind::Text, "pidfile", "3").unwrap_err(),
        "Not a string: 3"
    );
}

#[test]
fn lists_accept_a_string_or_an_iterable() {
    assert_eq!(items(check(Kind::TextList, "bind", "'x'")), ["x"]);
    assert_eq!(
        items(check(Kind::TextList, "bind", "['x', ' y ']")),
        ["x", "y"]
    );
    assert_eq!(items(check(Kind::TextList, "bind", "('a',)")), ["a"]);
    assert!(items(check(Kind::TextList, "bind", "[]")).is_empty());
    assert!(items(check(Kind::TextList, "bind", "None")).is_empty());
    assert_eq!(
        check(Kind::TextList, "bind", "[1]").unwrap_err(),
        "Not a string: 1"
    );
    assert_eq!(
        items(check(Kind::CommaList, "forwarder_headers", "'A, B,,C'")),
        ["A", "B", "C"]
    );
}

#[test]
fn addr_lists_validate_networks() {
    assert_eq!(
        items(check(
            Kind::Addrs,
            "forwarded_allow_ips",
            "'127.0.0.1, 10.0.0.0/8'"
        )),
        ["127.0.0.1", "10.0.0.0/8"]
    );
    match check(Kind::Addrs, "forwarded_allow_ips", "'*'") {
        Ok(Value::Addrs(a)) => assert!(a.is_any()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        check(Kind::Addrs, "forwarded_allow_ips", "'10.0.0.1/8'").unwrap_err(),
        "10.0.0.1/8 has host bits set"
    );
    assert!(check(Kind::Addrs, "forwarded_allow_ips", "['127.0.0.1']").is_err());
}

#[test]
fn dicts() {
    match check(
        Kind::SchemeHeaders,
        "secure_scheme_headers",
        "{'X-PROTO': 'https'}",
    ) {
        Ok(Value::Pairs(p)) => assert_eq!(p, [("X-PROTO".to_string(), "https".to_string())]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        check(Kind::SchemeHeaders, "secure_scheme_headers", "[]").unwrap_err(),
        "Value is not a dictionary: [] "
    );
    assert!(matches!(
        check(Kind::LogDict, "logconfig_dict", "{}"),
        Ok(Value::Obj(None))
    ));
    assert!(matches!(
        check(Kind::LogDict, "logconfig_dict", "{'version': 1}"),
        Ok(Value::Obj(Some(_)))
    ));
}

#[test]
fn callables_check_arity_exactly() {
    assert!(matches!(
        check(Kind::Hook(1), "on_starting", "lambda server: None"),
        Ok(Value::Obj(Some(_)))
    ));
    assert!(matches!(
        check(Kind::Hook(2), "pre_fork", "lambda a, b=1: None"),
        Ok(Value::Obj(Some(_)))
    ));
    assert_eq!(
        check(Kind::Hook(2), "pre_fork", "lambda a: None").unwrap_err(),
        "Value must have an arity of: 2"
    );
    assert_eq!(
        check(Kind::Hook(3), "nworkers_changed", "lambda a, b: None").unwrap_err(),
        "Value must have an arity of: 3"
    );
    assert!(check(
        Kind::Hook(3),
        "nworkers_changed",
        "lambda a, b, c, *rest, k=1: None"
    )
    .is_ok());
    // Dotted strings are imported.
    assert!(matches!(
        check(Kind::Hook(1), "on_exit", "'os.path.isdir'"),
        Ok(Value::Obj(Some(_)))
    ));
    assert_eq!(
        check(Kind::Hook(1), "on_exit", "'nosuchmodule_xyz.func'").unwrap_err(),
        "No module named 'nosuchmodule_xyz'"
    );
    assert_eq!(
        check(Kind::Hook(1), "on_exit", "'os.path.nosuchfunc'").unwrap_err(),
        "Can not load 'nosuchfunc' from 'os.path'"
    );
    assert_eq!(
        check(Kind::Hook(1), "on_exit", "'nodots'").unwrap_err(),
        "Value 'nodots' is not import string. Format: module[.submodules...].object"
    );
    assert_eq!(
        check(Kind::Hook(1), "on_exit", "3").unwrap_err(),
        "Value is not callable: 3"
    );
}

#[test]
fn post_request_adapts_short_hooks() {
    Python::attach(|py| {
        let ns = PyDict::new(py);
        py.run(
            c"seen = []\ndef two(w, r): seen.append((w, r))\ndef three(w, r, e): seen.append(e)",
            Some(&ns),
            None,
        )
        .expect("define hooks");
        for name in ["two", "three"] {
            let func = ns.get_item(name).unwrap().unwrap();
            let Ok(Value::Obj(Some(adapted))) =
                Kind::PostRequestHook.validate("post_request", &func)
            else {
                panic!("{name} rejected");
            };
            adapted
                .call1(py, (1, 2, 3, 4))
                .expect("called with four arguments");
        }
        let seen: Vec<Py<PyAny>> = ns.get_item("seen").unwrap().unwrap().extract().unwrap();
        assert_eq!(seen.len(), 2);
        let one = py.eval(c"lambda w: None", None, None).unwrap();
        assert_eq!(
            Kind::PostRequestHook
                .validate("post_request", &one)
                .unwrap_err(),
            "Value must have an arity of: 4"
        );
    });
}

#[test]
fn class_values() {
    assert_eq!(
        text(check(Kind::Class, "worker_class", "' sync '")),
        Some("sync".into())
    );
    assert_eq!(
        text(check(
            Kind::Class,
            "worker_class",
            "__import__('collections').OrderedDict"
        )),
        Some("collections.OrderedDict".into())
    );
}

#[test]
fn choices() {
    assert_eq!(
        text(check(Kind::ReloadEngine, "reload_engine", "'poll'")),
        Some("poll".into())
    );
    assert_eq!(
        check(Kind::ReloadEngine, "reload_engine", "'POLL'").unwrap_err(),
        "Invalid reload_engine: 'POLL'"
    );
    assert_eq!(
        text(check(Kind::HeaderMap, "header_map", "' Refuse '")),
        Some("refuse".into())
    );
    assert_eq!(
        check(Kind::HeaderMap, "header_map", "'x'").unwrap_err(),
        "Invalid header map behaviour: x"
    );
    assert_eq!(
        text(check(Kind::ProxyProtocol, "proxy_protocol", "True")),
        Some("auto".into())
    );
    assert_eq!(
        text(check(Kind::ProxyProtocol, "proxy_protocol", "'none'")),
        Some("off".into())
    );
    assert_eq!(
        text(check(Kind::ProxyProtocol, "proxy_protocol", "'V2'")),
        Some("v2".into())
    );
    assert!(check(Kind::ProxyProtocol, "proxy_protocol", "'v3'").is_err());
    assert_eq!(
        text(check(Kind::Protocol, "protocol", "' UWSGI '")),
        Some("uwsgi".into())
    );
    assert_eq!(
        text(check(Kind::Protocol, "protocol", "None")),
        Some("http".into())
    );
    assert_eq!(
        check(Kind::Protocol, "protocol", "'uwsgii'").unwrap_err(),
        "protocol must be http or uwsgi, not 'uwsgii'"
    );
    assert!(check(Kind::Protocol, "protocol", "1").is_err());
    assert_eq!(
        text(check(Kind::HttpParser, "http_parser", "None")),
        Some("auto".into())
    );
    assert!(check(Kind::HttpParser, "http_parser", "'c'").is_err());
    assert_eq!(
        text(check(Kind::AsgiLoop, "asgi_loop", "'UVLOOP'")),
        Some("uvloop".into())
    );
    assert_eq!(
        text(check(Kind::AsgiLifespan, "asgi_lifespan", "'on'")),
        Some("on".into())
    );
    assert_eq!(
        text(check(Kind::Http2Cleartext, "http2_cleartext", "True")),
        Some("prior-knowledge".into())
    );
    assert!(check(Kind::Http2Cleartext, "http2_cleartext", "'h2c'").is_err());
    assert_eq!(
        items(check(Kind::HttpProtocols, "http_protocols", "'H2, h1'")),
        ["h2", "h1"]
    );
    assert_eq!(
        items(check(Kind::HttpProtocols, "http_protocols", "''")),
        ["h1"]
    );
    assert_eq!(
        check(Kind::HttpProtocols, "http_protocols", "'h1,h1'").unwrap_err(),
        "Duplicate protocols specified"
    );
    assert!(check(Kind::HttpProtocols, "http_protocols", "'h3'").is_err());
}

#[test]
fn users_and_groups() {
    let root = |v: Result<Value, String>| match v {
        Ok(Value::Id(id)) => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(root(check(Kind::User, "user", "'root'")), 0);
    assert_eq!(root(check(Kind::User, "user", "'1234'")), 1234);
    assert_eq!(root(check(Kind::Group, "group", "42")), 42);
    assert_eq!(
        root(check(Kind::User, "user", "None")),
        nix::unistd::geteuid().as_raw()
    );
    assert_eq!(
        check(Kind::User, "user", "'no-such-user-xyz'").unwrap_err(),
        "No such user: 'no-such-user-xyz'"
    );
    assert_eq!(
        check(Kind::Group, "group", "'no-such-group-xyz'").unwrap_err(),
        "No such group: 'no-such-group-xyz'"
    );
}

#[test]
fn chdir_statsd_files() {
    let _guard = super::lock();
    assert_eq!(
        text(check(Kind::Chdir, "chdir", "'/tmp/../tmp/.'")),
        Some("/tmp".into())
    );
    assert_eq!(
        check(Kind::Chdir, "chdir", "'/no/such/dir'").unwrap_err(),
        "can't chdir to '/no/such/dir'"
    );
    assert_eq!(
        text(check(Kind::Statsd, "statsd_host", "'localhost:8125'")),
        Some("localhost:8125".into())
    );
    assert!(check(Kind::Statsd, "statsd_host", "'unix:1234'").is_ok());
    assert_eq!(
        check(Kind::Statsd, "statsd_host", "'host:port'").unwrap_err(),
        "Value must be one of ('host:port', 'unix://PATH')"
    );
    Python::attach(|py| {
        let legacy = Kind::Statsd
            .to_python(py, "statsd_host", &Value::Text(Some("unix:1234".into())))
            .unwrap();
        assert_eq!(legacy.str().unwrap().to_string(), "('unix', 1234)");
        let tcp = Kind::Statsd
            .to_python(py, "statsd_host", &Value::Text(Some("Example.com".into())))
            .unwrap();
        assert_eq!(tcp.str().unwrap().to_string(), "('example.com', 8125)");
    });
    let dir = super::scratch("files");
    let present = dir.join("present.txt");
    std::fs::write(&present, "x").unwrap();
    let expr = format!(
        "[{:?}, {:?}]",
        present.to_string_lossy(),
        dir.join("*.nomatch").to_string_lossy()
    );
    assert_eq!(
        items(check(Kind::FilesOrPatterns, "reload_extra_files", &expr)).len(),
        2
    );
    assert_eq!(
        check(
            Kind::FilesOrPatterns,
            "reload_extra_files",
            "['/no/such/file']"
        )
        .unwrap_err(),
        "File /no/such/file does not exists."
    );
}
