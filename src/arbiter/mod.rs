//! The master process (Gunicorn's Arbiter): binds, writes the pidfile, runs hooks, spawns and
//! supervises workers, handles signals one at a time from a queue, and stops gracefully.
//!
//! It never serves requests and never runs the app (except to preload it); worker processes
//! leave this module's call stack through `Error::Exit` right after fork.

mod accept;
pub mod control;
mod dirty;
mod memory;
mod metrics;
pub mod metrics_server;
pub mod pidfile;
pub mod signals;
mod supervise;
mod upgrade;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::Config;
use crate::errors::{exit, Error, Result};
use crate::hooks::call_hook;
use crate::net::{create_listeners, Listener};
use crate::sys::heartbeat::Heartbeats;
use crate::sys::process;
use crate::telemetry::error_log;
use pidfile::Pidfile;
use signals::MasterSignals;

pub(crate) struct WorkerRec {
    pub age: u64,
    pub slot: usize,
    pub aborted: bool,
    /// Told to stop (TERM sent); no longer counted as capacity.
    pub retiring: bool,
    /// Due to stop (max_requests reached, or an old generation after HUP) but still serving
    /// until enough replacements have booted; see `release_replaced`.
    pub replaced: bool,
    pub spawned: Instant,
    /// Seconds of booting already reported by the "still booting" log line.
    pub boot_reported_s: u64,
    /// Its boot time went into the metrics.
    pub boot_observed: bool,
    pub memory: memory::WorkerMemory,
    pub obj: Py<PyAny>,
}

pub struct Arbiter<'py> {
    py: Python<'py>,
    cfg: Config,
    argv: Vec<String>,
    listeners: Vec<Listener>,
    workers: BTreeMap<i32, WorkerRec>,
    num_workers: i64,
    worker_age: u64,
    hb: Heartbeats,
    app: Option<Py<PyAny>>,
    pid: i32,
    pidfile: Option<Pidfile>,
    /// The listeners came from systemd: never unlink their socket files.
    systemd: bool,
    /// A HUP started new workers: systemd hears READY=1 once the old ones are released.
    reload_ready_pending: bool,
    /// The new master forked by USR2, while it lives.
    reexec_pid: i32,
    /// The old master, while this one is the new half of a USR2 upgrade.
    master_pid: i32,
    master_name: String,
    /// Where the command was started, for the USR2 re-exec.
    start_cwd: std::path::PathBuf,
    signals: Option<MasterSignals>,
    server: Py<PyAny>,
    log: Py<PyAny>,
    cfg_obj: Py<PyAny>,
    /// The workers gauge already went out during this loop (see `report_gauges`).
    workers_reported: bool,
    /// When `report_gauges` last sent.
    gauges_sent: Option<Instant>,
    metrics: metrics::MasterMetrics,
    memory: memory::MemoryWatch,
    /// The dirty arbiter, while dirty apps are configured.
    dirty: Option<dirty::DirtyArbiterProc>,
    control: control::Control,
}

