//! The whole loading sequence: precedence of the four layers, config-file rules, the
//! application URI, error reports, unsupported settings and the Python `cfg` object.

use pyo3::prelude::*;

use super::super::{BindAddr, Loaded};
use super::{config_file, load_env, load_err, load_ok, lock, scratch};

#[test]
fn precedence_of_all_four_layers() {
    let _g = lock();
    let file = config_file("prec", "workers = 3\nbacklog = 10\ntimeout = '40'\n");
    let env_only = [("WEB_CONCURRENCY", "2")];
    assert_eq!(load_ok(&["app:app"], &env_only).workers, 2);
    assert_eq!(load_ok(&["-c", &file, "app:app"], &env_only).workers, 3);
    let cmd_args = format!("--workers=4 --backlog 11 -c {file}");
    let env_all = [
        ("WEB_CONCURRENCY", "2"),
        ("GUNICORN_CMD_ARGS", cmd_args.as_str()),
    ];
    let cfg = load_ok(&["app:app"], &env_all);
    assert_eq!((cfg.workers, cfg.backlog, cfg.timeout), (4, 11, 40));
    let cfg = load_ok(&["-w", "5", "app:app"], &env_all);
    assert_eq!((cfg.workers, cfg.backlog), (5, 11));
    // PORT and FORWARDED_ALLOW_IPS feed the defaults; the file and CLI still win.
    let cfg = load_ok(
        &["app:app"],
        &[("PORT", "5000"), ("FORWARDED_ALLOW_IPS", "10.0.0.0/8")],
    );
    assert_eq!(cfg.bind, ["0.0.0.0:5000"]);
    assert!(cfg
        .forwarded_allow_ips
        .contains("10.1.2.3".parse().unwrap()));
    let cfg = load_ok(&["-b", ":9", "app:app"], &[("PORT", "5000")]);
    assert_eq!(cfg.bind, [":9"]);
}

#[test]
fn cli_config_beats_gunicorn_cmd_args_config() {
    let _g = lock();
    let a = config_file("cfg-a", "workers = 6\n");
    let b = config_file("cfg-b", "workers = 7\n");
    let env_cmd = format!("-c {b}");
    let env = [("GUNICORN_CMD_ARGS", env_cmd.as_str())];
    assert_eq!(load_ok(&["app:app"], &env).workers, 7);
    assert_eq!(load_ok(&["-c", &a, "app:app"], &env).workers, 6);
    assert_eq!(load_ok(&["-c", &a, "app:app"], &env).config, a);
}

#[test]
fn config_file_values_are_python_objects() {
    let _g = lock();
    let file = config_file(
        "values",
        "import multiprocessing\n\
         bind = ['127.0.0.1:9001', 'unix:/tmp/f.sock']\n\
         raw_env = 'A=1'\n\
         preload_app = 'TRUE'\n\
         umask = 0o22\n\
         secure_scheme_headers = {'X-SCHEME': 'https'}\n\
         Workers = 99\n\
         not_a_setting = 1\n\
         def on_starting(server):\n    pass\n\
         def post_request(worker, req):\n    pass\n\
         when_ready = 'os.path.isdir'\n",
    );
    let cfg = load_ok(&["-c", &file, "app:app"], &[]);
    assert_eq!(cfg.bind, ["127.0.0.1:9001", "unix:/tmp/f.sock"]);
    assert_eq!(cfg.raw_env, ["A=1"]);
    assert!(cfg.preload_app);
    assert_eq!(cfg.umask, 18);
    assert_eq!(cfg.workers, 1, "names are case-sensitive");
    assert_eq!(
        cfg.secure_scheme_headers,
        [("X-SCHEME".to_string(), "https".to_string())]
    );
    assert!(cfg.on_starting.is_some() && cfg.post_request.is_some() && cfg.when_ready.is_some());
    assert_eq!(
        cfg.address().unwrap(),
        [
            BindAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 9001
            },
            BindAddr::Unix("/tmp/f.sock".into())
        ]
    );
    assert_eq!(cfg.env().unwrap(), [("A".to_string(), "1".to_string())]);
    // A cloned config shares the hook objects.
    let copy = cfg.clone();
    Python::attach(|py| {
        let (a, b) = (
            cfg.on_starting.as_ref().unwrap(),
            copy.on_starting.as_ref().unwrap(),
        );
        assert!(a.bind(py).is(b.bind(py)));
    });
}

