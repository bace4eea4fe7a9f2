//! Everything the table renders for people and for Python: `--print-config` (Gunicorn's
//! `str(cfg)`), the `cfg` object hooks receive, `-h` help, and `docs/settings.md`.
//!
//! Read-only over a `Config` and the table; it must not change settings or the process.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::settings::{Action, Config, Setting, TABLE};
use super::support;

/// The usage line argparse prints (`usage: ` is added by the caller).
pub(crate) fn usage(prog: &str) -> String {
    format!("{prog} [OPTIONS] [APP_MODULE]")
}

/// The raw Python value of a setting, as Gunicorn stores it.
pub(crate) fn setting_value<'py>(
    cfg: &Config,
    py: Python<'py>,
    row: &Setting,
) -> PyResult<Bound<'py, PyAny>> {
    let value = cfg
        .get_value(py, row.name)
        .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(row.name))?;
    row.kind.to_python(py, row.name, &value)
}

/// Python's `str()` of a value, except callables print as `<qualname()>` (Gunicorn).
fn shown(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if value.is_callable() {
        let qualname: String = value.getattr("__qualname__")?.extract()?;
        return Ok(format!("<{qualname}()>"));
    }
    Ok(value.str()?.to_string_lossy().into_owned())
}

pub(crate) fn print_config(cfg: &Config, py: Python<'_>) -> String {
    let width = TABLE.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut rows: Vec<&Setting> = TABLE.iter().collect();
    rows.sort_by_key(|r| r.name);
    rows.iter()
        .map(|row| {
            let text = setting_value(cfg, py, row)
                .and_then(|v| shown(&v))
                .unwrap_or_else(|e| format!("<error: {e}>"));
            format!("{:width$} = {text}", row.name)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The arbiter's debug dump at start-up: "Current configuration:" then `  name: value`
/// lines in table order, as Gunicorn logs it.
pub(crate) fn current_configuration(cfg: &Config, py: Python<'_>) -> String {
    let mut out = String::from("Current configuration:");
    for row in TABLE.iter() {
        let text = setting_value(cfg, py, row)
            .and_then(|v| shown(&v))
            .unwrap_or_else(|e| format!("<error: {e}>"));
        out.push_str(&format!("\n  {}: {text}", row.name));
    }
    out
}

pub(crate) fn to_python(cfg: &Config, py: Python<'_>) -> PyResult<Py<PyAny>> {
    let values = PyDict::new(py);
    for row in TABLE {
        values.set_item(row.name, setting_value(cfg, py, row)?)?;
    }
    // Gunicorn's Config properties, which shadow or add to the raw settings.
    let address = PyList::empty(py);
    if let Ok(addrs) = cfg.address() {
        for a in addrs {
            address.append(a.to_python(py)?)?;
        }
    }
    values.set_item("address", address)?;
    values.set_item("proc_name", cfg.proc_name())?;
    values.set_item("worker_class_str", cfg.worker_class_str())?;
    values.set_item("uid", cfg.user)?;
    values.set_item("gid", cfg.group)?;
    values.set_item("is_ssl", cfg.is_ssl())?;
    values.set_item("sendfile", cfg.sendfile_enabled())?;
    let env = PyDict::new(py);
    for (k, v) in cfg.env().unwrap_or_default() {
        env.set_item(k, v)?;
    }
    values.set_item("env", env)?;
    let ssl = PyDict::new(py);
    for row in TABLE.iter().filter(|r| r.section == "SSL") {
        ssl.set_item(row.name, setting_value(cfg, py, row)?)?;
    }
    values.set_item("ssl_options", ssl)?;
    let text = print_config(cfg, py);
    Ok(support::config_object(py, &values, &text)?.unbind())
}

// ---- -h ---------------------------------------------------------------------------------

/// The text of one option's invocation column, argparse style (`-w INT, --workers INT`).
fn invocation(row: &Setting) -> String {
    let meta = row.metavar();
    row.cli
        .iter()
        .map(|flag| match row.action {
            Action::StoreTrue | Action::StoreConst(_) | Action::FileOnly => flag.to_string(),
            Action::Optional(_) => format!("{flag} [{meta}]"),
            Action::Store(_) | Action::Append => format!("{flag} {meta}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// argparse's `format_help()` for the options generated from the table.
pub(crate) fn help(prog: &str) -> String {
    // argparse's layout for an 80-column terminal: help at column 24, lines of 78.
    const HELP_COL: usize = 24;
    const WIDTH: usize = 78;
    let mut entries: Vec<(String, String)> = vec![
        (
            "-h, --help".into(),
            "show this help message and exit".into(),
        ),
        (
            "-v, --version".into(),
            "show program's version number and exit".into(),
        ),
    ];
    for row in TABLE.iter().filter(|r| !r.cli.is_empty()) {
        entries.push((
            invocation(row),
            format!("{} [{}]", row.short(), row.default_doc),
        ));
    }
    let mut out = format!("usage: {}\n\noptions:\n", usage(prog));
    for (inv, text) in entries {
        let body = wrap(&text, WIDTH - HELP_COL);
        if inv.len() + 2 <= HELP_COL - 2 {
            out.push_str(&format!("  {inv:<width$}", width = HELP_COL - 2));
        } else {
            out.push_str(&format!("  {inv}\n{}", " ".repeat(HELP_COL)));
        }
        for (i, line) in body.iter().enumerate() {
            if i > 0 {
                out.push_str(&" ".repeat(HELP_COL));
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

// ---- docs/settings.md -------------------------------------------------------------------

/// The settings reference, generated from the table (checked in as `docs/settings.md`).
pub fn settings_markdown() -> String {
    let mut out = String::from(
        "# Settings\n\n\
         <!-- Generated from src/config/table_*.rs; do not edit by hand. Regenerate with\n\
         FERROCORN_BLESS=1 cargo test -p ferrocorn config::tests::table::docs -->\n\n\
         ferrocorn accepts every Gunicorn 27 setting, with the same names, flags and config-file\n\
         spelling. Precedence, lowest first: defaults (and the `WEB_CONCURRENCY`, `PORT`,\n\
         `FORWARDED_ALLOW_IPS` and `SENDFILE` environment variables), the config file,\n\
         `GUNICORN_CMD_ARGS`, the command line. Settings marked *not supported yet* are\n\
         accepted but start-up fails with `Error: <setting> is not supported yet` if they\n\
         are changed from their default.\n",
    );
    let mut sections: Vec<&str> = Vec::new();
    for row in TABLE {
        if !sections.contains(&row.section) {
            sections.push(row.section);
        }
    }
    for section in sections {
        out.push_str(&format!("\n## {section}\n"));
        for row in TABLE.iter().filter(|r| r.section == section) {
            out.push_str(&format!("\n### `{}`\n\n", row.name));
            if row.cli.is_empty() {
                out.push_str("- Command line: config file only\n");
            } else {
                out.push_str(&format!("- Command line: `{}`\n", invocation(row)));
            }
            match row.default_doc {
                "" => out.push_str("- Default: empty\n"),
                shown => out.push_str(&format!("- Default: `{shown}`\n")),
            }
            if !row.supported {
                out.push_str("- *Not supported yet*\n");
            }
            out.push('\n');
            out.push_str(row.doc);
            out.push('\n');
        }
    }
    out
}
