//! The control commands against the master's state: `show`, `worker`, `dirty`, `reload`,
//! `reopen`, `shutdown`, `help`, with Gunicorn 27's reply shapes and error texts. They run
//! in the master's loop, so `worker add|remove` change the worker count exactly as TTIN and
//! TTOU do (the `nworkers_changed` hook runs here, never on another thread), and the signal
//! commands queue their signal for the loop to handle after the reply is written.
//!
//! Owns: command routing and reply data. Must not touch: sockets and framing
//! (`control::server`, `control::protocol`).

use nix::sys::signal::Signal;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use serde_json::{json, Map, Value};

use super::protocol::{encode, error_reply, ok_reply, py_int, words, CmdError, Request};
use super::DirtyControl;
use crate::arbiter::Arbiter;
use crate::net::Listener;

type Reply = Result<Value, CmdError>;

/// `show config`'s keys, Gunicorn's fixed list.
const CONFIG_KEYS: [&str; 20] = [
    "bind",
    "workers",
    "worker_class",
    "threads",
    "timeout",
    "graceful_timeout",
    "keepalive",
    "max_requests",
    "max_requests_jitter",
    "worker_connections",
    "preload_app",
    "daemon",
    "pidfile",
    "proc_name",
    "reload",
    "dirty_workers",
    "dirty_apps",
    "dirty_timeout",
    "control_socket",
    "control_socket_disable",
];

const HELP: [(&str, &str); 15] = [
    (
        "show all",
        "Show all processes (arbiter, web workers, dirty workers)",
    ),
    ("show workers", "List HTTP workers with their status"),
    ("show dirty", "List dirty workers and apps"),
    ("show config", "Show current effective configuration"),
    ("show stats", "Show server statistics"),
    ("show listeners", "Show bound sockets"),
    ("worker add [N]", "Spawn N workers (default 1)"),
    ("worker remove [N]", "Remove N workers (default 1)"),
    ("worker kill <PID>", "Gracefully terminate specific worker"),
    ("dirty add [N]", "Spawn N dirty workers (default 1)"),
    ("dirty remove [N]", "Remove N dirty workers (default 1)"),
    ("reload", "Graceful reload (HUP)"),
    ("reopen", "Reopen log files (USR1)"),
    ("shutdown [graceful|quick]", "Shutdown server (TERM/INT)"),
    ("help", "Show this help message"),
];

/// More workers than this would not fit the heartbeat table once a HUP doubles them for a
/// while, and running out of slots stops the master; `worker add` refuses instead.
const MAX_WORKERS: i64 = (crate::sys::heartbeat::SLOTS / 2) as i64;