#[test]
fn python_module_and_file_prefixes() {
    let _g = lock();
    let dir = scratch("pymod");
    std::fs::write(dir.join("ferro_cfg_mod.py"), "workers = 8\n").unwrap();
    Python::attach(|py| {
        let sys = py.import("sys").unwrap();
        sys.getattr("path")
            .unwrap()
            .call_method1("insert", (0, dir.to_string_lossy()))
            .unwrap();
    });
    assert_eq!(
        load_ok(&["-c", "python:ferro_cfg_mod", "app:app"], &[]).workers,
        8
    );
    let file = config_file("fileprefix", "workers = 9\n");
    assert_eq!(
        load_ok(&["-c", &format!("file:{file}"), "app:app"], &[]).workers,
        9
    );
    // The file is executed as module __config__.
    Python::attach(|py| {
        let modules = py.import("sys").unwrap().getattr("modules").unwrap();
        assert!(modules.contains("__config__").unwrap());
    });
}

#[test]
fn default_config_file_is_read_from_the_cwd() {
    let _g = lock();
    let dir = scratch("defaultcfg");
    std::fs::write(
        dir.join("gunicorn.conf.py"),
        "workers = 12\nwsgi_app = 'mod:application'\n",
    )
    .unwrap();
    let before = std::env::current_dir().unwrap();
    std::env::set_current_dir(&dir).unwrap();
    let result = std::panic::catch_unwind(|| load_ok(&[], &[]));
    std::env::set_current_dir(&before).unwrap();
    let cfg = result.expect("load");
    assert_eq!(cfg.workers, 12);
    // wsgi_app names the app when no APP_MODULE is given...
    assert_eq!(cfg.app_uri(), Some("mod:application"));
    assert_eq!(cfg.proc_name(), "gunicorn");
}

#[test]
fn app_module_positional_beats_wsgi_app() {
    let _g = lock();
    let file = config_file("wsgiapp", "wsgi_app = 'other:app'\n");
    let cfg = load_ok(&["-c", &file, "mine:app"], &[]);
    assert_eq!(cfg.app_uri(), Some("mine:app"));
    assert_eq!(cfg.default_proc_name, "mine:app");
    assert_eq!(cfg.proc_name(), "mine:app");
    assert_eq!(load_ok(&["-n", "web", "mine:app"], &[]).proc_name(), "web");
    let err = load_err(&[], &[]);
    assert_eq!(
        (err.message.as_str(), err.exit_code),
        ("Error: No application module specified.", 1)
    );
    assert_eq!(err.report(), "\nError: No application module specified.\n");
}

#[test]
fn paste_sets_the_app_and_logging_from_the_ini() {
    let _g = lock();
    let dir = scratch("paste");
    let ini = dir.join("app.ini");
    std::fs::write(&ini, "[app:main]\nuse = egg:x\n\n[loggers]\nkeys = root\n").unwrap();
    let ini = ini.to_string_lossy().into_owned();
    let cfg = load_ok(&["--paste", &format!("{ini}#main")], &[]);
    assert_eq!(cfg.app_uri(), Some(format!("{ini}#main").as_str()));
    assert_eq!(cfg.default_proc_name, ini);
    assert_eq!(cfg.logconfig.as_deref(), Some(ini.as_str()));
    assert!(cfg.check_supported().is_ok());
    let missing = dir.join("missing.ini").to_string_lossy().into_owned();
    assert_eq!(
        load_err(&["--paster", &missing], &[]).message,
        format!("Error: '{missing}' not found")
    );
}

#[test]
fn chdir_is_applied_after_loading() {
    let _g = lock();
    let before = std::env::current_dir().unwrap();
    let dir = scratch("chdir");
    let target = dir.to_string_lossy().into_owned();
    let cfg = load_ok(&["--chdir", &target, "app:app"], &[]);
    let now = std::env::current_dir().unwrap();
    std::env::set_current_dir(&before).unwrap();
    assert_eq!(cfg.chdir, target);
    assert_eq!(now, dir);
    let in_path = Python::attach(|py| {
        let path = py.import("sys").unwrap().getattr("path").unwrap();
        path.get_item(0).unwrap().extract::<String>().unwrap()
    });
    assert_eq!(in_path, target);
}