impl<'py> Arbiter<'py> {
    pub fn new(
        py: Python<'py>,
        cfg: Config,
        argv: Vec<String>,
        app: Option<Py<PyAny>>,
        start_cwd: std::path::PathBuf,
    ) -> Result<Self> {
        let log = crate::telemetry::setup::logger_object(py)?;
        let cfg_obj = cfg.to_python(py)?;
        let kw = PyDict::new(py);
        let objects = py.import("ferrocorn._objects")?;
        kw.set_item("cfg", cfg_obj.clone_ref(py))?;
        kw.set_item("log", log.clone_ref(py))?;
        // Hooks see the embedding API's own application object as `server.app`.
        let app_obj = match &cfg.application {
            Some(application) => application.bind(py).clone(),
            None => objects.getattr("Application")?.call1((
                cfg_obj.clone_ref(py),
                cfg.app_uri(),
                app.as_ref().map(|a| a.clone_ref(py)),
            ))?,
        };
        kw.set_item("app", app_obj)?;
        kw.set_item("pid", process::getpid())?;
        kw.set_item("WORKERS", PyDict::new(py))?;
        kw.set_item("LISTENERS", pyo3::types::PyList::empty(py))?;
        kw.set_item("num_workers", cfg.workers)?;
        kw.set_item("proc_name", cfg.proc_name())?;
        kw.set_item("master_name", "Master")?;
        kw.set_item("timeout", cfg.timeout)?;
        kw.set_item("worker_age", 0)?;
        kw.set_item("reexec_pid", 0)?;
        kw.set_item("master_pid", 0)?;
        kw.set_item("systemd", false)?;
        kw.set_item(
            "START_CTX",
            objects.call_method1("start_ctx", (start_cwd.to_string_lossy().into_owned(),))?,
        )?;
        let server = py
            .import("ferrocorn._objects")?
            .getattr("Arbiter")?
            .call((), Some(&kw))?
            .unbind();
        Ok(Arbiter {
            py,
            num_workers: cfg.workers,
            cfg,
            argv,
            listeners: Vec::new(),
            workers: BTreeMap::new(),
            worker_age: 0,
            hb: Heartbeats::new()?,
            app,
            pid: process::getpid(),
            pidfile: None,
            systemd: false,
            reload_ready_pending: false,
            reexec_pid: 0,
            master_pid: 0,
            master_name: "Master".into(),
            start_cwd,
            signals: None,
            server,
            log,
            cfg_obj,
            workers_reported: false,
            gauges_sent: None,
            metrics: metrics::MasterMetrics::off(),
            memory: memory::MemoryWatch::default(),
            dirty: None,
            control: control::Control::new(),
        })
    }

    fn set_num_workers(&mut self, n: i64) -> Result<()> {
        let old = self.num_workers;
        self.num_workers = n;
        self.server.setattr(self.py, "num_workers", n)?;
        Ok(call_hook(
            self.py,
            self.cfg.nworkers_changed.as_ref(),
            (self.server.clone_ref(self.py), n, old),
        )?)
    }

    fn start(&mut self) -> Result<()> {
        let py = self.py;
        // Gunicorn logs the configuration in Arbiter.setup(), before "Starting".
        if error_log::enabled(error_log::Level::Debug) {
            error_log::debug(&self.cfg.current_configuration(py));
        }
        error_log::info(&format!("Starting ferrocorn {}", crate::VERSION));
        if let Some(old) = upgrade::parent_master_pid() {
            self.master_pid = old;
            self.master_name = "Master.2".into();
            self.server.setattr(py, "master_pid", old)?;
            self.server.setattr(py, "master_name", "Master.2")?;
            self.server
                .setattr(py, "proc_name", format!("{}.2", self.cfg.proc_name()))?;
        }
        if let Some(path) = &self.cfg.pidfile {
            // The new master of a USR2 upgrade writes beside the old one's file.
            let path = if self.master_pid != 0 {
                format!("{path}.2")
            } else {
                path.clone()
            };
            self.pidfile = Some(Pidfile::create(std::path::Path::new(&path), self.pid)?);
        }
        call_hook(
            py,
            self.cfg.on_starting.as_ref(),
            (self.server.clone_ref(py),),
        )?;
        // First assignment of num_workers: Gunicorn calls nworkers_changed with old=None.
        call_hook(
            py,
            self.cfg.nworkers_changed.as_ref(),
            (self.server.clone_ref(py), self.num_workers, py.None()),
        )?;
        self.signals = Some(MasterSignals::install(py)?);
        let mut inherited = crate::net::systemd::listen_fds();
        self.systemd = !inherited.is_empty();
        if inherited.is_empty() {
            inherited = upgrade::inherited_fds();
        }
        self.listeners = crate::net::create_listeners_from(&self.cfg, &inherited)?;
        let tls = self.cfg.is_ssl();
        let names: Vec<String> = self.listeners.iter().map(|l| l.url(tls)).collect();
        self.server.setattr(
            py,
            "LISTENERS",
            crate::hooks::objects::listener_objects(py, &self.listeners)?,
        )?;
        self.server.setattr(py, "systemd", self.systemd)?;
        if let Some(addr) = &self.cfg.prometheus_bind {
            let upgrading = self.master_pid != 0;
            self.metrics = metrics::MasterMetrics::bind(addr, upgrading)
                .map_err(|e| Error::Config(format!("prometheus_bind: {addr}: {e}")))?;
        }
        error_log::debug("Arbiter booted");
        error_log::info(&format!("Listening at: {} ({})", names.join(","), self.pid));
        error_log::info(&format!("Using worker: {}", self.cfg.worker_class_str()));
        if let Some(url) = self.metrics.url() {
            error_log::info(&format!("Metrics at: {url}"));
        }
        if self.cfg.worker_kind() == Some(crate::config::WorkerKind::Asgi) && self.cfg.threads > 1 {
            error_log::warning(
                "ASGI worker does not use threads configuration. Use worker_connections instead.",
            );
        }
        crate::net::systemd::notify("READY=1\nSTATUS=ferrocorn arbiter booted");
        call_hook(
            py,
            self.cfg.when_ready.as_ref(),
            (self.server.clone_ref(py),),
        )?;
        Ok(())
    }