impl Arbiter<'_> {
    /// Start the control socket (after the first workers, as Gunicorn does).
    pub(in crate::arbiter) fn start_control(&mut self) {
        self.control.start(&self.cfg, self.master_pid != 0);
    }

    /// The control socket's turn of the loop: a pending USR2 bind, then every complete
    /// request, answered in order, then the writes. Returns the signals `reload`, `reopen`
    /// and `shutdown` asked for, for the loop to handle like received ones.
    pub(in crate::arbiter) fn serve_control(&mut self) -> Vec<Signal> {
        self.control.retry_bind();
        let py = self.py;
        // Reading and parsing need no Python; only the commands may (hooks, `show config`).
        let requests = match self.control.server.as_mut() {
            Some(server) => py.detach(|| server.read_requests()),
            None => return std::mem::take(&mut self.control.signals),
        };
        for (conn, request) in requests {
            let reply = match self.run_command(&request) {
                Ok(data) => ok_reply(request.id, data),
                Err(e) => error_reply(request.id, &e),
            };
            if let Some(server) = self.control.server.as_mut() {
                server.reply(conn, encode(&reply));
            }
        }
        if let Some(server) = self.control.server.as_mut() {
            py.detach(|| server.flush());
        }
        std::mem::take(&mut self.control.signals)
    }

    fn run_command(&mut self, request: &Request) -> Reply {
        let parts = words(request)?;
        let rest = &parts[1..];
        let result = match parts[0].to_lowercase().as_str() {
            "show" => self.show(rest),
            "worker" => self.worker_command(rest),
            "dirty" => dirty_command(self.control.dirty.as_mut(), rest),
            "reload" => Ok(self.queue_signal(Signal::SIGHUP, json!({"status": "reloading"}))),
            "reopen" => Ok(self.queue_signal(Signal::SIGUSR1, json!({"status": "reopening"}))),
            "shutdown" => self.shutdown_command(rest),
            "help" => {
                let commands: Map<String, Value> = HELP
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect();
                Ok(json!({ "commands": commands }))
            }
            other => Err(CmdError::Invalid(format!("Unknown command: {other}"))),
        };
        if let Err(CmdError::Failed(text)) = &result {
            crate::telemetry::error_log::error(&format!("Command error: {text}"));
        }
        result
    }

    fn queue_signal(&mut self, sig: Signal, data: Value) -> Value {
        self.control.signals.push(sig);
        data
    }

    fn shutdown_command(&mut self, rest: &[String]) -> Reply {
        let mode = rest.first().map_or("graceful", String::as_str);
        let sig = match mode {
            "graceful" => Signal::SIGTERM,
            "quick" => Signal::SIGINT,
            // Gunicorn stops gracefully on any other word; a typo should not stop a server.
            other => {
                return Err(CmdError::Invalid(format!(
                    "Unknown shutdown mode: {other} (graceful|quick)"
                )))
            }
        };
        Ok(self.queue_signal(sig, json!({"status": "shutting_down", "mode": mode})))
    }

    fn show(&mut self, rest: &[String]) -> Reply {
        let Some(target) = rest.first() else {
            return Err(CmdError::Invalid(
                "Missing show target (all|workers|dirty|config|stats|listeners)".into(),
            ));
        };
        match target.to_lowercase().as_str() {
            "all" => Ok(self.show_all()),
            "workers" => {
                let workers = self.worker_list(false);
                let count = workers.len();
                Ok(json!({"workers": workers, "count": count}))
            }
            "dirty" => show_dirty(self.control.dirty.as_mut()),
            "config" => self
                .show_config()
                .map_err(|e| CmdError::Failed(e.to_string())),
            "stats" => Ok(self.show_stats()),
            "listeners" => {
                let listeners: Vec<Value> = self.listeners.iter().map(listener_info).collect();
                let count = listeners.len();
                Ok(json!({"listeners": listeners, "count": count}))
            }
            other => Err(CmdError::Invalid(format!("Unknown show target: {other}"))),
        }
    }

    /// The workers oldest first; `booted` and `last_heartbeat` come from the heartbeat
    /// table the workers write, so they are true (`last_heartbeat` is null until a worker
    /// has booted and beaten once).
    fn worker_list(&self, for_all: bool) -> Vec<Value> {
        let mut rows: Vec<(u64, Value)> = self
            .workers
            .iter()
            .map(|(pid, w)| {
                let beat = self
                    .hb
                    .silent_for_ms(w.slot)
                    .map(|ms| (ms as f64 / 10.0).round() / 100.0);
                let row = if for_all {
                    json!({"pid": pid, "type": "web", "age": w.age,
                           "booted": self.hb.booted(w.slot), "last_heartbeat": beat})
                } else {
                    json!({"pid": pid, "age": w.age, "booted": self.hb.booted(w.slot),
                           "aborted": w.aborted, "last_heartbeat": beat})
                };
                (w.age, row)
            })
            .collect();
        rows.sort_by_key(|(age, _)| *age);
        rows.into_iter().map(|(_, row)| row).collect()
    }

    fn show_all(&mut self) -> Value {
        let web = self.worker_list(true);
        let dirty_pid = self.control.dirty.pid();
        let (dirty_arbiter, dirty_workers) = match dirty_pid {
            Some(pid) => (
                json!({"pid": pid, "type": "dirty_arbiter", "role": "dirty master"}),
                self.control.dirty.status_workers(),
            ),
            None => (Value::Null, Vec::new()),
        };
        let (web_count, dirty_count) = (web.len(), dirty_workers.len());
        json!({
            "arbiter": {"pid": self.pid, "type": "arbiter", "role": "master"},
            "web_workers": web,
            "web_worker_count": web_count,
            "dirty_arbiter": dirty_arbiter,
            "dirty_workers": dirty_workers,
            "dirty_worker_count": dirty_count,
        })
    }

    fn show_stats(&self) -> Value {
        let uptime = (self.control.started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
        json!({
            "uptime": uptime,
            "pid": self.pid,
            "workers_current": self.workers.len(),
            "workers_target": self.num_workers,
            // Every spawn takes the next age.
            "workers_spawned": self.worker_age,
            "workers_killed": self.control.workers_killed,
            "reloads": self.control.reloads,
            "dirty_arbiter_pid": self.control.dirty.pid(),
        })
    }

    /// What the hooks' `server.cfg` says for each key, as Gunicorn's handler converts it:
    /// callables and other non-JSON objects as their `str()`.
    fn show_config(&self) -> PyResult<Value> {
        let py = self.py;
        let cfg = self.cfg_obj.bind(py);
        let dumps = py.import("json")?.getattr("dumps")?;
        let mut out = Map::new();
        for key in CONFIG_KEYS {
            let Ok(value) = cfg.getattr(key) else {
                continue;
            };
            let plain = value.is_none()
                || value.is_instance_of::<PyString>()
                || value.is_instance_of::<PyBool>()
                || value.is_instance_of::<PyInt>()
                || value.is_instance_of::<PyFloat>()
                || value.is_instance_of::<PyList>()
                || value.is_instance_of::<PyDict>();
            let value = if value.is_callable() || !plain {
                value.str()?.into_any()
            } else {
                value
            };
            let text: String = dumps.call1((value,))?.extract()?;
            let parsed = serde_json::from_str(&text)
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
            out.insert(key.to_string(), parsed);
        }
        Ok(Value::Object(out))
    }

    fn worker_command(&mut self, rest: &[String]) -> Reply {
        let Some(action) = rest.first() else {
            return Err(CmdError::Invalid(
                "Missing worker action (add|remove|kill)".into(),
            ));
        };
        let arg = rest.get(1);
        match action.to_lowercase().as_str() {
            "add" => {
                let count = count_arg(arg)?;
                let previous = self.num_workers;
                let total = previous.saturating_add(count);
                if total > MAX_WORKERS {
                    return Err(CmdError::Failed(format!(
                        "{total} workers is more than one master runs (at most {MAX_WORKERS})"
                    )));
                }
                self.set_num_workers(total).map_err(failed)?;
                Ok(json!({"added": count, "previous": previous, "total": total}))
            }
            "remove" => {
                let count = count_arg(arg)?;
                let previous = self.num_workers;
                let total = previous.saturating_sub(count).max(1);
                self.set_num_workers(total).map_err(failed)?;
                Ok(json!({"removed": previous - total, "previous": previous, "total": total}))
            }
            "kill" => {
                let Some(arg) = arg else {
                    return Err(CmdError::Invalid("Missing PID for worker kill".into()));
                };
                let pid = py_int(arg)?;
                let known = i32::try_from(pid)
                    .ok()
                    .filter(|p| self.workers.contains_key(p));
                let Some(pid) = known else {
                    return Ok(
                        json!({"success": false, "error": format!("Worker {pid} not found")}),
                    );
                };
                let sent = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
                self.control.count_kill(Signal::SIGTERM, sent.is_ok());
                Ok(match sent {
                    Ok(()) => json!({"success": true, "killed": pid}),
                    Err(e) => json!({"success": false,
                                     "error": format!("[Errno {}] {}", e as i32, e.desc())}),
                })
            }
            other => Err(CmdError::Invalid(format!("Unknown worker action: {other}"))),
        }
    }
}

