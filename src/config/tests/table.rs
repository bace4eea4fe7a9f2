//! The table as a whole: its shape, default round-trips, `--print-config`, `-h` and the
//! generated documentation.

use std::collections::HashSet;

use pyo3::prelude::*;

use super::super::render;
use super::super::settings::{Action, Config, TABLE};
use super::super::value::Env;
use super::super::{settings_markdown, Kind};

fn defaults() -> Config {
    Config::from_defaults(&Env::from_pairs(&[])).expect("defaults")
}

#[test]
fn table_has_all_120_settings_with_unique_names_and_flags() {
    let gunicorn = TABLE
        .iter()
        .filter(|r| r.section != "Ferrocorn Extensions")
        .count();
    assert_eq!(gunicorn, 120);
    assert_eq!(
        TABLE.len(),
        127,
        "ferrocorn's extensions: boot_timeout, max_worker_memory, prometheus_bind, syslog_rfc5424, \
         permit_missing_host, static_mount, static_max_age"
    );
    let names: HashSet<&str> = TABLE.iter().map(|r| r.name).collect();
    assert_eq!(names.len(), TABLE.len());
    let mut flags = HashSet::new();
    for row in TABLE {
        for flag in row.cli {
            assert!(flags.insert(*flag), "duplicate flag {flag}");
        }
        assert_eq!(
            row.cli.is_empty(),
            row.action == Action::FileOnly,
            "{}",
            row.name
        );
        assert!(
            !row.doc.is_empty() && !row.short().is_empty(),
            "{}",
            row.name
        );
    }
    // Gunicorn's odd spellings are kept.
    for flag in [
        "--limit-request-field_size",
        "--log-file",
        "--paster",
        "--no-sendfile",
    ] {
        assert!(flags.contains(flag), "{flag}");
    }
}

#[test]
fn every_default_round_trips_through_its_validator() {
    let cfg = defaults();
    Python::attach(|py| {
        for row in TABLE {
            let value = cfg.get_value(py, row.name).expect(row.name);
            let mut obj = row.kind.to_python(py, row.name, &value).expect(row.name);
            // As in Gunicorn's test, the validator is fed the default's *input* form: the
            // comma-separated settings are given as strings and stored as lists.
            if matches!(
                row.kind,
                Kind::Addrs | Kind::CommaList | Kind::HttpProtocols
            ) {
                let items: Vec<String> = obj.extract().expect(row.name);
                obj = items
                    .join(",")
                    .into_pyobject(py)
                    .expect(row.name)
                    .into_any();
            }
            let again = row
                .kind
                .validate(row.name, &obj)
                .unwrap_or_else(|e| panic!("{}: {e}", row.name));
            assert!(value.same(&again), "{}: {value:?} != {again:?}", row.name);
            // And the field accepts what the validator produced.
            let mut copy = cfg.clone();
            copy.put_value(row.name, again).expect(row.name);
        }
    });
}

#[test]
fn hook_defaults_are_none_and_print_as_gunicorn_qualnames() {
    let cfg = defaults();
    assert!(cfg.on_starting.is_none() && cfg.post_request.is_none() && cfg.ssl_context.is_none());
    let hooks = TABLE
        .iter()
        .filter(|r| matches!(r.kind, Kind::Hook(_) | Kind::PostRequestHook))
        .count();
    assert_eq!(hooks, 20);
    Python::attach(|py| {
        let text = cfg.print_config(py);
        assert!(text.contains("= <OnStarting.on_starting()>"));
        assert!(text.contains("= <Prefork.pre_fork()>"));
        assert!(text.contains("= <NumWorkersChanged.nworkers_changed()>"));
        assert!(text.contains("= <NewSSLContext.ssl_context()>"));
        assert!(text.contains("= <DirtyWorkerExit.dirty_worker_exit()>"));
    });
}

#[test]
fn print_config_matches_gunicorn_str_cfg() {
    let cfg = defaults();
    let text = Python::attach(|py| cfg.print_config(py));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), TABLE.len());
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    // Names are padded to the longest one, permit_unconventional_http_version.
    let pad = |name: &str| format!("{name:34} = ");
    let expect = [
        (pad("workers"), "1"),
        (pad("bind"), "['127.0.0.1:8000']"),
        (pad("sendfile"), "None"),
        (pad("preload_app"), "False"),
        (pad("umask"), "0"),
        (pad("forwarded_allow_ips"), "['127.0.0.1', '::1']"),
        (pad("forwarder_headers"), "['SCRIPT_NAME', 'PATH_INFO']"),
        (
            pad("secure_scheme_headers"),
            "{'X-FORWARDED-PROTOCOL': 'ssl', 'X-FORWARDED-PROTO': 'https', 'X-FORWARDED-SSL': 'on'}",
        ),
        (pad("logconfig_dict"), "{}"),
        (pad("http_protocols"), "['h1']"),
        (pad("ssl_version"), "2"),
        (pad("control_socket_mode"), "384"),
        (pad("worker_class"), "sync"),
        (pad("access_log_format"), r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#),
        (pad("root_path"), ""),
    ];
    for (prefix, value) in expect {
        let line = format!("{prefix}{value}");
        assert!(lines.contains(&line.as_str()), "missing {line:?}");
    }
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let help = render::help("ferrocorn");
    assert!(help.starts_with("usage: ferrocorn [OPTIONS] [APP_MODULE]\n\noptions:\n"));
    assert!(help.contains("  -h, --help            show this help message and exit\n"));
    for row in TABLE {
        for flag in row.cli {
            assert!(help.contains(flag), "{flag}");
        }
    }
    assert!(help.contains("  -w INT, --workers INT\n"));
    assert!(help.contains("  --proxy-protocol [MODE]\n"));
    assert!(help.contains("  --error-logfile FILE, --log-file FILE\n"));
    assert!(help.contains("  -D, --daemon          Detach from the terminal"));
    assert!(help.contains("[2048]"));
}

#[test]
fn docs_settings_md_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/settings.md");
    let want = settings_markdown();
    if std::env::var_os("FERROCORN_BLESS").is_some() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/docs")).expect("docs dir");
        std::fs::write(path, &want).expect("write docs/settings.md");
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/settings.md is out of date; regenerate it with \
         `FERROCORN_BLESS=1 cargo test -p ferrocorn config::tests::table::docs`"
    );
    for row in TABLE {
        assert!(want.contains(&format!("### `{}`", row.name)));
    }
}