#[test]
fn config_file_errors() {
    let _g = lock();
    let err = load_err(&["-c", "/no/such/conf.py", "app:app"], &[]);
    assert_eq!(err.message, "Error: '/no/such/conf.py' doesn't exist");
    assert_eq!(err.exit_code, 1);
    let broken = config_file("broken", "workers = 2\nraise RuntimeError('boom')\n");
    let err = load_err(&["-c", &broken, "app:app"], &[]);
    assert!(err
        .message
        .starts_with(&format!("Failed to read config file: {broken}\nTraceback")));
    assert!(
        err.message.ends_with("RuntimeError: boom"),
        "{}",
        err.message
    );
    let invalid = config_file("invalid", "workers = 'many'\n");
    let err = load_err(&["-c", &invalid, "app:app"], &[]);
    assert_eq!(
        err.message,
        "Invalid value for workers: many\n\n\nError: invalid literal for int() with base 0: 'many'"
    );
    let arity = config_file("arity", "def pre_fork(server):\n    pass\n");
    let err = load_err(&["-c", &arity, "app:app"], &[]);
    assert!(err
        .message
        .starts_with("Invalid value for pre_fork: <function pre_fork"));
    assert!(err
        .message
        .ends_with("Error: Value must have an arity of: 2"));
    let err = load_err(&["-c", "python:no_such_module_xyz", "app:app"], &[]);
    assert_eq!(err.message, "Error: No module named 'no_such_module_xyz'");
}

#[test]
fn command_line_errors() {
    let _g = lock();
    // Validation failures name the setting and exit 1.
    let err = load_err(&["-w", "-3", "app:app"], &[]);
    assert_eq!(
        err.message,
        "Invalid value for workers: -3\n\n\nError: Value must be positive: -3"
    );
    assert_eq!(err.exit_code, 1);
    let err = load_err(&["--forwarded-allow-ips", "1.2.3.4/8", "app:app"], &[]);
    assert!(err
        .message
        .starts_with("Invalid value for forwarded_allow_ips: 1.2.3.4/8"));
    let err = load_err(
        &["app:app"],
        &[("GUNICORN_CMD_ARGS", "--bind 'unterminated")],
    );
    assert_eq!(err.message, "Error: No closing quotation");
    // argparse errors are printed by the loader and become exit 2; -h and -v exit 0.
    assert!(matches!(load_env(&["--nope"], &[]), Ok(Loaded::Exit(2))));
    assert!(matches!(
        load_env(&["app:app"], &[("GUNICORN_CMD_ARGS", "--nope")]),
        Ok(Loaded::Exit(2))
    ));
    assert!(matches!(load_env(&["-w", "x"], &[]), Ok(Loaded::Exit(2))));
    assert!(matches!(load_env(&["-h"], &[]), Ok(Loaded::Exit(0))));
    assert!(matches!(load_env(&["--version"], &[]), Ok(Loaded::Exit(0))));
}

#[test]
fn unsupported_settings_fail_only_when_changed() {
    let _g = lock();
    assert!(load_ok(&["app:app"], &[]).check_supported().is_ok());
    assert!(load_ok(
        &[
            "-w",
            "3",
            "--preload",
            "-k",
            "gunicorn.workers.sync.SyncWorker",
            "app:app"
        ],
        &[]
    )
    .check_supported()
    .is_ok());
    let cases: &[(&[&str], &str)] = &[
        (
            &["--http2-max-frame-size", "20000", "app:app"],
            "http2_max_frame_size",
        ),
        (&["--http-protocols", "h2", "app:app"], "http_protocols"),
    ];
    // The threaded worker is built: `--threads 2` (sync becomes gthread) and `-k gthread`.
    for args in [
        &["--threads", "2", "app:app"][..],
        &["-k", "gthread", "app:app"][..],
    ] {
        let cfg = load_ok(args, &[]);
        assert!(
            cfg.check_supported().is_ok()
                && cfg.worker_kind() == Some(crate::config::WorkerKind::Gthread)
        );
    }
    for (args, name) in cases {
        let err = load_ok(args, &[]).check_supported().unwrap_err();
        assert!(
            err.message
                .starts_with(&format!("Error: {name} is not supported yet")),
            "{}",
            err.message
        );
        assert_eq!(err.exit_code, 1);
    }
    let file = config_file("unsup", "http2_initial_window_size = 70000\n");
    let err = load_ok(&["-c", &file, "app:app"], &[])
        .check_supported()
        .unwrap_err();
    assert_eq!(
        err.message,
        "Error: http2_initial_window_size is not supported yet"
    );
}