/// `show dirty`: Gunicorn's "not enabled" shape while no dirty arbiter runs.
fn show_dirty(dirty: &mut dyn DirtyControl) -> Reply {
    let Some(pid) = dirty.pid() else {
        return Ok(json!({"enabled": false, "pid": null, "workers": [], "apps": []}));
    };
    let (workers, apps) = dirty.show().map_err(CmdError::Failed)?;
    Ok(json!({"enabled": true, "pid": pid, "workers": workers, "apps": apps}))
}

/// `dirty add|remove [N]`: the count is checked first, then whether a dirty arbiter runs
/// (Gunicorn's order).
fn dirty_command(dirty: &mut dyn DirtyControl, rest: &[String]) -> Reply {
    let Some(action) = rest.first() else {
        return Err(CmdError::Invalid(
            "Missing dirty action (add|remove)".into(),
        ));
    };
    let add = match action.to_lowercase().as_str() {
        "add" => true,
        "remove" => false,
        other => return Err(CmdError::Invalid(format!("Unknown dirty action: {other}"))),
    };
    let count = count_arg(rest.get(1))?;
    if dirty.pid().is_none() {
        return Ok(json!({"success": false, "error": "Dirty arbiter not running"}));
    }
    Ok(dirty.manage(add, count))
}

/// `[N]`: 1 when absent, and never less than 1 (Gunicorn's `max(1, int(N))`).
fn count_arg(arg: Option<&String>) -> Result<i64, CmdError> {
    let n = match arg {
        Some(word) => py_int(word)?,
        None => 1,
    };
    Ok(n.clamp(1, i128::from(i64::MAX)) as i64)
}

