//! Tests for `Logger` and `ErrorsStream`, driven from real Python code in the embedded
//! interpreter, writing to a real error log file.

use std::ffi::CString;
use std::io::Read;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::error_log;
use super::pylogging::{ErrorsStream, Logger};

const SCRIPT: &str = r#"
import io, sys
log.info("plain")
log.info("a %s b %d", "x", 3)
log.warning("%(k)s!", {"k": "mapped"})
log.info("%s", {})
log.debug("hidden at info")
log.log("warning", "named %s", "lvl")
log.log("bogus", "unknown names are info")
log.log(25, "numeric")
log.log(5, "too low")
try:
    raise ValueError("boom")
except ValueError:
    log.exception("caught %s", "it")
log.exception("no active exception")
log.error("given", exc_info=KeyError("k"))
log.error("false exc_info", exc_info=False)
log.critical("crit")
log.access(object(), None, {}, 1.0)

saved = sys.stderr
sys.stderr = io.StringIO()
try:
    log.info("%d", "notanumber")
    report = sys.stderr.getvalue()
finally:
    sys.stderr = saved
assert report.startswith("--- Logging error ---\n"), report
assert "TypeError: %d format: a real number is required, not str\n" in report, report
assert report.endswith("Message: '%d'\nArguments: ('notanumber',)\n"), report

try:
    log.info("x", bogus=1)
except TypeError as e:
    assert "unexpected keyword argument 'bogus'" in str(e)
else:
    raise AssertionError("no TypeError")
try:
    log.log(object(), "x")
except TypeError as e:
    assert str(e) == "level must be an integer"
else:
    raise AssertionError("no TypeError")

errors.write("raw text")
errors.write(" more\n")
errors.writelines(["l1\n", "l2\n"])
errors.flush()
assert errors.writable()
print("via print", file=errors)
try:
    errors.write(b"bytes")
except TypeError as e:
    assert str(e) == "write() argument must be str, not bytes", str(e)
else:
    raise AssertionError("no TypeError")
log.reopen_files()
log.close_on_exec()
log.info("after reopen")
"#;

#[test]
fn logger_and_errors_stream_from_python() {
    let _guard = super::global_test_guard();
    let dir = std::env::temp_dir().join(format!("ferrocorn-pylog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("error.log");
    error_log::init(path.to_str().unwrap(), "info").unwrap();

    Python::attach(|py| {
        let globals = PyDict::new(py);
        globals
            .set_item("log", Py::new(py, Logger::new()).unwrap())
            .unwrap();
        globals
            .set_item("errors", Py::new(py, ErrorsStream::new()).unwrap())
            .unwrap();
        let code = CString::new(SCRIPT).unwrap();
        if let Err(e) = py.run(&code, Some(&globals), None) {
            e.print(py);
            panic!("python script failed: {e}");
        }
    });

    let mut text = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    error_log::init("-", "info").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    // Strip the "[date] [pid] " prefix of formatted lines; raw lines have none.
    let pid_tag = format!("] [{}] [", std::process::id());
    let lines: Vec<String> = text
        .lines()
        .map(|l| match l.find(&pid_tag) {
            Some(at) if l.starts_with('[') => format!("[{}", &l[at + pid_tag.len()..]),
            _ => l.to_owned(),
        })
        .collect();
    let expect_prefix = [
        "[INFO] plain",
        "[INFO] a x b 3",
        "[WARNING] mapped!",
        "[INFO] {}",
        "[WARNING] named lvl",
        "[INFO] unknown names are info",
        "[Level 25] numeric",
        "[ERROR] caught it",
        "Traceback (most recent call last):",
    ];
    assert_eq!(&lines[..expect_prefix.len()], expect_prefix, "{text}");
    let rest = &lines[expect_prefix.len()..];
    let boom = rest.iter().position(|l| l == "ValueError: boom").unwrap();
    let rest = &rest[boom + 1..];
    assert_eq!(rest[0], "[ERROR] no active exception");
    assert_eq!(rest[1], "NoneType: None");
    assert_eq!(rest[2], "[ERROR] given");
    assert_eq!(rest[3], "KeyError: 'k'");
    assert_eq!(rest[4], "[ERROR] false exc_info");
    assert_eq!(rest[5], "[CRITICAL] crit");
    assert_eq!(
        &rest[6..],
        [
            "raw text more",
            "l1",
            "l2",
            "via print",
            "[INFO] after reopen"
        ],
        "{text}"
    );
}