    /// Run the master until it halts; returns the exit status. In a worker this returns the
    /// worker's exit status instead (through `Error::Exit`).
    pub fn run(mut self) -> i32 {
        let status = self.run_until_halt();
        signals::clear_wakeup_fd(self.py);
        status
    }

    fn run_until_halt(&mut self) -> i32 {
        let result = self.start().and_then(|()| {
            let suffix = if self.master_pid != 0 { ".2" } else { "" };
            process::set_title(
                self.py,
                &format!("master [{}{suffix}]", self.cfg.proc_name()),
            );
            // Before the HTTP workers, as Gunicorn does, so their first requests find it.
            self.start_dirty()?;
            self.manage_workers()?;
            self.start_control();
            loop {
                self.tick()?;
            }
        });
        match result {
            Ok(()) => self.halt(None, exit::OK),
            Err(Error::Exit(code)) => code,
            Err(Error::Halt { reason, status }) => self.halt(Some(&reason), status),
            Err(Error::Config(msg)) => {
                error_log::error(&msg);
                self.halt(None, exit::CONFIG)
            }
            Err(e) => {
                let text = match &e {
                    Error::Python(err) => crate::wsgi::app::format_traceback(self.py, err),
                    other => other.to_string(),
                };
                error_log::error(&format!("Unhandled exception in main loop\n{text}"));
                self.stop(false);
                if let Some(p) = &self.pidfile {
                    p.unlink();
                }
                exit::UNHANDLED
            }
        }
    }

    fn tick(&mut self) -> Result<()> {
        self.maybe_promote_master()?;
        let mut fds = self.metrics.poll_fds();
        fds.extend(self.control.poll_fds());
        let mut sigs = match &self.signals {
            Some(s) => s.wait(self.py, Duration::from_secs(1), &fds),
            None => Vec::new(),
        };
        drop(fds);
        sigs.extend(self.serve_control());
        for sig in sigs {
            if sig == Signal::SIGCHLD {
                error_log::debug("Handling signal: chld");
            } else {
                error_log::info(&format!(
                    "Handling signal: {}",
                    sig.as_str().trim_start_matches("SIG").to_lowercase()
                ));
            }
            self.handle_signal(sig)?;
        }
        self.collect_retire_requests();
        self.check_memory();
        self.murder_workers();
        self.manage_dirty_arbiter()?;
        self.manage_workers()?;
        self.release_replaced();
        self.notify_reloaded();
        self.report_gauges();
        self.serve_metrics();
        crate::tls::master_tick();
        Ok(())
    }