#[test]
fn dirty_app_specs_are_checked_without_importing() {
    let _g = lock();
    for ok in ["m:C", "pkg.mod:Cls", "m:C:2"] {
        let cfg = load_ok(&["--dirty-app", ok, "--dirty-workers", "1", "app:app"], &[]);
        assert!(cfg.check_supported().is_ok(), "{ok}");
    }
    let err = load_ok(
        &["--dirty-app", "m:C", "--dirty-workers", "1025", "app:app"],
        &[],
    )
    .check_supported()
    .unwrap_err();
    assert!(
        err.message.contains("at most 1024 dirty workers"),
        "{}",
        err.message
    );
    for bad in ["m", "m:", ":C", "m:C:0", "m:C:x", "m:C:1:2", "a b:C"] {
        let err = load_ok(&["--dirty-app", bad, "app:app"], &[])
            .check_supported()
            .unwrap_err();
        assert!(
            err.message.contains("dirty_apps: invalid entry"),
            "{bad}: {}",
            err.message
        );
        assert_eq!(err.exit_code, 1);
    }
}

#[test]
fn derived_values() {
    let _g = lock();
    let cfg = load_ok(
        &["-k", "sync", "--threads", "4", "--no-sendfile", "app:app"],
        &[],
    );
    assert_eq!(cfg.worker_class_str(), "gthread");
    assert!(!cfg.sendfile_enabled());
    assert!(!cfg.is_ssl());
    let cfg = load_ok(&["--keyfile", "k.pem", "-e", "BAD", "app:app"], &[]);
    assert!(cfg.is_ssl());
    assert_eq!(
        cfg.env().unwrap_err().message,
        "Invalid value for raw_env: BAD\n\n\nError: environment setting 'BAD' invalid"
    );
    let cfg = load_ok(&["-b", "localhost:http", "app:app"], &[]);
    assert!(cfg
        .address()
        .unwrap_err()
        .message
        .ends_with("Error: 'http' is not a valid port number."));
}

#[test]
fn resolved_serving_values() {
    use crate::config::{ReloadEngine, WorkerKind};
    use ferrocorn_h1::{HeaderMapPolicy, ProxyMode};
    use std::time::Duration;
    let _g = lock();
    let cfg = load_ok(&["app:app"], &[]);
    let s = cfg.serving();
    assert_eq!(cfg.worker_kind(), Some(WorkerKind::Sync));
    assert_eq!(cfg.reload_engine_kind(), ReloadEngine::Auto);
    assert_eq!(s.timeout, Some(Duration::from_secs(30)));
    assert_eq!(s.keepalive, Some(Duration::from_secs(2)));
    assert_eq!(s.graceful_timeout, Duration::from_secs(30));
    assert_eq!(s.proxy_protocol, ProxyMode::Off);
    assert_eq!(s.parser.header_map, HeaderMapPolicy::Drop);
    assert_eq!(s.parser.limit_request_line, 4094);

    let cfg = load_ok(
        &[
            "-k",
            "sync",
            "--threads",
            "2",
            "-t",
            "0",
            "--keep-alive",
            "0",
            "--graceful-timeout",
            "5",
            "--header-map",
            "refuse",
            "--proxy-protocol",
            "v2",
            "--reload-engine",
            "poll",
            "--limit-request-line",
            "100",
            "app:app",
        ],
        &[],
    );
    let s = cfg.serving();
    assert_eq!(cfg.worker_kind(), Some(WorkerKind::Gthread));
    assert_eq!(cfg.reload_engine_kind(), ReloadEngine::Poll);
    assert_eq!((s.timeout, s.keepalive), (None, None));
    assert_eq!(s.io_deadline(), Duration::from_secs(30));
    assert_eq!(s.graceful_timeout, Duration::from_secs(5));
    assert_eq!(s.proxy_protocol, ProxyMode::V2);
    assert_eq!(s.parser.header_map, HeaderMapPolicy::Refuse);
    assert_eq!(s.parser.limit_request_line, 100);

    for name in [
        "gevent",
        "gevent_pywsgi",
        "gunicorn.workers.ggevent.GeventWorker",
    ] {
        let cfg = load_ok(&["-k", name, "app:app"], &[]);
        assert_eq!(cfg.worker_kind(), Some(WorkerKind::Gevent), "{name}");
    }
    let cfg = load_ok(&["-k", "tornado", "app:app"], &[]);
    assert_eq!(cfg.worker_kind(), None);
    assert!(cfg.check_supported().is_err());
}

