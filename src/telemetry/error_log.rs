//! The process-wide error log (Gunicorn's `gunicorn.error` logger with its default handler).
//!
//! Owns: the `errorlog` destination, the `loglevel` threshold and the line shape
//! `[%Y-%m-%d %H:%M:%S %z] [pid] [LEVEL] message`, and handing each line to syslog and a
//! count to StatsD when those are on, or to the Python logger (`pyroute`) in Python mode.
//! Must not touch: the access log, and Python logging configuration (`logconfig*`).
//!
//! Before `init` runs, lines go to stderr at level info, so start-up errors are never lost.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Local, TimeZone};

use super::pyroute::{self, Call};
use super::sink::{Kind, Sink, Target};
use super::stamp::error_stamp;
use super::statsd::{self, LogCall};
use super::syslog::{self, Stream};
use super::TelemetryError;

/// Gunicorn's five error-log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
}

impl Level {
    /// Python's `logging` level number, used for filtering so numeric levels from hooks
    /// (`log.log(25, ...)`) compare the same way they do in Gunicorn.
    pub fn levelno(self) -> u32 {
        match self {
            Level::Critical => 50,
            Level::Error => 40,
            Level::Warning => 30,
            Level::Info => 20,
            Level::Debug => 10,
        }
    }

    /// The `levelname` printed in the line.
    pub fn name(self) -> &'static str {
        match self {
            Level::Critical => "CRITICAL",
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }

    /// The `loglevel` setting: case-insensitive, anything unknown means info.
    pub fn from_setting(value: &str) -> Level {
        match value.to_ascii_lowercase().as_str() {
            "critical" => Level::Critical,
            "error" => Level::Error,
            "warning" => Level::Warning,
            "debug" => Level::Debug,
            _ => Level::Info,
        }
    }
}

/// Python's `logging.getLevelName` for any number, so odd numeric levels print as Gunicorn does.
pub(crate) fn level_name(levelno: u32) -> Cow<'static, str> {
    match levelno {
        50 => "CRITICAL".into(),
        40 => "ERROR".into(),
        30 => "WARNING".into(),
        20 => "INFO".into(),
        10 => "DEBUG".into(),
        0 => "NOTSET".into(),
        n => format!("Level {n}").into(),
    }
}

static SINK: Sink = Sink::new("errorlog", Kind::Stderr);
static THRESHOLD: AtomicU32 = AtomicU32::new(20);

/// Points the error log at `errorlog` (`-` is stderr, anything else a file opened for append)
/// and applies `loglevel`. Safe to call again on reload; if the file cannot be opened the
/// previous destination and level stay.
pub fn init(errorlog: &str, loglevel: &str) -> Result<(), TelemetryError> {
    let target = if errorlog == "-" {
        Target::Stderr
    } else {
        Target::File(Path::new(errorlog))
    };
    SINK.set_target(target)?;
    THRESHOLD.store(Level::from_setting(loglevel).levelno(), Ordering::Release);
    Ok(())
}

pub fn log(level: Level, msg: &str) {
    let call = match level {
        Level::Critical => Call::Critical,
        Level::Error => Call::Error,
        Level::Warning => Call::Warning,
        Level::Info => Call::Info,
        Level::Debug => Call::Debug,
    };
    count(call);
    if !pyroute::line(call, msg) {
        write_default(level.levelno(), msg);
    }
}

pub fn critical(msg: &str) {
    log(Level::Critical, msg);
}

pub fn error(msg: &str) {
    log(Level::Error, msg);
}

pub fn warning(msg: &str) {
    log(Level::Warning, msg);
}