    /// Gunicorn dispatches `handle_<name>` by signal name; so does this.
    fn handle_signal(&mut self, sig: Signal) -> Result<()> {
        match sig {
            Signal::SIGCHLD => self.handle_chld(),
            Signal::SIGHUP => self.handle_hup(),
            Signal::SIGTERM => self.handle_term(),
            Signal::SIGINT => self.handle_int(),
            Signal::SIGQUIT => self.handle_quit(),
            Signal::SIGTTIN => self.handle_ttin(),
            Signal::SIGTTOU => self.handle_ttou(),
            Signal::SIGUSR1 => self.handle_usr1(),
            Signal::SIGUSR2 => self.handle_usr2(),
            Signal::SIGWINCH => self.handle_winch(),
            _ => {
                error_log::info(&format!("Ignoring unknown signal: {}", sig as i32));
                Ok(())
            }
        }
    }

    /// A worker exited: reap it.
    fn handle_chld(&mut self) -> Result<()> {
        self.reap_workers()
    }

    /// Reload: new configuration, new workers, old ones retired gracefully.
    fn handle_hup(&mut self) -> Result<()> {
        self.reload()
    }

    /// Graceful stop.
    fn handle_term(&mut self) -> Result<()> {
        Err(Error::Halt {
            reason: String::new(),
            status: exit::OK,
        })
    }

    /// Quick stop.
    fn handle_int(&mut self) -> Result<()> {
        self.stop(false);
        Err(Error::Halt {
            reason: String::new(),
            status: exit::OK,
        })
    }

    /// Quick stop, as INT.
    fn handle_quit(&mut self) -> Result<()> {
        self.handle_int()
    }

    /// One more worker.
    fn handle_ttin(&mut self) -> Result<()> {
        self.set_num_workers(self.num_workers + 1)?;
        self.manage_workers()
    }

    /// One worker fewer, never below one.
    fn handle_ttou(&mut self) -> Result<()> {
        if self.num_workers > 1 {
            self.set_num_workers(self.num_workers - 1)?;
            self.manage_workers()?;
        }
        Ok(())
    }

    /// Reopen the log files, here and in every worker.
    fn handle_usr1(&mut self) -> Result<()> {
        let reopened =
            crate::telemetry::setup::reopen(self.py, self.cfg.capture_output, &self.cfg.errorlog);
        if let Err(e) = reopened {
            error_log::error(&format!("Failed to reopen log files: {e}"));
        }
        self.kill_workers(Signal::SIGUSR1);
        self.forward_to_dirty_arbiter(Signal::SIGUSR1);
        Ok(())
    }

    /// Binary upgrade: start a new master from the same command line.
    fn handle_usr2(&mut self) -> Result<()> {
        self.reexec()
    }

    /// The old master's half of a binary upgrade: stop its workers, keep it (daemon only).
    fn handle_winch(&mut self) -> Result<()> {
        if self.cfg.daemon {
            error_log::info("graceful stop of workers");
            self.set_num_workers(0)?;
            self.kill_workers(Signal::SIGTERM);
        } else {
            error_log::debug("SIGWINCH ignored. Not daemonized");
        }
        Ok(())
    }

