//! Settings table, part 2: logging, process naming, hooks, SSL, HTTP/2, dirty arbiters and
//! the control socket. Pure data, consumed by `define_settings!` in `settings.rs`.

/// Appends these rows to the ones passed in and hands everything to `define_settings!`.
macro_rules! with_more_settings {
    ($($rows:tt)*) => {
        define_settings! {
            $($rows)*
            accesslog: Option<String> = None => {
                section: "Logging", cli: ["--access-logfile"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Access log destination: file path, or '-' for stdout. None (default) disables access logging unless logconfig*/syslog configure it.",
            }
            disable_redirect_access_to_syslog: bool = false => {
                section: "Logging", cli: ["--disable-redirect-access-to-syslog"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "When syslog is on, do not also send access log lines to syslog.",
            }
            access_log_format: String = s("%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"") => {
                section: "Logging", cli: ["--access-logformat"], meta: "STRING",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"",
                doc: "Python %-format string applied to the access atoms dict (see architecture doc): default '%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"'. Unknown atoms render '-'; string values have '\"' escaped as '\\\\\"'.",
            }
            errorlog: String = s("-") => {
                section: "Logging", cli: ["--error-logfile", "--log-file"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "-",
                doc: "Error log destination: path or '-' (stderr, default). Also the file used by capture_output.",
            }
            loglevel: String = s("info") => {
                section: "Logging", cli: ["--log-level"], meta: "LEVEL",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "info",
                doc: "Error-log level: debug, info, warning, error, critical (case-insensitive; unknown -> info).",
            }
            capture_output: bool = false => {
                section: "Logging", cli: ["--capture-output"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "Redirect the process stdout/stderr (dup2) into the errorlog file (only when errorlog is a file, not '-').",
            }
            logger_class: String = s("gunicorn.glogging.Logger") => {
                section: "Logging", cli: ["--logger-class"], meta: "STRING",
                action: Store(Str), kind: Class, supported: false,
                default_doc: "gunicorn.glogging.Logger",
                doc: "Logger implementation (dotted path or 'simple'); default gunicorn.glogging.Logger, auto-switched to gunicorn.instrument.statsd.Statsd when statsd_host is set.",
            }
            logconfig: Option<String> = None => {
                section: "Logging", cli: ["--log-config"], meta: "FILE",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "None",
                doc: "Path to a logging.config.fileConfig INI file (error if missing). Also set automatically from a Paste ini that has a [loggers] section.",
            }
            logconfig_dict: Option<Py<PyAny>> = None => {
                section: "Logging", cli: [], meta: "",
                action: FileOnly, kind: LogDict, supported: false,
                default_doc: "{}",
                doc: "logging.config.dictConfig dict merged over glogging.CONFIG_DEFAULTS (top-level keys replaced). Takes precedence over logconfig_json and logconfig. Config-file only.",
            }
            logconfig_json: Option<String> = None => {
                section: "Logging", cli: ["--log-config-json"], meta: "FILE",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "None",
                doc: "Path to a JSON file with a dictConfig dict (merged over CONFIG_DEFAULTS). Used only if logconfig_dict is empty.",
            }
            syslog_addr: String = FromEnv(default_syslog_addr) => {
                section: "Logging", cli: ["--log-syslog-to"], meta: "SYSLOG_ADDR",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "'udp://localhost:514' (macOS unix:///var/run/syslog; FreeBSD/DragonFly unix:///var/run/log; OpenBSD unix:///dev/log)",
                doc: "Syslog target: unix://PATH[#dgram|#stream], udp://HOST[:PORT], tcp://HOST[:PORT] (port default 514). Default is platform specific (macOS unix:///var/run/syslog, FreeBSD/DragonFly unix:///var/run/log, OpenBSD unix:///dev/log, else udp://localhost:514).",
            }
            syslog: bool = false => {
                section: "Logging", cli: ["--log-syslog"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "Also send error (and, unless disabled, access) logs to syslog via SysLogHandler; format 'gunicorn.<prefix>.<error|access>: [pid] message'.",
            }
            syslog_prefix: Option<String> = None => {
                section: "Logging", cli: ["--log-syslog-prefix"], meta: "SYSLOG_PREFIX",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "None",
                doc: "Program-name prefix used in syslog lines; default is proc_name with ':' replaced by '.'.",
            }
            syslog_facility: String = s("user") => {
                section: "Logging", cli: ["--log-syslog-facility"], meta: "SYSLOG_FACILITY",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "user",
                doc: "Syslog facility name (auth, authpriv, cron, daemon, ftp, kern, lpr, mail, news, security, syslog, user, uucp, local0-7). Unknown -> RuntimeError.",
            }
            enable_stdio_inheritance: bool = false => {
                section: "Logging", cli: ["-R", "--enable-stdio-inheritance"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "In daemon mode keep stdout/stderr if they are not TTYs (e.g. shell redirection) instead of pointing them at /dev/null.",
            }
            statsd_host: Option<String> = None => {
                section: "Logging", cli: ["--statsd-host"], meta: "STATSD_ADDR",
                action: Store(Str), kind: Statsd, supported: false,
                default_doc: "None",
                doc: "Enable StatsD metrics to HOST:PORT (default port 8125; [v6]:port; numeric IPv6 uses AF_INET6) or unix://PATH (datagram unix socket). Setting it switches logger_class to Statsd. 'unix:NNNN' is read as host 'unix' port NNNN for backward compatibility.",
            }
            dogstatsd_tags: String = s("") => {
                section: "Logging", cli: ["--dogstatsd-tags"], meta: "DOGSTATSD_TAGS",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "",
                doc: "Comma-separated DogStatsD tags appended to every metric as '|#tags'.",
            }
            statsd_prefix: String = s("") => {
                section: "Logging", cli: ["--statsd-prefix"], meta: "STATSD_PREFIX",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "",
                doc: "Prefix prepended to every metric name; a single trailing '.' is ensured.",
            }
            enable_backlog_metric: bool = false => {
                section: "Logging", cli: ["--enable-backlog-metric"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "Every arbiter loop, emit the sum of TCP listener backlog (tcpi_unacked from TCP_INFO; Linux only) as histogram gunicorn.backlog (debug log 'socket backlog: N').",
            }
            proc_name: Option<String> = None => {
                section: "Process Naming", cli: ["-n", "--name"], meta: "STRING",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Base for process titles via setproctitle ('gunicorn: master [NAME]', 'gunicorn: worker [NAME]'); default is default_proc_name. Disabled on macOS.",
            }
            default_proc_name: String = s("gunicorn") => {
                section: "Process Naming", cli: [], meta: "",
                action: FileOnly, kind: Text, supported: true,
                default_doc: "gunicorn",
                doc: "Internal: set to the APP_MODULE argument (or paste config path); used when proc_name is unset.",
            }
            on_starting: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook on_starting(server): in master after pidfile creation, before signals/sockets are set up.",
            }
            on_reload: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook on_reload(server): in master during SIGHUP reload, after config reload and listener rebinding, before new workers spawn.",
            }
            when_ready: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook when_ready(server): in master once listeners are bound and sd_notify READY sent, just before the first workers are spawned.",
            }
            pre_fork: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook pre_fork(server, worker): in master just before fork(); worker.pid is '[booting]'.",
            }
            post_fork: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook post_fork(server, worker): in the child right after fork (after reuse_port socket creation), before init_process.",
            }
            post_worker_init: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook post_worker_init(worker): in the worker after the app is loaded, before the run loop.",
            }
            worker_int: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook worker_int(worker): in the worker on SIGINT/SIGQUIT (quick exit) and when the reloader restarts it.",
            }
            worker_abort: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook worker_abort(worker): in the worker on SIGABRT (sent by the arbiter on WORKER TIMEOUT); the worker then exits 1.",
            }
            pre_exec: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: false,
                default_doc: "no-op",
                doc: "Hook pre_exec(server): in the forked child of the master during USR2, just before execvpe of the new master.",
            }
            pre_request: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "logs \"METHOD PATH\" at debug",
                doc: "Hook pre_request(worker, req): before each request is handled; default logs 'METHOD PATH' at debug.",
            }
            post_request: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: PostRequestHook, supported: true,
                default_doc: "no-op",
                doc: "Hook post_request(worker, req, environ, resp): after each request (also on errors); callables with 2 or 3 positional args are adapted. Exceptions are logged, not propagated.",
            }
            child_exit: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook child_exit(server, worker): in master after a worker process was reaped.",
            }
            worker_exit: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook worker_exit(server, worker): in the worker process as it exits (finally of spawn_worker), and in master if kill_worker finds the pid gone (ESRCH).",
            }
            nworkers_changed: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(3), supported: true,
                default_doc: "no-op",
                doc: "Hook nworkers_changed(server, new_value, old_value): whenever Arbiter.num_workers is assigned (start: old_value None; TTIN/TTOU; HUP; WINCH).",
            }
            on_exit: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook on_exit(server): in master just before exiting (halt).",
            }
            ssl_context: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: false,
                default_doc: "returns default_ssl_context_factory()",
                doc: "Hook ssl_context(config, default_ssl_context_factory) -> ssl.SSLContext, used to build the server TLS context; default returns the factory's context (certfile/keyfile/ca_certs/cert_reqs/ciphers, ALPN h2/http1.1 when enabled).",
            }
            keyfile: Option<String> = None => {
                section: "SSL", cli: ["--keyfile"], meta: "FILE",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "None",
                doc: "TLS private key file (checked to exist at socket creation).",
            }
            certfile: Option<String> = None => {
                section: "SSL", cli: ["--certfile"], meta: "FILE",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "None",
                doc: "TLS certificate file; presence of certfile or keyfile makes cfg.is_ssl true (scheme https).",
            }
            ssl_version: String = s("2") => {
                section: "SSL", cli: ["--ssl-version"], meta: "",
                action: Store(Str), kind: SslVersion, supported: false,
                default_doc: "ssl.PROTOCOL_TLS (2)",
                doc: "Deprecated since 21.0 and ignored (warning printed if changed); use the ssl_context hook.",
            }
            cert_reqs: i64 = 0 => {
                section: "SSL", cli: ["--cert-reqs"], meta: "",
                action: Store(Str), kind: PosInt, supported: false,
                default_doc: "ssl.CERT_NONE (0)",
                doc: "ssl verify_mode for client certificates: 0 none, 1 optional, 2 required.",
            }
            ca_certs: Option<String> = None => {
                section: "SSL", cli: ["--ca-certs"], meta: "FILE",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "None",
                doc: "CA bundle used to verify client certificates (cafile of the default context).",
            }
            suppress_ragged_eofs: bool = true => {
                section: "SSL", cli: ["--suppress-ragged-eofs"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "True",
                doc: "Passed to SSLContext.wrap_socket; treat unexpected EOF as clean EOF (default True; CLI flag can only set True).",
            }
            do_handshake_on_connect: bool = false => {
                section: "SSL", cli: ["--do-handshake-on-connect"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "Passed to wrap_socket; when False gunicorn performs the handshake explicitly before ALPN checks.",
            }
            ciphers: Option<String> = None => {
                section: "SSL", cli: ["--ciphers"], meta: "",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "None",
                doc: "OpenSSL cipher list string for the TLS context (default: Python's default).",
            }
            http_protocols: Vec<String> = list(&["h1"]) => {
                section: "HTTP/2", cli: ["--http-protocols"], meta: "STRING",
                action: Store(Str), kind: HttpProtocols, supported: false,
                default_doc: "h1",
                doc: "Comma-separated preference list of HTTP versions: h1, h2 (h3 rejected). h2 needs TLS+ALPN or http2_cleartext, and the h2 package (config error otherwise). Sync and tornado workers ignore h2 (warning).",
            }
            http2_cleartext: String = s("off") => {
                section: "HTTP/2", cli: ["--http2-cleartext"], meta: "STRING",
                action: Store(Str), kind: Http2Cleartext, supported: false,
                default_doc: "off",
                doc: "Cleartext HTTP/2 from trusted peers (forwarded_allow_ips): off, prior-knowledge (connection preface), upgrade (Upgrade: h2c), both. Bool True maps to prior-knowledge. Ignored with TLS. With prior-knowledge only, a trusted peer not sending the preface gets 400.",
            }
            http2_max_concurrent_streams: i64 = 100 => {
                section: "HTTP/2", cli: ["--http2-max-concurrent-streams"], meta: "INT",
                action: Store(Int), kind: Http2Streams, supported: false,
                default_doc: "100",
                doc: "SETTINGS_MAX_CONCURRENT_STREAMS advertised per HTTP/2 connection (>=1).",
            }
            http2_initial_window_size: i64 = 65535 => {
                section: "HTTP/2", cli: ["--http2-initial-window-size"], meta: "INT",
                action: Store(Int), kind: Http2Window, supported: false,
                default_doc: "65535",
                doc: "HTTP/2 initial flow-control window in bytes (<= 2^31-1).",
            }
            http2_max_frame_size: i64 = 16384 => {
                section: "HTTP/2", cli: ["--http2-max-frame-size"], meta: "INT",
                action: Store(Int), kind: Http2FrameSize, supported: false,
                default_doc: "16384",
                doc: "SETTINGS_MAX_FRAME_SIZE accepted, 16384..16777215.",
            }
            http2_max_header_list_size: i64 = 65536 => {
                section: "HTTP/2", cli: ["--http2-max-header-list-size"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: false,
                default_doc: "65536",
                doc: "SETTINGS_MAX_HEADER_LIST_SIZE (decompressed header bytes); 0 = unlimited.",
            }
            dirty_apps: Vec<String> = Vec::new() => {
                section: "Dirty Arbiters", cli: ["--dirty-app"], meta: "STRING",
                action: Append, kind: TextList, supported: false,
                default_doc: "[]",
                doc: "Dirty-arbiter app classes 'module:Class' or 'module:Class:N' (N = only N dirty workers load it); repeatable.",
            }
            dirty_workers: i64 = 0 => {
                section: "Dirty Arbiters", cli: ["--dirty-workers"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: false,
                default_doc: "0",
                doc: "Number of dirty worker processes; 0 disables the dirty arbiter (it starts only if dirty_workers>0 and dirty_apps non-empty).",
            }
            dirty_timeout: i64 = 300 => {
                section: "Dirty Arbiters", cli: ["--dirty-timeout"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: false,
                default_doc: "300",
                doc: "Seconds a dirty task may run before the dirty worker is considered stuck and killed; 0 disables.",
            }
            dirty_threads: i64 = 1 => {
                section: "Dirty Arbiters", cli: ["--dirty-threads"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: false,
                default_doc: "1",
                doc: "Threads per dirty worker.",
            }
            dirty_graceful_timeout: i64 = 30 => {
                section: "Dirty Arbiters", cli: ["--dirty-graceful-timeout"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: false,
                default_doc: "30",
                doc: "Seconds dirty workers get to finish on shutdown before SIGKILL.",
            }
            on_dirty_starting: Option<Py<PyAny>> = None => {
                section: "Dirty Arbiter Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: false,
                default_doc: "no-op",
                doc: "Hook on_dirty_starting(arbiter): before the dirty arbiter initialises (in its process).",
            }
            dirty_post_fork: Option<Py<PyAny>> = None => {
                section: "Dirty Arbiter Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: false,
                default_doc: "no-op",
                doc: "Hook dirty_post_fork(arbiter, worker): right after a dirty worker is forked.",
            }
            dirty_worker_init: Option<Py<PyAny>> = None => {
                section: "Dirty Arbiter Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: false,
                default_doc: "no-op",
                doc: "Hook dirty_worker_init(worker): after a dirty worker has loaded all its apps.",
            }
            dirty_worker_exit: Option<Py<PyAny>> = None => {
                section: "Dirty Arbiter Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: false,
                default_doc: "no-op",
                doc: "Hook dirty_worker_exit(arbiter, worker): when a dirty worker exits.",
            }
            control_socket: String = FromEnv(default_control_socket) => {
                section: "Control", cli: ["--control-socket"], meta: "PATH",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "$XDG_RUNTIME_DIR/gunicorn.ctl or $HOME/.gunicorn/gunicorn.ctl",
                doc: "Path of the unix control socket served by the master (started after the first workers spawn) for the gunicornc CLI. Default $XDG_RUNTIME_DIR/gunicorn.ctl if that dir exists, else ~/.gunicorn/gunicorn.ctl (dir created). Relative paths are resolved against the cwd.",
            }
            control_socket_mode: i64 = 384 => {
                section: "Control", cli: ["--control-socket-mode"], meta: "INT",
                action: Store(AutoInt), kind: PosInt, supported: false,
                default_doc: "0o600",
                doc: "File mode of the control socket (default 0o600 = 384).",
            }
            control_socket_disable: bool = false => {
                section: "Control", cli: ["--no-control-socket"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "--no-control-socket: do not create the control socket.",
            }
        }
    };
}