fn failed(e: crate::errors::Error) -> CmdError {
    let text = match &e {
        crate::errors::Error::Python(err) => Python::attach(|py| err.value(py).to_string()),
        other => other.to_string(),
    };
    CmdError::Failed(text)
}

fn listener_info(l: &Listener) -> Value {
    let kind = match l {
        Listener::Unix(..) => "unix",
        Listener::Tcp(_, std::net::SocketAddr::V4(_)) => "tcp",
        Listener::Tcp(_, std::net::SocketAddr::V6(_)) => "tcp6",
    };
    json!({"address": l.to_string(), "fd": l.fd(), "type": kind})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dirty arbiter that records what it is asked.
    struct FakeDirty {
        pid: Option<i32>,
        managed: Vec<(bool, i64)>,
    }

    impl DirtyControl for FakeDirty {
        fn pid(&self) -> Option<i32> {
            self.pid
        }
        fn show(&mut self) -> Result<(Vec<Value>, Vec<Value>), String> {
            Ok((
                vec![json!({"pid": 7})],
                vec![json!({"import_path": "m:App"})],
            ))
        }
        fn status_workers(&mut self) -> Vec<Value> {
            vec![json!({"pid": 7})]
        }
        fn manage(&mut self, add: bool, count: i64) -> Value {
            self.managed.push((add, count));
            json!({"success": true})
        }
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn dirty_commands_go_through_the_seam_only_while_it_runs() {
        let mut off = FakeDirty {
            pid: None,
            managed: Vec::new(),
        };
        assert_eq!(
            show_dirty(&mut off).unwrap(),
            json!({"enabled": false, "pid": null, "workers": [], "apps": []})
        );
        assert_eq!(
            dirty_command(&mut off, &words("add 2")).unwrap(),
            json!({"success": false, "error": "Dirty arbiter not running"})
        );
        assert!(off.managed.is_empty());

        let mut on = FakeDirty {
            pid: Some(42),
            managed: Vec::new(),
        };
        assert_eq!(
            show_dirty(&mut on).unwrap(),
            json!({"enabled": true, "pid": 42, "workers": [{"pid": 7}],
                   "apps": [{"import_path": "m:App"}]})
        );
        assert_eq!(
            dirty_command(&mut on, &words("ADD")).unwrap(),
            json!({"success": true})
        );
        dirty_command(&mut on, &words("remove -5")).unwrap();
        dirty_command(&mut on, &words("remove 3")).unwrap();
        assert_eq!(on.managed, [(true, 1), (false, 1), (false, 3)]);
        assert_eq!(
            dirty_command(&mut on, &words("add x")).unwrap_err().text(),
            "Invalid argument: invalid literal for int() with base 10: 'x'"
        );
        assert_eq!(
            dirty_command(&mut on, &words("grow")).unwrap_err().text(),
            "Invalid argument: Unknown dirty action: grow"
        );
    }
}