    /// HUP: re-read the configuration, start fresh workers with it, retire the old ones
    /// gracefully. A configuration that no longer loads keeps the running one.
    fn reload(&mut self) -> Result<()> {
        error_log::info(&format!("Hang up: {}", self.master_name));
        self.control.count_reload();
        // systemd (Type=notify-reload) wants the monotonic time with RELOADING=1, and READY=1
        // once done: when the new workers serve and the old ones are released
        // (`notify_reloaded`), or at once when the new configuration could not be used.
        crate::net::systemd::notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            crate::sys::heartbeat::monotonic_ms() * 1000
        ));
        self.reload_ready_pending = false;
        let result = self.reload_config();
        if !self.reload_ready_pending {
            crate::net::systemd::notify("READY=1");
        }
        result
    }

    /// READY=1 for a HUP whose old workers have all been released to their replacements.
    fn notify_reloaded(&mut self) {
        if self.reload_ready_pending && !self.workers.values().any(|w| w.replaced && !w.retiring) {
            self.reload_ready_pending = false;
            crate::net::systemd::notify("READY=1");
        }
    }

    /// The new configuration HUP asks for, or why the running one stays. With the
    /// embedding API the application's own state (its `cfg`, `app_uri`, ...) is put back
    /// as it was whenever the new configuration is not used.
    fn next_config(&self) -> std::result::Result<Option<Config>, String> {
        let py = self.py;
        let Some(application) = &self.cfg.application else {
            return next_checked(py, Config::load(py, &self.argv));
        };
        let application = application.bind(py);
        let saved = application_state(application).map_err(|e| e.to_string())?;
        let next = next_checked(py, reload_application(py, application));
        if !matches!(next, Ok(Some(_))) {
            if let Err(e) = restore_application_state(application, &saved) {
                error_log::error(&format!("Could not restore the application's state: {e}"));
            }
        }
        next
    }

    fn reload_config(&mut self) -> Result<()> {
        let py = self.py;
        let cfg = match self.next_config() {
            Ok(Some(cfg)) => cfg,
            Ok(None) => return Ok(()),
            Err(message) => {
                error_log::error(&format!(
                    "Reload failed, keeping the current configuration: {message}"
                ));
                return Ok(());
            }
        };
        let cfg_obj = cfg.to_python(py)?;
        let logged =
            crate::telemetry::setup::reload(py, &cfg, cfg_obj.bind(py), self.cfg_obj.bind(py));
        if let Err(e) = logged {
            error_log::error(&format!(
                "Error: reloading the logger configuration failed, keeping the previous one: {e}"
            ));
        }
        // The logger object may have changed (a logger_class or logconfig added or removed).
        self.log = crate::telemetry::setup::logger_object(py)?;
        self.server.setattr(py, "log", self.log.clone_ref(py))?;
        if cfg.prometheus_bind != self.cfg.prometheus_bind {
            error_log::warning(
                "prometheus_bind changed; the metrics listener keeps its address until a restart or upgrade (USR2)",
            );
        }
        control::warn_if_changed(&self.cfg, &cfg);
        if let Err(e) = spew(py, cfg.spew) {
            error_log::error(&format!("Error: could not change the spew trace: {e}"));
        }
        let old_address = self.cfg.address().ok();
        // Who owns the current sockets depends on how they were bound, not on the new bind.
        let owned = self.sole_owner_of_listeners();
        self.cfg = cfg;
        self.cfg_obj = cfg_obj;
        self.server.setattr(py, "cfg", self.cfg_obj.clone_ref(py))?;
        // Gunicorn's `setup()` asks a preloading application for its app again.
        if let (true, Some(application)) = (self.cfg.preload_app, &self.cfg.application) {
            if let Err(e) = application.bind(py).call_method0("wsgi") {
                error_log::error(&format!(
                    "Exception in the application's wsgi() after reload:\n{}",
                    crate::wsgi::app::format_traceback(py, &e)
                ));
            }
        }
        self.set_num_workers(self.cfg.workers)?;
        if self.cfg.address().ok() != old_address && self.systemd {
            // The sockets belong to the socket unit: rebinding would drop them (and unlink a
            // unix ListenStream's file), and systemd would hand the old ones to the next start.
            error_log::warning(
                "bind changed, but the listeners come from systemd socket activation; keeping them (change the socket unit instead)",
            );
        } else if self.cfg.address().ok() != old_address {
            if owned {
                for l in &self.listeners {
                    l.unlink();
                }
            }
            self.listeners = create_listeners(&self.cfg)?;
            self.server.setattr(
                py,
                "LISTENERS",
                crate::hooks::objects::listener_objects(py, &self.listeners)?,
            )?;
            let tls = self.cfg.is_ssl();
            let names: Vec<String> = self.listeners.iter().map(|l| l.url(tls)).collect();
            error_log::info(&format!("Listening at: {} ({})", names.join(","), self.pid));
        }
        call_hook(
            py,
            self.cfg.on_reload.as_ref(),
            (self.server.clone_ref(py),),
        )?;
        if let Some(p) = self.pidfile.take() {
            p.unlink();
        }
        if let Some(path) = &self.cfg.pidfile {
            self.pidfile = Some(Pidfile::create(std::path::Path::new(path), self.pid)?);
        }
        process::set_title(py, &format!("master [{}]", self.cfg.proc_name()));
        // Unlike Gunicorn, which TERMs the old generation as soon as the new one is forked,
        // the old workers keep serving until their replacements have booted (the tick's
        // `release_replaced`), so a reload never leaves the backlog without a worker.
        for w in self.workers.values_mut().filter(|w| !w.retiring) {
            w.replaced = true;
        }
        self.reload_ready_pending = true;
        self.reload_dirty()?;
        self.manage_workers()
    }

    /// Close the listeners and stop every worker: TERM and wait up to graceful_timeout when
    /// graceful (INT or QUIT meanwhile switch to quick), QUIT otherwise; KILL what remains.
    fn stop(&mut self, graceful: bool) {
        self.metrics.halting();
        self.control.close();
        if !self.listeners.is_empty() {
            crate::net::systemd::notify("STOPPING=1");
        }
        // Gunicorn's rule: only a plain master removes unix socket files; during an upgrade
        // the other master still serves on them.
        if self.reexec_pid == 0 && self.master_pid == 0 && !self.systemd && !self.cfg.reuse_port {
            for l in &self.listeners {
                l.unlink();
            }
        }
        if graceful && self.sole_owner_of_listeners() {
            // Let the workers take what is already queued before they go (see
            // `Listener::stop_new_connections`).
            for w in self.workers.values() {
                self.hb.request_drain(w.slot);
            }
            for l in &self.listeners {
                if let Err(e) = l.stop_new_connections() {
                    error_log::warning(&format!("Could not stop new connections on {l}: {e}"));
                }
            }
        }
        self.listeners.clear();
        let mut graceful = graceful;
        let sig = if graceful {
            Signal::SIGTERM
        } else {
            Signal::SIGQUIT
        };
        let mut limit = Instant::now() + self.cfg.serving().graceful_timeout;
        self.kill_workers(sig);
        while !self.workers.is_empty() && Instant::now() < limit {
            if graceful {
                let pending = self
                    .signals
                    .as_ref()
                    .map(|s| s.drain(self.py))
                    .unwrap_or_default();
                if pending
                    .iter()
                    .any(|s| matches!(s, Signal::SIGINT | Signal::SIGQUIT))
                {
                    error_log::info("Quick shutdown requested");
                    graceful = false;
                    self.kill_workers(Signal::SIGQUIT);
                    limit = Instant::now() + Duration::from_secs(2);
                }
            }
            let _ = self.reap_workers();
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill_workers(Signal::SIGKILL);
        let _ = self.reap_workers();
        // Last, so requests finishing above could still call their dirty apps.
        self.halt_dirty(graceful);
    }

    /// Whether the listening sockets die with this master: not during a USR2 upgrade (the
    /// other master serves on them), not from systemd or `fd://` (their owner reuses them).
    fn sole_owner_of_listeners(&self) -> bool {
        let adopted = self.cfg.address().is_ok_and(|addrs| {
            addrs
                .iter()
                .any(|a| matches!(a, crate::config::BindAddr::Fd(_)))
        });
        self.reexec_pid == 0 && self.master_pid == 0 && !self.systemd && !adopted
    }

    fn halt(&mut self, reason: Option<&str>, status: i32) -> i32 {
        self.stop(true);
        let reason = reason.filter(|r| !r.is_empty());
        let shutting = format!("Shutting down: {}", self.master_name);
        if status == exit::OK {
            error_log::info(&shutting);
            if let Some(r) = reason {
                error_log::info(&format!("Reason: {r}"));
            }
        } else {
            error_log::error(&shutting);
            if let Some(r) = reason {
                error_log::error(&format!("Reason: {r}"));
            }
        }
        if let Some(p) = &self.pidfile {
            p.unlink();
        }
        if let Err(e) = call_hook(
            self.py,
            self.cfg.on_exit.as_ref(),
            (self.server.clone_ref(self.py),),
        ) {
            error_log::error(&format!("Exception in on_exit hook: {e}"));
        }
        status
    }
}

