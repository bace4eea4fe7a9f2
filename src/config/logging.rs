//! Which logger serves this configuration: the Rust one (Gunicorn's default `glogging.Logger`
//! and its StatsD variant, written without Python) or a Python logger object (`logconfig*`
//! or a user `logger_class`). Decided once, from settings already validated at load.

use pyo3::prelude::*;

use super::Config;

/// Names that mean Gunicorn's own default logger.
const DEFAULT_LOGGERS: &[&str] = &[
    "gunicorn.glogging.Logger",
    "simple",
    "ferrocorn.glogging.Logger",
    "glogging.Logger",
    "egg:gunicorn#simple",
];

/// The names Gunicorn compares with its default when `statsd_host` switches the class.
const SWITCHED_BY_STATSD: &[&str] = &[
    "gunicorn.glogging.Logger",
    "simple",
    "ferrocorn.glogging.Logger",
];

/// Names that mean Gunicorn's StatsD logger.
const STATSD_LOGGERS: &[&str] = &[
    "gunicorn.instrument.statsd.Statsd",
    "ferrocorn.instrument.statsd.Statsd",
];

/// How log lines and metrics leave the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggerMode {
    /// Rust writes the error and access logs, syslog and StatsD (when `statsd` is true).
    Rust { statsd: bool },
    /// `class` (an import path or one of the names above) is instantiated with the cfg
    /// object and receives every log call.
    Python { class: String },
}

impl Config {
    pub fn logger_mode(&self) -> LoggerMode {
        let class = self.logger_class.as_str();
        let builtin_default = DEFAULT_LOGGERS.contains(&class);
        let builtin_statsd = STATSD_LOGGERS.contains(&class);
        // Gunicorn switches to the StatsD logger only when the class is still the default.
        let statsd =
            builtin_statsd || (SWITCHED_BY_STATSD.contains(&class) && self.statsd_host.is_some());
        if (builtin_default || builtin_statsd) && !self.python_logging_config() {
            return LoggerMode::Rust {
                statsd: self.statsd_host.is_some() && statsd,
            };
        }
        let class = if statsd {
            "ferrocorn.instrument.statsd.Statsd".to_string()
        } else if builtin_default {
            "ferrocorn.glogging.Logger".to_string()
        } else {
            class.to_string()
        };
        LoggerMode::Python { class }
    }

    /// Whether Python's `logging` must be configured: a non-empty `logconfig_dict`, an
    /// existing `logconfig_json` file (Gunicorn ignores a missing one), or `logconfig`
    /// (whose missing file is an error the Python logger reports).
    fn python_logging_config(&self) -> bool {
        let dict = Python::attach(|py| {
            self.logconfig_dict
                .as_ref()
                .is_some_and(|d| d.bind(py).is_truthy().unwrap_or(true))
        });
        dict || self.logconfig.is_some()
            || self
                .logconfig_json
                .as_deref()
                .is_some_and(|p| std::path::Path::new(p).exists())
    }
}
