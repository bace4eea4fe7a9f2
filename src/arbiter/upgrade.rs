//! USR2 binary upgrade, as Gunicorn's `reexec()` and `maybe_promote_master()`: a forked child
//! runs `pre_exec` and re-executes the same command with the listening sockets inherited
//! (GUNICORN_FD, or LISTEN_FDS under systemd) and GUNICORN_PID naming the old master. The new
//! master writes `<pidfile>.2` and serves beside the old one; when the old master exits, the
//! new one promotes itself and takes the pidfile's name back.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::Arbiter;
use crate::errors::Result;
use crate::sys::process::{self, Forked};
use crate::telemetry::error_log;

/// GUNICORN_PID when this master is the new half of a binary upgrade.
pub fn parent_master_pid() -> Option<i32> {
    std::env::var("GUNICORN_PID").ok()?.trim().parse().ok()
}

/// The listener descriptors a USR2 parent handed down (the variable is consumed).
pub fn inherited_fds() -> Vec<i32> {
    let Ok(list) = std::env::var("GUNICORN_FD") else {
        return Vec::new();
    };
    std::env::remove_var("GUNICORN_FD");
    list.split(',')
        .filter_map(|fd| fd.trim().parse().ok())
        .collect()
}

impl Arbiter<'_> {
    pub(super) fn reexec(&mut self) -> Result<()> {
        if self.reexec_pid != 0 {
            error_log::warning("USR2 signal ignored. Child exists.");
            return Ok(());
        }
        if self.master_pid != 0 {
            error_log::warning("USR2 signal ignored. Parent exists.");
            return Ok(());
        }
        let py = self.py;
        match process::fork(py)? {
            Forked::Parent(pid) => {
                self.reexec_pid = pid;
                self.server.setattr(py, "reexec_pid", pid)?;
                Ok(())
            }
            Forked::Child => {
                // Never return into the master's loop: exec or die.
                if let Err(e) = self.exec_new_master() {
                    let text = match &e {
                        crate::errors::Error::Python(err) => {
                            crate::wsgi::app::format_traceback(py, err)
                        }
                        other => other.to_string(),
                    };
                    error_log::error(&format!("USR2 re-exec failed:\n{text}"));
                }
                // os._exit: this copy of the master must not run its atexit handlers.
                let _ = py
                    .import("os")
                    .and_then(|os| os.call_method1("_exit", (1,)));
                Err(crate::errors::Error::Exit(1))
            }
        }
    }

    fn exec_new_master(&mut self) -> Result<()> {
        let py = self.py;
        if let Some(h) = &self.cfg.pre_exec {
            h.call1(py, (self.server.clone_ref(py),))?;
        }
        let os = py.import("os")?;
        let env = PyDict::new(py);
        for (k, v) in self.cfg.env_orig() {
            env.set_item(k, v)?;
        }
        env.set_item("GUNICORN_PID", self.pid.to_string())?;
        let fds: Vec<i32> = self.listeners.iter().map(|l| l.fd()).collect();
        for fd in &fds {
            os.call_method1("set_inheritable", (*fd, true))?;
        }
        if self.systemd {
            env.set_item("LISTEN_PID", process::getpid().to_string())?;
            env.set_item("LISTEN_FDS", fds.len().to_string())?;
        } else {
            let list: Vec<String> = fds.iter().map(|fd| fd.to_string()).collect();
            env.set_item("GUNICORN_FD", list.join(","))?;
        }
        os.call_method1("chdir", (self.start_cwd.to_string_lossy().into_owned(),))?;
        let sys = py.import("sys")?;
        let exe = sys.getattr("executable")?;
        let argv = PyList::new(py, [exe.clone()])?;
        for arg in sys.getattr("argv")?.try_iter()? {
            argv.append(arg?)?;
        }
        // exec keeps the signal mask; the new master must start with the old one.
        process::unblock_signals();
        os.call_method1("execvpe", (exe, argv, env))?;
        Ok(())
    }

    /// The old master is gone (this process was reparented): take over its name and pidfile.
    pub(super) fn maybe_promote_master(&mut self) -> Result<()> {
        if self.master_pid == 0 || process::getppid() == self.master_pid {
            return Ok(());
        }
        let py = self.py;
        error_log::info("Master has been promoted.");
        self.master_name = "Master".into();
        self.master_pid = 0;
        self.server.setattr(py, "master_name", "Master")?;
        self.server.setattr(py, "master_pid", 0)?;
        self.server.setattr(py, "proc_name", self.cfg.proc_name())?;
        std::env::remove_var("GUNICORN_PID");
        let environ = py.import("os")?.getattr("environ")?;
        if environ.contains("GUNICORN_PID")? {
            environ.del_item("GUNICORN_PID")?;
        }
        if let Some(path) = self.cfg.pidfile.clone() {
            if let Some(old) = self.pidfile.take() {
                old.unlink();
            }
            self.pidfile = Some(super::pidfile::Pidfile::create(
                std::path::Path::new(&path),
                self.pid,
            )?);
        }
        process::set_title(py, &format!("master [{}]", self.cfg.proc_name()));
        Ok(())
    }
}