/// `--spew`: trace every Python line the master runs from now on (and, through fork, its
/// workers' main threads), or stop tracing when a reload turned it off.
pub fn spew(py: Python<'_>, on: bool) -> PyResult<()> {
    if on {
        py.import("ferrocorn.debug")?.call_method0("spew")?;
        return Ok(());
    }
    let current = py.import("sys")?.call_method0("gettrace")?;
    if !current.is_none() {
        let debug = py.import("ferrocorn.debug")?;
        if current.is_instance(&debug.getattr("Spew")?)? {
            debug.call_method0("unspew")?;
        }
    }
    Ok(())
}

/// HUP with the embedding API: Gunicorn's `app.reload()` (which loads the settings again
/// through the application's own `load_config()`), then its new `cfg`. Gunicorn exits
/// when that fails; the master keeps serving with the settings it has instead.
fn reload_application(
    py: Python<'_>,
    application: &Bound<'_, PyAny>,
) -> std::result::Result<crate::config::Loaded, crate::config::ConfigError> {
    let failed = |e: PyErr| {
        let text = match crate::wsgi::app::system_exit_code(py, &e) {
            Some(code) => format!("the application's load_config() exited with status {code}"),
            None => e.value(py).to_string(),
        };
        crate::config::ConfigError {
            message: text,
            exit_code: 1,
        }
    };
    application.call_method0("reload").map_err(failed)?;
    let mut cfg = crate::config::application_config(application).map_err(failed)?;
    cfg.resolve()?;
    Ok(crate::config::Loaded::Run(Box::new(cfg)))
}

