//! argparse forms accepted (and rejected) on the command line.

use super::super::cli::{parse, CliValue, Parsed, Stop};

fn ok(args: &[&str]) -> Parsed {
    let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    parse(&owned).unwrap_or_else(|e| panic!("{args:?}: {e:?}"))
}

fn err(args: &[&str]) -> String {
    let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    match parse(&owned) {
        Err(Stop::Error(m)) => m,
        other => panic!("{args:?}: expected an error, got {other:?}"),
    }
}

fn value(p: &Parsed, name: &str) -> CliValue {
    p.get(name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not set"))
}

#[test]
fn value_forms() {
    for args in [
        &["-w", "4"][..],
        &["-w4"],
        &["-w=4"],
        &["--workers", "4"],
        &["--workers=4"],
    ] {
        assert_eq!(value(&ok(args), "workers"), CliValue::Int(4), "{args:?}");
    }
    // Unambiguous prefixes of long options (argparse allow_abbrev).
    assert_eq!(
        value(&ok(&["--worker-conn", "5"]), "worker_connections"),
        CliValue::Int(5)
    );
    assert_eq!(value(&ok(&["--back=7"]), "backlog"), CliValue::Int(7));
    assert_eq!(value(&ok(&["--prel"]), "preload_app"), CliValue::Bool(true));
    assert_eq!(
        value(&ok(&["--bind="]), "bind"),
        CliValue::List(vec![String::new()])
    );
    // Last one wins for plain options.
    assert_eq!(
        value(&ok(&["-w", "2", "-w", "3"]), "workers"),
        CliValue::Int(3)
    );
    // Negative numbers are values, not options.
    assert_eq!(value(&ok(&["-w", "-1"]), "workers"), CliValue::Int(-1));
    // Gunicorn's underscore spelling.
    assert_eq!(
        value(
            &ok(&["--limit-request-field_size", "100"]),
            "limit_request_field_size"
        ),
        CliValue::Int(100)
    );
    assert_eq!(
        value(&ok(&["--log-file", "-"]), "errorlog"),
        CliValue::Str("-".into())
    );
    assert_eq!(
        value(&ok(&["--paster", "x.ini"]), "paste"),
        CliValue::Str("x.ini".into())
    );
}

#[test]
fn int_types() {
    assert_eq!(value(&ok(&["-m", "0022"]), "umask"), CliValue::Int(18));
    assert_eq!(value(&ok(&["--umask=0xFF"]), "umask"), CliValue::Int(255));
    assert_eq!(value(&ok(&["-m", "0o0"]), "umask"), CliValue::Int(0));
    assert_eq!(
        err(&["-w", "x"]),
        "argument -w/--workers: invalid int value: 'x'"
    );
    assert_eq!(
        err(&["-w", "0x10"]),
        "argument -w/--workers: invalid int value: '0x10'"
    );
    assert_eq!(
        err(&["-m", "zz"]),
        "argument -m/--umask: invalid auto_int value: 'zz'"
    );
    // cert_reqs has no argparse type: the validator sees the string.
    assert_eq!(
        value(&ok(&["--cert-reqs", "2"]), "cert_reqs"),
        CliValue::Str("2".into())
    );
}

#[test]
fn flags_consts_and_clusters() {
    let p = ok(&["--preload", "--no-sendfile", "-DR"]);
    assert_eq!(value(&p, "preload_app"), CliValue::Bool(true));
    assert_eq!(value(&p, "sendfile"), CliValue::Bool(false));
    assert_eq!(value(&p, "daemon"), CliValue::Bool(true));
    assert_eq!(value(&p, "enable_stdio_inheritance"), CliValue::Bool(true));
    let p = ok(&["-Dw3"]);
    assert_eq!(value(&p, "workers"), CliValue::Int(3));
    assert_eq!(
        err(&["--preload=yes"]),
        "argument --preload: ignored explicit argument 'yes'"
    );
    assert_eq!(
        err(&["-Dx"]),
        "argument -D/--daemon: ignored explicit argument 'x'"
    );
}

#[test]
fn append_and_optional() {
    let p = ok(&["-b", "a", "--bind=b", "-bc", "-e", "K=V"]);
    assert_eq!(
        value(&p, "bind"),
        CliValue::List(vec!["a".into(), "b".into(), "c".into()])
    );
    assert_eq!(value(&p, "raw_env"), CliValue::List(vec!["K=V".into()]));
    let p = ok(&[
        "--reload-extra-file",
        "x",
        "--reload-extra-file",
        "y",
        "--dirty-app",
        "m:C",
    ]);
    assert_eq!(
        value(&p, "reload_extra_files"),
        CliValue::List(vec!["x".into(), "y".into()])
    );
    assert_eq!(value(&p, "dirty_apps"), CliValue::List(vec!["m:C".into()]));
    assert_eq!(
        value(&ok(&["--paste-global", "a=b"]), "raw_paste_global_conf"),
        CliValue::List(vec!["a=b".into()])
    );
    // nargs='?': bare flag gives the const, a following value is taken.
    assert_eq!(
        value(&ok(&["--proxy-protocol"]), "proxy_protocol"),
        CliValue::Str("auto".into())
    );
    assert_eq!(
        value(&ok(&["--proxy-protocol", "--preload"]), "proxy_protocol"),
        CliValue::Str("auto".into())
    );
    assert_eq!(
        value(&ok(&["--proxy-protocol", "v2"]), "proxy_protocol"),
        CliValue::Str("v2".into())
    );
    assert_eq!(
        value(&ok(&["--proxy-protocol=v1"]), "proxy_protocol"),
        CliValue::Str("v1".into())
    );
}

#[test]
fn positionals_and_double_dash() {
    let p = ok(&["-w", "2", "app:app"]);
    assert_eq!(p.positionals, ["app:app"]);
    let p = ok(&["app:app", "-w", "2"]);
    assert_eq!(p.positionals, ["app:app"]);
    let p = ok(&["-w", "2", "--", "-weird:app"]);
    assert_eq!(p.positionals, ["-weird:app"]);
    assert_eq!(err(&["a:app", "b:app"]), "unrecognized arguments: b:app");
    assert_eq!(
        err(&["a:app", "-w", "2", "b:app"]),
        "unrecognized arguments: b:app"
    );
    assert!(ok(&[]).positionals.is_empty());
}

#[test]
fn argparse_errors() {
    assert_eq!(err(&["--nope"]), "unrecognized arguments: --nope");
    assert_eq!(
        err(&["--nope", "x", "--bad"]),
        "unrecognized arguments: --nope --bad"
    );
    assert_eq!(err(&["-w"]), "argument -w/--workers: expected one argument");
    assert_eq!(
        err(&["-b", "--preload"]),
        "argument -b/--bind: expected one argument"
    );
    assert_eq!(
        err(&["--reload-e", "x"]),
        "ambiguous option: --reload-e could match --reload-engine, --reload-extra-file"
    );
    // Ambiguity is detected before -h acts, as argparse classifies everything first.
    assert_eq!(
        err(&["-h", "--max-req", "1"]),
        "ambiguous option: --max-req could match --max-requests, --max-requests-jitter"
    );
}

#[test]
fn help_and_version_stop_parsing() {
    let owned = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(parse(&owned(&["-h"])).unwrap_err(), Stop::Help);
    assert_eq!(parse(&owned(&["--hel"])).unwrap_err(), Stop::Help);
    assert_eq!(
        parse(&owned(&["--he"])).unwrap_err(),
        Stop::Error("ambiguous option: --he could match --help, --header-map".into())
    );
    assert_eq!(parse(&owned(&["--version"])).unwrap_err(), Stop::Version);
    assert_eq!(parse(&owned(&["-v", "--nope"])).unwrap_err(), Stop::Version);
    // Unknown arguments are only reported at the end, so -h still wins.
    assert_eq!(parse(&owned(&["--nope", "-h"])).unwrap_err(), Stop::Help);
    // An error before -h is reported first.
    assert_eq!(
        parse(&owned(&["-w", "x", "-h"])).unwrap_err(),
        Stop::Error("argument -w/--workers: invalid int value: 'x'".into())
    );
}