#[test]
fn the_uwsgi_protocol_and_its_allow_list() {
    use crate::config::Protocol;
    use std::net::IpAddr;
    let _g = lock();
    let cfg = load_ok(&["app:app"], &[]);
    assert_eq!(cfg.serving().protocol, Protocol::Http);
    let cfg = load_ok(
        &[
            "--protocol",
            "uwsgi",
            "--uwsgi-allow-from",
            "10.0.0.0/8, 192.0.2.1",
            "app:app",
        ],
        &[],
    );
    assert!(cfg.check_supported().is_ok());
    let s = cfg.serving();
    assert_eq!(s.protocol, Protocol::Uwsgi);
    let ip = |t: &str| t.parse::<IpAddr>().unwrap();
    assert!(s.uwsgi_allow_ips.contains(ip("10.20.30.40")));
    assert!(s.uwsgi_allow_ips.contains(ip("192.0.2.1")));
    assert!(!s.uwsgi_allow_ips.contains(ip("127.0.0.1")));
    for args in [
        &["--protocol", "uwsgi", "--threads", "4", "app:app"][..],
        &["--protocol", "uwsgi", "-k", "gthread", "app:app"][..],
    ] {
        assert!(load_ok(args, &[]).check_supported().is_ok(), "{args:?}");
    }

    let err = load_err(&["--protocol", "uwsg", "app:app"], &[]);
    assert_eq!(
        err.message,
        "Invalid value for protocol: uwsg\n\n\nError: protocol must be http or uwsgi, not 'uwsg'"
    );
    assert_eq!(err.exit_code, 1);
    let err = load_ok(&["--protocol", "uwsgi", "-k", "asgi", "app:app"], &[])
        .check_supported()
        .unwrap_err();
    assert!(
        err.message.contains("runs on the sync and gthread workers"),
        "{}",
        err.message
    );
    let err = load_ok(
        &["--protocol", "uwsgi", "--proxy-protocol", "v1", "app:app"],
        &[],
    )
    .check_supported()
    .unwrap_err();
    assert!(err.message.contains("proxy_protocol"), "{}", err.message);
}

#[test]
fn python_cfg_object_for_hooks() {
    let _g = lock();
    let cfg = load_ok(
        &["-w", "3", "-b", "[::1]:8080", "-e", "K=V", "app:app"],
        &[],
    );
    Python::attach(|py| {
        let obj = cfg.to_python(py).unwrap().into_bound(py);
        assert_eq!(obj.getattr("workers").unwrap().extract::<i64>().unwrap(), 3);
        assert_eq!(
            obj.getattr("proc_name")
                .unwrap()
                .extract::<String>()
                .unwrap(),
            "app:app"
        );
        assert_eq!(
            obj.getattr("address").unwrap().str().unwrap().to_string(),
            "[('::1', 8080)]"
        );
        assert_eq!(
            obj.getattr("env").unwrap().str().unwrap().to_string(),
            "{'K': 'V'}"
        );
        assert!(obj.getattr("sendfile").unwrap().extract::<bool>().unwrap());
        let hook = obj.getattr("on_starting").unwrap();
        assert!(hook.is_callable());
        let err = obj.setattr("workers", 4).unwrap_err();
        assert_eq!(err.value(py).to_string(), "Invalid access!");
        let err = obj.getattr("nope").unwrap_err();
        assert_eq!(
            err.value(py).to_string(),
            "No configuration setting for: nope"
        );
        assert_eq!(obj.str().unwrap().to_string(), cfg.print_config(py));
    });
}
