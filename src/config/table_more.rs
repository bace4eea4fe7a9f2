//! Settings table, part 2: logging, process naming, hooks, SSL, HTTP/2, dirty arbiters and
//! the control socket, then ferrocorn's own extensions (section "Ferrocorn Extensions", the
//! only rows that are not Gunicorn settings). Pure data, consumed by `define_settings!` in
//! `settings.rs`.

/// Appends these rows to the ones passed in and hands everything to `define_settings!`.
macro_rules! with_more_settings {
    ($($rows:tt)*) => {
        define_settings! {
            $($rows)*
            accesslog: Option<String> = None => {
                section: "Logging", cli: ["--access-logfile"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Where to write the access log: a file path, or `-` for standard output. Off by default.",
            }
            disable_redirect_access_to_syslog: bool = false => {
                section: "Logging", cli: ["--disable-redirect-access-to-syslog"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "With `syslog` on, do not send access log lines to syslog too.",
            }
            access_log_format: String = s("%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"") => {
                section: "Logging", cli: ["--access-logformat"], meta: "STRING",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"",
                doc: "Access log line format: a Python `%` format over the access log atoms (`h` remote address, `r` request line, `s` status, `b` body bytes, `a` user agent, and so on). Unknown atoms print `-`.",
            }
            errorlog: String = s("-") => {
                section: "Logging", cli: ["--error-logfile", "--log-file"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "-",
                doc: "Where to write the error log: a file path, or `-` for standard error.",
            }
            loglevel: String = s("info") => {
                section: "Logging", cli: ["--log-level"], meta: "LEVEL",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "info",
                doc: "Error log level: `debug`, `info`, `warning`, `error` or `critical` (any case).",
            }
            capture_output: bool = false => {
                section: "Logging", cli: ["--capture-output"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Send the application's standard output and error to the error log file (only when `errorlog` is a file).",
            }
            logger_class: String = s("gunicorn.glogging.Logger") => {
                section: "Logging", cli: ["--logger-class"], meta: "STRING",
                action: Store(Str), kind: Class, supported: true,
                default_doc: "gunicorn.glogging.Logger",
                doc: "Logger implementation as a dotted class path (or `simple`). Setting `statsd_host` switches the default to the StatsD logger.",
            }
            logconfig: Option<String> = None => {
                section: "Logging", cli: ["--log-config"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Python `logging.config.fileConfig` INI file configuring logging.",
            }
            logconfig_dict: Option<Py<PyAny>> = None => {
                section: "Logging", cli: [], meta: "",
                action: FileOnly, kind: LogDict, supported: true,
                default_doc: "{}",
                doc: "`logging.config.dictConfig` dictionary configuring logging; its top-level keys replace the defaults. Takes precedence over `logconfig_json` and `logconfig`. Config file only.",
            }
            logconfig_json: Option<String> = None => {
                section: "Logging", cli: ["--log-config-json"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "JSON file holding a `dictConfig` dictionary; used when `logconfig_dict` is empty.",
            }
            syslog_addr: String = FromEnv(default_syslog_addr) => {
                section: "Logging", cli: ["--log-syslog-to"], meta: "SYSLOG_ADDR",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "udp://localhost:514 (platform dependent)",
                doc: "Syslog destination: `unix://PATH[#dgram|#stream]`, `udp://HOST[:PORT]` or `tcp://HOST[:PORT]` (port 514 by default).",
            }
            syslog: bool = false => {
                section: "Logging", cli: ["--log-syslog"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Also send the logs to syslog.",
            }
            syslog_prefix: Option<String> = None => {
                section: "Logging", cli: ["--log-syslog-prefix"], meta: "SYSLOG_PREFIX",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Program name used in syslog lines; the default is derived from the process name.",
            }
            syslog_facility: String = s("user") => {
                section: "Logging", cli: ["--log-syslog-facility"], meta: "SYSLOG_FACILITY",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "user",
                doc: "Syslog facility name, such as `user`, `daemon` or `local0`.",
            }
            enable_stdio_inheritance: bool = false => {
                section: "Logging", cli: ["-R", "--enable-stdio-inheritance"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "In daemon mode, keep standard output and error when they are not terminals (such as a redirection to a file) instead of discarding them.",
            }
            statsd_host: Option<String> = None => {
                section: "Logging", cli: ["--statsd-host"], meta: "STATSD_ADDR",
                action: Store(Str), kind: Statsd, supported: true,
                default_doc: "None",
                doc: "Send metrics to this StatsD server: `HOST:PORT` (port 8125 by default), `[IPv6]:PORT` or `unix://PATH`.",
            }
            dogstatsd_tags: String = s("") => {
                section: "Logging", cli: ["--dogstatsd-tags"], meta: "DOGSTATSD_TAGS",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "",
                doc: "Comma-separated DogStatsD tags added to every metric.",
            }
            statsd_prefix: String = s("") => {
                section: "Logging", cli: ["--statsd-prefix"], meta: "STATSD_PREFIX",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "",
                doc: "Prefix for every metric name; a trailing dot is added when missing.",
            }
            enable_backlog_metric: bool = false => {
                section: "Logging", cli: ["--enable-backlog-metric"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Report the number of connections waiting in the listen queues as a metric (Linux).",
            }
            proc_name: Option<String> = None => {
                section: "Process Naming", cli: ["-n", "--name"], meta: "STRING",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Name used in process titles (`master [NAME]`); defaults to `default_proc_name`.",
            }
            default_proc_name: String = s("gunicorn") => {
                section: "Process Naming", cli: [], meta: "",
                action: FileOnly, kind: Text, supported: true,
                default_doc: "gunicorn",
                doc: "Fallback process name, set to the APP_MODULE argument when one is given.",
            }
            on_starting: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `on_starting(server)`, called in the master before the sockets are set up.",
            }
            on_reload: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `on_reload(server)`, called in the master on SIGHUP, before the new workers start.",
            }
            when_ready: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `when_ready(server)`, called in the master once the sockets listen, just before the first workers start.",
            }
            pre_fork: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook `pre_fork(server, worker)`, called in the master just before a worker is forked.",
            }
            post_fork: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook `post_fork(server, worker)`, called in a worker just after it is forked.",
            }
            post_worker_init: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `post_worker_init(worker)`, called in a worker after the application is loaded.",
            }
            worker_int: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `worker_int(worker)`, called in a worker that received SIGINT or SIGQUIT.",
            }
            worker_abort: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `worker_abort(worker)`, called in a worker that received SIGABRT (usually a timeout).",
            }
            pre_exec: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `pre_exec(server)`, called in the new master just before it is executed on SIGUSR2.",
            }
            pre_request: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "logs \"METHOD PATH\" at debug level",
                doc: "Hook `pre_request(worker, req)`, called in a worker before each request.",
            }
            post_request: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: PostRequestHook, supported: true,
                default_doc: "no-op",
                doc: "Hook `post_request(worker, req, environ, resp)`, called in a worker after each request, even a failed one. Functions taking two or three arguments are accepted too.",
            }
            child_exit: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook `child_exit(server, worker)`, called in the master after a worker has exited.",
            }
            worker_exit: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook `worker_exit(server, worker)`, called in a worker as it exits.",
            }
            nworkers_changed: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(3), supported: true,
                default_doc: "no-op",
                doc: "Hook `nworkers_changed(server, new_value, old_value)`, called in the master whenever the number of workers changes (`old_value` is None the first time).",
            }
            on_exit: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `on_exit(server)`, called in the master just before it exits.",
            }
            ssl_context: Option<Py<PyAny>> = None => {
                section: "Server Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "returns the default context",
                doc: "Hook `ssl_context(config, default_ssl_context_factory)` returning the `ssl.SSLContext` to serve TLS with. What it configures (certificate chain, verify locations and mode, ciphers, minimum/maximum version, ALPN, options) is translated to rustls; anything that cannot be (an SNI callback, an ECDH curve, DH parameters, a key password, ...) stops start-up with a message saying what. Called in the master at start-up and on HUP, and again in a worker when a file it loaded is renewed.",
            }
            keyfile: Option<String> = None => {
                section: "SSL", cli: ["--keyfile"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "TLS private key file (PEM: PKCS#1, PKCS#8 or SEC1, unencrypted). Without it the key is read from `certfile`.",
            }
            certfile: Option<String> = None => {
                section: "SSL", cli: ["--certfile"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "TLS certificate chain (PEM, leaf first); setting it (or `keyfile`) turns TLS on. Read by the master at start-up and on HUP; new connections use a renewed file within about two seconds, and while a renewed file cannot be used the previous certificate keeps serving.",
            }
            ssl_version: String = s("2") => {
                section: "SSL", cli: ["--ssl-version"], meta: "",
                action: Store(Str), kind: SslVersion, supported: true,
                default_doc: "2 (ssl.PROTOCOL_TLS)",
                doc: "Deprecated and ignored (a warning is printed when set); use the `ssl_context` hook.",
            }
            cert_reqs: i64 = 0 => {
                section: "SSL", cli: ["--cert-reqs"], meta: "",
                action: Store(Str), kind: PosInt, supported: true,
                default_doc: "0 (ssl.CERT_NONE)",
                doc: "Client certificate policy: 0 none, 1 optional (a certificate sent must verify), 2 required. Certificates are verified against `ca_certs`.",
            }
            ca_certs: Option<String> = None => {
                section: "SSL", cli: ["--ca-certs"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "CA bundle used to verify client certificates.",
            }
            suppress_ragged_eofs: bool = true => {
                section: "SSL", cli: ["--suppress-ragged-eofs"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "True",
                doc: "Treat a TLS connection closed without close_notify as a normal end of data; when off, a body read cut that way is an error.",
            }
            do_handshake_on_connect: bool = false => {
                section: "SSL", cli: ["--do-handshake-on-connect"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Accepted as Gunicorn accepts it; ferrocorn always completes the handshake (in Rust, before the request is read), whatever the value.",
            }
            ciphers: Option<String> = None => {
                section: "SSL", cli: ["--ciphers"], meta: "",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "OpenSSL cipher list limiting the TLS 1.2 suites (TLS 1.3 suites stay on, as with Python's `set_ciphers`); a list that selects no suite ferrocorn offers stops start-up. All of rustls's suites when unset.",
            }
            http_protocols: Vec<String> = list(&["h1"]) => {
                section: "HTTP/2", cli: ["--http-protocols"], meta: "STRING",
                action: Store(Str), kind: HttpProtocols, supported: false,
                default_doc: "h1",
                doc: "Comma-separated HTTP versions to offer, in order of preference: `h1`, `h2`. HTTP/2 needs TLS with ALPN or `http2_cleartext`.",
            }
            http2_cleartext: String = s("off") => {
                section: "HTTP/2", cli: ["--http2-cleartext"], meta: "STRING",
                action: Store(Str), kind: Http2Cleartext, supported: false,
                default_doc: "off",
                doc: "Cleartext HTTP/2 from trusted peers (`forwarded_allow_ips`): `off`, `prior-knowledge`, `upgrade` (the `Upgrade: h2c` header) or `both`. Ignored with TLS.",
            }
            http2_max_concurrent_streams: i64 = 100 => {
                section: "HTTP/2", cli: ["--http2-max-concurrent-streams"], meta: "INT",
                action: Store(Int), kind: Http2Streams, supported: false,
                default_doc: "100",
                doc: "Maximum concurrent streams per HTTP/2 connection (at least 1).",
            }
            http2_initial_window_size: i64 = 65535 => {
                section: "HTTP/2", cli: ["--http2-initial-window-size"], meta: "INT",
                action: Store(Int), kind: Http2Window, supported: false,
                default_doc: "65535",
                doc: "Initial HTTP/2 flow-control window in bytes (at most 2^31-1).",
            }
            http2_max_frame_size: i64 = 16384 => {
                section: "HTTP/2", cli: ["--http2-max-frame-size"], meta: "INT",
                action: Store(Int), kind: Http2FrameSize, supported: false,
                default_doc: "16384",
                doc: "Largest HTTP/2 frame accepted, in bytes (16384 to 16777215).",
            }
            http2_max_header_list_size: i64 = 65536 => {
                section: "HTTP/2", cli: ["--http2-max-header-list-size"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: false,
                default_doc: "65536",
                doc: "Largest decompressed HTTP/2 header list accepted, in bytes; 0 means no limit.",
            }
            dirty_apps: Vec<String> = Vec::new() => {
                section: "Dirty Arbiters", cli: ["--dirty-app"], meta: "STRING",
                action: Append, kind: TextList, supported: true,
                default_doc: "[]",
                doc: "Dirty-arbiter application `module:Class` (or `module:Class:N` to load it in N workers only); repeatable.",
            }
            dirty_workers: i64 = 0 => {
                section: "Dirty Arbiters", cli: ["--dirty-workers"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "0",
                doc: "Number of dirty worker processes; 0 disables the dirty arbiter.",
            }
            dirty_timeout: i64 = 300 => {
                section: "Dirty Arbiters", cli: ["--dirty-timeout"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "300",
                doc: "Seconds a dirty task may run before its worker is killed; 0 disables the limit.",
            }
            dirty_threads: i64 = 1 => {
                section: "Dirty Arbiters", cli: ["--dirty-threads"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "1",
                doc: "Threads per dirty worker.",
            }
            dirty_graceful_timeout: i64 = 30 => {
                section: "Dirty Arbiters", cli: ["--dirty-graceful-timeout"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "30",
                doc: "Seconds dirty workers get to finish on shutdown before they are killed.",
            }
            on_dirty_starting: Option<Py<PyAny>> = None => {
                section: "Dirty Arbiter Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `on_dirty_starting(arbiter)`, called when the dirty arbiter starts.",
            }
            dirty_post_fork: Option<Py<PyAny>> = None => {
                section: "Dirty Arbiter Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook `dirty_post_fork(arbiter, worker)`, called after a dirty worker is forked.",
            }
            dirty_worker_init: Option<Py<PyAny>> = None => {
                section: "Dirty Arbiter Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(1), supported: true,
                default_doc: "no-op",
                doc: "Hook `dirty_worker_init(worker)`, called after a dirty worker has loaded its applications.",
            }
            dirty_worker_exit: Option<Py<PyAny>> = None => {
                section: "Dirty Arbiter Hooks", cli: [], meta: "",
                action: FileOnly, kind: Hook(2), supported: true,
                default_doc: "no-op",
                doc: "Hook `dirty_worker_exit(arbiter, worker)`, called when a dirty worker exits.",
            }
            control_socket: String = FromEnv(default_control_socket) => {
                section: "Control", cli: ["--control-socket"], meta: "PATH",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "$XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl",
                doc: "Unix socket of the control interface (`gunicornc`'s protocol: `show workers|stats|config|listeners|dirty|all`, `worker add|remove|kill`, `reload`, `reopen`, `shutdown`, `help`). The default is `$XDG_RUNTIME_DIR/gunicorn.ctl` when that directory exists, else `~/.gunicorn/gunicorn.ctl`; a relative path is taken from the working directory. A missing parent directory is created with mode 0700. The master opens it once its first workers are spawned. Unlike Gunicorn, a path where another server still answers is left to it (a WARNING says so and this server runs without a control socket; the new master of a USR2 upgrade takes the path over once the old one stops), a stale socket file is replaced, any other file is left alone, and on exit the file is removed only if it is still this server's.",
            }
            control_socket_mode: i64 = 384 => {
                section: "Control", cli: ["--control-socket-mode"], meta: "INT",
                action: Store(AutoInt), kind: PosInt, supported: true,
                default_doc: "384 (0o600)",
                doc: "File mode of the control socket (`0660` on the command line is octal). The socket is created with this mode, never briefly more open.",
            }
            control_socket_disable: bool = false => {
                section: "Control", cli: ["--no-control-socket"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "`--no-control-socket`: do not create the control socket.",
            }
            boot_timeout: i64 = 120 => {
                section: "Ferrocorn Extensions", cli: ["--boot-timeout"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "120",
                doc: "Seconds a worker may take from fork to ready (app loaded, `post_worker_init` done) before the master aborts it and starts another; never less than `timeout`. 0 disables the limit. Not a Gunicorn setting: Gunicorn counts boot time against `timeout`, so a slow app import is killed in a loop, while ferrocorn starts the `timeout` clock only once the worker is ready. Gunicorn ignores this name in a config file.",
            }
            max_worker_memory: i64 = 0 => {
                section: "Ferrocorn Extensions", cli: ["--max-worker-memory"], meta: "MIB",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "0",
                doc: "Replace a worker whose memory use goes over this many MiB; 0 turns it off. The master reads each serving worker's PSS (proportional set size, `Pss:` in `/proc/PID/smaps_rollup`) once a second, or less often when the reads get costly (they are kept to about 1% of a core: the kernel walks the page tables to answer, some 6 to 12 ms per resident GiB; `--log-level debug` logs each round with its cost), and replaces an offending worker the way `max_requests` does: its replacement is started first and the old worker serves until the replacement has booted, so no request is lost. One such hand-over runs at a time, the biggest worker first, so a pool outgrowing the limit together never doubles its memory at once. The master logs `Worker (pid:N) uses X MiB (PSS), over max_worker_memory Y MiB: replacing it`, and `ferrocorn_worker_restarts_total{reason=\"memory\"}` counts these restarts. PSS, not RSS: pages a worker still shares with the master (`preload_app`) or with other workers are divided among the processes sharing them, so each worker is charged its fair share, a preloaded app does not count in full in every worker, and the workers' PSS plus the master's adds up to what the server really uses (RSS would count shared pages once per worker). A worker already over the limit at its first check (taken as soon as it reports ready, before it has served much) gets one warning and keeps serving, and is not replaced for its memory later either: its replacement would be as big, so replacing it would only loop; raise the limit. Needs Linux 4.14 or later (`smaps_rollup`); the server refuses to start without it. Not a Gunicorn setting (granian's `--workers-max-rss` is the nearest: RSS, in MiB); Gunicorn ignores this name in a config file.",
            }
            prometheus_bind: Option<String> = None => {
                section: "Ferrocorn Extensions", cli: ["--prometheus-bind"], meta: "ADDRESS",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Serve Prometheus metrics from the master at `http://ADDRESS/metrics`: `HOST:PORT`, `[IPv6]:PORT` or `unix:PATH` (port 0 picks a free port; the `Metrics at:` log line names it). Requests by method and status class, a latency histogram, requests in flight, workers by state, restarts by reason, boot times, listener backlog, per-worker memory and CPU. Workers publish into shared memory and the master adds them up, so counters survive worker restarts. Not a Gunicorn setting; Gunicorn ignores this name in a config file.",
            }
            syslog_rfc5424: bool = false => {
                section: "Ferrocorn Extensions", cli: ["--log-syslog-rfc5424"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Send syslog records in RFC 5424 form (version, timestamp, host name, app name `gunicorn.PREFIX.error|access`, pid; octet-counted over TCP) instead of Gunicorn's `<PRI>gunicorn.PREFIX.error: [pid] message` with a trailing NUL. Not a Gunicorn setting; Gunicorn ignores this name in a config file.",
            }
            static_mount: Vec<String> = Vec::new() => {
                section: "Ferrocorn Extensions", cli: ["--static-mount"], meta: "URL_PREFIX=DIRECTORY",
                action: Append, kind: StaticMounts, supported: true,
                default_doc: "[]",
                doc: "Serve the files under DIRECTORY at URL_PREFIX from Rust, before any Python runs (no app call, no `pre_request`/`post_request` hooks, the GIL never taken), on every worker type; repeatable. In a config file a list of `\"PREFIX=DIR\"` strings or a dict `{PREFIX: DIR}`. The directory must exist and is resolved to its real path once loading is over (a relative one from `chdir`, at start-up and on HUP alike); the prefix starts with `/` and is not `/` itself. GET and HEAD only (others get 405), with sendfile, `ETag` and `Last-Modified` (304 on `If-None-Match`/`If-Modified-Since`), single `Range` requests (206, 416), precompressed `.br`/`.gz` siblings chosen by `Accept-Encoding`, a `Content-Type` from the extension, and `Cache-Control` from `static_max_age`. Paths with `..`, `.`, an encoded `/`, a backslash or a NUL get 400; a missing file, a directory (or a file's name followed by `/`), a hidden name (a segment starting with `.`, except `.well-known`) and a symlink leading out of DIRECTORY get 404, a file the worker may not read 403, and a file the system cannot open now (out of descriptors, an I/O error) 503 with an error-log line. A file with `.br`/`.gz` siblings is always sent with `Vary: Accept-Encoding`. Every request whose path, as sent, is under the prefix is answered here and never reaches the app (an encoded `/` such as `/static%2fa.txt` is not under it). Behind `--protocol uwsgi` the gateway's already-decoded PATH_INFO is not decoded again. A worker reuses an open file and its metadata for up to a second, so a changed file is seen that much later; descriptors not asked for again are closed within about two seconds. Files are opened with openat2 `RESOLVE_BENEATH`; where the kernel or a seccomp profile refuses openat2, a warning is logged once and files are opened by their real path. Each response is written to the access log and counted in the metrics. Not a Gunicorn setting; Gunicorn ignores this name in a config file.",
            }
            static_max_age: i64 = 3600 => {
                section: "Ferrocorn Extensions", cli: ["--static-max-age"], meta: "SECONDS",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "3600",
                doc: "`Cache-Control` of `static_mount` files: `public, max-age=SECONDS`, or `no-cache` (always revalidate with the ETag) when 0. One hour by default: long enough to spare repeated fetches, short enough that files changed in place without a new name reach clients the same day. Not a Gunicorn setting; Gunicorn ignores this name in a config file.",
            }
            permit_missing_host: bool = false => {
                section: "Ferrocorn Extensions", cli: ["--permit-missing-host"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Let HTTP/1.1 requests without a `Host` header reach the app (for old health checkers). Not a Gunicorn setting: ferrocorn answers such requests 400 as RFC 9112 3.2 requires, while Gunicorn lets them through. More than one `Host` line, or a value that is not `host[:port]`, is refused either way. Gunicorn ignores this name in a config file.",
            }
        }
    };
}