pub fn info(msg: &str) {
    log(Level::Info, msg);
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

/// Gunicorn's StatsD logger counts critical, error and warning calls (and exception calls,
/// see `exception`), whether or not the line passes `loglevel`.
pub(crate) fn count(call: Call) {
    if !statsd::enabled() {
        return;
    }
    match call {
        Call::Critical => statsd::log_call(LogCall::Critical),
        Call::Error => statsd::log_call(LogCall::Error),
        Call::Warning => statsd::log_call(LogCall::Warning),
        _ => {}
    }
}

/// Logs `msg` at error level followed by a Python traceback, as `logger.exception` does.
pub fn exception(msg: &str, traceback: &str) {
    if statsd::enabled() {
        statsd::log_call(LogCall::Exception);
    }
    let text = with_traceback(msg, traceback);
    if !pyroute::line(Call::Error, &text) {
        write_default(Level::Error.levelno(), &text);
    }
}

/// `logger.exception(msg)` for a Python exception: a Python logger gets the exception
/// itself as `exc_info` (so its formatter decides how to show it), the default path the
/// traceback text.
pub fn exception_py(py: pyo3::Python<'_>, msg: &str, err: &pyo3::PyErr) {
    if statsd::enabled() {
        statsd::log_call(LogCall::Exception);
    }
    if !pyroute::exception(py, msg, err) {
        let text = with_traceback(msg, &super::format_traceback(py, err));
        write_default(Level::Error.levelno(), &text);
    }
}

/// Whether a line at `level` would be written; check it before building costly messages.
pub fn enabled(level: Level) -> bool {
    enabled_levelno(level.levelno())
}

pub(crate) fn enabled_levelno(levelno: u32) -> bool {
    if pyroute::active() {
        return levelno >= pyroute::threshold();
    }
    levelno >= THRESHOLD.load(Ordering::Acquire)
}

/// Writes one line at a Python level number (for levels outside Gunicorn's five).
pub(crate) fn log_levelno(levelno: u32, msg: &str) {
    write_default(levelno, msg);
}

/// The default logger's handlers: the errorlog destination, then syslog when it is on.
fn write_default(levelno: u32, msg: &str) {
    if levelno < THRESHOLD.load(Ordering::Acquire) {
        return;
    }
    let line = format_line(&Local::now(), std::process::id(), &level_name(levelno), msg);
    SINK.write_all(line.as_bytes());
    if syslog::enabled() {
        syslog::send(levelno, Stream::Error, msg);
    }
}

/// Writes text as-is to the error log destination (`wsgi.errors`, Python logging errors).
pub(crate) fn write_raw(text: &[u8]) {
    SINK.write_all(text);
}

/// Re-opens the error log file by name (USR1). Stderr has nothing to reopen.
pub fn reopen() -> Result<(), TelemetryError> {
    SINK.reopen()
}

/// `capture_output`: descriptors 1 and 2 become the error log file (when it is one).
pub(crate) fn redirect_stdio() -> std::io::Result<()> {
    SINK.redirect_stdio()
}

/// The log file's descriptor, or None when logging to stderr.
pub fn raw_fd() -> Option<i32> {
    SINK.raw_fd()
}

/// Chowns the error log file to the worker user and group (Gunicorn does this at setup so
/// workers can reopen it after dropping privileges). Stderr is left alone.
pub fn chown(uid: u32, gid: u32) {
    SINK.chown(uid, gid);
}

pub(crate) fn set_cloexec() -> std::io::Result<()> {
    SINK.set_cloexec()
}

/// One complete line, newline included. The pid is passed in so it is the caller's at the
/// time of the call, which is what makes lines right in forked workers.
pub(crate) fn format_line<Tz: TimeZone>(
    now: &DateTime<Tz>,
    pid: u32,
    levelname: &str,
    msg: &str,
) -> String {
    let mut line = String::with_capacity(48 + levelname.len() + msg.len());
    error_stamp(now, &mut line);
    line.push_str(" [");
    line.push_str(&pid.to_string());
    line.push_str("] [");
    line.push_str(levelname);
    line.push_str("] ");
    line.push_str(msg);
    line.push('\n');
    line
}

/// `logging.Formatter.format` with exception text: the message, a newline unless it already
/// ends with one, then the traceback minus one trailing newline.
pub(crate) fn with_traceback(msg: &str, traceback: &str) -> String {
    let tb = traceback.strip_suffix('\n').unwrap_or(traceback);
    if tb.is_empty() {
        return msg.to_owned();
    }
    let mut out = String::with_capacity(msg.len() + tb.len() + 1);
    out.push_str(msg);
    if !msg.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(tb);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;
    use std::io::Read;

    /// `^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}\] \[\d+\] \[[A-Z]+\] `, checked by hand.
    fn assert_line_shape(line: &str, level: &str, msg: &str) {
        let b = line.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        assert_eq!(b[0], b'[', "{line}");
        assert!(
            digits(1..5) && b[5] == b'-' && digits(6..8) && b[8] == b'-',
            "{line}"
        );
        assert!(
            digits(9..11) && b[11] == b' ' && digits(12..14) && b[14] == b':',
            "{line}"
        );
        assert!(
            digits(15..17) && b[17] == b':' && digits(18..20) && b[20] == b' ',
            "{line}"
        );
        assert!(matches!(b[21], b'+' | b'-') && digits(22..26), "{line}");
        assert_eq!(&line[26..29], "] [", "{line}");
        let rest = &line[29..];
        let close = rest.find(']').unwrap();
        assert!(close > 0 && rest[..close].bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(&rest[close..], format!("] [{level}] {msg}\n"), "{line}");
    }

    #[test]
    fn line_matches_gunicorn_reference() {
        let t = FixedOffset::east_opt(0)
            .unwrap()
            .with_ymd_and_hms(2026, 11, 22, 2, 53, 39)
            .unwrap();
        assert_eq!(
            format_line(&t, 23180, "INFO", "Starting gunicorn 27.0.1"),
            "[2026-11-22 02:53:39 +0000] [23180] [INFO] Starting gunicorn 27.0.1\n"
        );
        let live = format_line(&Local::now(), std::process::id(), "WARNING", "x y");
        assert_line_shape(&live, "WARNING", "x y");
    }

    #[test]
    fn levels_parse_like_gunicorn() {
        assert_eq!(Level::from_setting("DEBUG"), Level::Debug);
        assert_eq!(Level::from_setting("Warning"), Level::Warning);
        assert_eq!(Level::from_setting("critical"), Level::Critical);
        assert_eq!(Level::from_setting("error"), Level::Error);
        assert_eq!(Level::from_setting("warn"), Level::Info);
        assert_eq!(Level::from_setting(""), Level::Info);
        assert_eq!(level_name(25), "Level 25");
        assert_eq!(level_name(40), "ERROR");
    }

    #[test]
    fn traceback_joining() {
        assert_eq!(
            with_traceback("boom", "Traceback\n  x\nE: y\n"),
            "boom\nTraceback\n  x\nE: y"
        );
        assert_eq!(with_traceback("boom\n", "T\n\n"), "boom\nT\n");
        assert_eq!(with_traceback("boom", ""), "boom");
    }

    #[test]
    fn global_file_target_filtering_and_reopen() {
        let _guard = super::super::global_test_guard();
        let dir = std::env::temp_dir().join(format!("ferrocorn-errlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("error.log");
        let read = |p: &Path| {
            let mut s = String::new();
            std::fs::File::open(p)
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            s
        };

        init(path.to_str().unwrap(), "warning").unwrap();
        assert!(raw_fd().is_some());
        assert!(enabled(Level::Warning) && enabled(Level::Critical));
        assert!(!enabled(Level::Info) && !enabled(Level::Debug));
        info("hidden");
        debug("hidden");
        warning("shown");
        critical("also shown");
        exception(
            "failed",
            "Traceback (most recent call last):\nValueError: x\n",
        );
        log_levelno(35, "between");
        log_levelno(25, "below");

        std::fs::rename(&path, dir.join("error.log.1")).unwrap();
        reopen().unwrap();
        error("after rotation");
        init(path.to_str().unwrap(), "nonsense").unwrap();
        info("info is the default");
        debug("still hidden");

        let rotated = read(&dir.join("error.log.1"));
        let lines: Vec<&str> = rotated.split_inclusive('\n').collect();
        assert_eq!(lines.len(), 6, "{rotated}");
        assert_line_shape(lines[0], "WARNING", "shown");
        assert_line_shape(lines[1], "CRITICAL", "also shown");
        assert!(lines[2].ends_with("[ERROR] failed\n"), "{rotated}");
        assert_eq!(lines[3], "Traceback (most recent call last):\n");
        assert_eq!(lines[4], "ValueError: x\n");
        assert_line_shape(lines[5], "Level 35", "between");

        let fresh = read(&path);
        let lines: Vec<&str> = fresh.split_inclusive('\n').collect();
        assert_eq!(lines.len(), 2, "{fresh}");
        assert_line_shape(lines[0], "ERROR", "after rotation");
        assert_line_shape(lines[1], "INFO", "info is the default");

        let bad = dir.join("missing").join("x.log");
        let err = init(bad.to_str().unwrap(), "debug").unwrap_err();
        assert!(err.to_string().starts_with("errorlog: '"), "{err}");
        assert!(!enabled(Level::Debug), "a failed init keeps the old level");

        init("-", "info").unwrap();
        assert_eq!(raw_fd(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn forked_child_logs_with_its_own_pid() {
        use nix::sys::wait::{waitpid, WaitStatus};

        let _guard = super::super::global_test_guard();
        let dir = std::env::temp_dir().join(format!("ferrocorn-fork-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("error.log");
        init(path.to_str().unwrap(), "info").unwrap();
        info("parent before fork");

        let child = crate::sys::process::fork_and_run(|| info("child"));
        assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
        info("parent after fork");

        let mut text = String::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let parent = format!("] [{}] [INFO] parent", std::process::id());
        assert!(lines[0].contains(&parent), "{text}");
        assert!(
            lines[1].ends_with(&format!("] [{child}] [INFO] child")),
            "{text}"
        );
        assert!(lines[2].contains(&parent), "{text}");
        init("-", "info").unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