/// A loaded configuration that passes the checks start-up makes (supported settings,
/// usable TLS files); `None` when loading only printed something (`--help`).
fn next_checked(
    py: Python<'_>,
    loaded: std::result::Result<crate::config::Loaded, crate::config::ConfigError>,
) -> std::result::Result<Option<Config>, String> {
    let cfg = match loaded.map_err(|e| e.message)? {
        crate::config::Loaded::Run(cfg) => *cfg,
        crate::config::Loaded::Exit(_) => return Ok(None),
    };
    cfg.check_supported().map_err(|e| e.message)?;
    // New workers serve renewed certificate files; if they cannot be used, everything
    // stays as it was, the current certificate included.
    crate::tls::prepare(py, &cfg).map_err(|e| e.to_string())?;
    Ok(Some(cfg))
}

/// A shallow copy of an application object's attributes.
fn application_state<'py>(application: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    application
        .getattr("__dict__")?
        .cast_into::<PyDict>()?
        .copy()
}

fn restore_application_state(
    application: &Bound<'_, PyAny>,
    saved: &Bound<'_, PyDict>,
) -> PyResult<()> {
    let attrs = application.getattr("__dict__")?.cast_into::<PyDict>()?;
    attrs.clear();
    attrs.update(saved.as_mapping())
}
