//! Settings table, part 1: config file, sockets, worker processes, security, debugging and
//! server mechanics. Pure data: a row per Gunicorn setting, in Gunicorn's order, consumed by
//! `define_settings!` in `settings.rs` (see there for the row grammar). Nothing else belongs
//! here.

/// Expands to `$next! { <these rows> }` so the rows of both table files reach one
/// `define_settings!` invocation.
macro_rules! with_core_settings {
    ($next:ident) => {
        $next! {
            config: String = s("./gunicorn.conf.py") => {
                section: "Config File", cli: ["-c", "--config"], meta: "CONFIG",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "./gunicorn.conf.py",
                doc: "Path of the Python config file to exec: PATH, file:PATH or python:MODULE (import a module). Only honoured from CLI or GUNICORN_CMD_ARGS (CLI wins); if neither is given and ./gunicorn.conf.py exists in the cwd it is loaded. Unknown names in the file are ignored; invalid values abort start-up.",
            }
            wsgi_app: Option<String> = None => {
                section: "Config File", cli: [], meta: "STRING",
                action: FileOnly, kind: Text, supported: true,
                default_doc: "None",
                doc: "App URI ('module:var' or 'module:factory(args)') used when no positional APP_MODULE is given on the command line; lets the config file name the app.",
            }
            bind: Vec<String> = FromEnv(default_bind) => {
                section: "Server Socket", cli: ["-b", "--bind"], meta: "ADDRESS",
                action: Append, kind: TextList, supported: true,
                default_doc: "['127.0.0.1:8000'] (or ['0.0.0.0:$PORT'] if PORT is set)",
                doc: "Listen address(es); repeatable. Forms: HOST, HOST:PORT, [IPv6]:PORT, unix:PATH (or unix://PATH), fd://N, tcp://HOST:PORT. HOST without port uses 8000; empty string = 0.0.0.0:8000. Default is 0.0.0.0:$PORT if PORT env var is set, else 127.0.0.1:8000.",
            }
            backlog: i64 = 2048 => {
                section: "Server Socket", cli: ["--backlog"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "2048",
                doc: "listen() backlog for each listening socket.",
            }
            workers: i64 = FromEnv(default_workers) => {
                section: "Worker Processes", cli: ["-w", "--workers"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "1 (or int($WEB_CONCURRENCY))",
                doc: "Number of worker processes the arbiter keeps alive. Default read from WEB_CONCURRENCY env var (int) at import time, else 1. Changed at runtime by TTIN/TTOU and the control socket.",
            }
            worker_class: String = s("sync") => {
                section: "Worker Processes", cli: ["-k", "--worker-class"], meta: "STRING",
                action: Store(Str), kind: Class, supported: true,
                default_doc: "sync",
                doc: "Worker implementation: short name (sync, gthread, gevent, gevent_wsgi, gevent_pywsgi, tornado, asgi), dotted path to a Worker subclass, egg:dist#name entry point, or a class object. 'sync' with threads>1 silently becomes gthread. eventlet was removed in 26.0.",
            }
            threads: i64 = 1 => {
                section: "Worker Processes", cli: ["--threads"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "1",
                doc: "Threads per worker for gthread (ThreadPoolExecutor size). If worker_class is sync and threads>1, gthread is used instead. ASGI worker ignores it (warns).",
            }
            worker_connections: i64 = 1000 => {
                section: "Worker Processes", cli: ["--worker-connections"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "1000",
                doc: "Max simultaneous connections per worker for gthread (stops accepting when reached; also bounds keep-alive pool as worker_connections - threads), gevent (gevent Pool size per listener). The asgi worker stores it but (27.0.1) only counts connections, it does not enforce the limit.",
            }
            max_requests: i64 = 0 => {
                section: "Worker Processes", cli: ["--max-requests"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "0",
                doc: "After this many requests a worker stops accepting and exits gracefully (arbiter respawns it). 0 disables. Actual limit per worker = max_requests + randint(0, max_requests_jitter).",
            }
            max_requests_jitter: i64 = 0 => {
                section: "Worker Processes", cli: ["--max-requests-jitter"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "0",
                doc: "Upper bound of the random integer added to max_requests per worker, to stagger restarts.",
            }
            timeout: i64 = 30 => {
                section: "Worker Processes", cli: ["-t", "--timeout"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "30",
                doc: "Heartbeat timeout in seconds: the arbiter SIGABRTs (then SIGKILLs on the next check) a worker whose heartbeat file mtime is older than this. Workers notify every loop iteration, so for sync workers it effectively bounds a single request. 0 disables. Also used as the sync worker's select timeout (timeout/2 passed to worker) and bounds stalled HTTP/2 streams (since 27).",
            }
            graceful_timeout: i64 = 30 => {
                section: "Worker Processes", cli: ["--graceful-timeout"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "30",
                doc: "Seconds workers get to finish after a graceful stop/restart (TERM) before the arbiter SIGKILLs them; also bounds HUP reload waiting and worker-side draining.",
            }
            keepalive: i64 = 2 => {
                section: "Worker Processes", cli: ["--keep-alive"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "2",
                doc: "Seconds to wait for the next request on a kept-alive connection (gthread/gevent/tornado/asgi). 0 disables keep-alive (responses get Connection: close). sync never keeps alive. Also idle timeout of HTTP/2 connections (since 27).",
            }
            limit_request_line: i64 = 4094 => {
                section: "Security", cli: ["--limit-request-line"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "4094",
                doc: "Max request-line length in bytes (excluding CRLF). 0 = unlimited; values >= 8190 (MAX_REQUEST_LINE) are clamped to 8190. Exceeding it raises LimitRequestLine -> 414 URI Too Long (since 27; was 400).",
            }
            limit_request_fields: i64 = 100 => {
                section: "Security", cli: ["--limit-request-fields"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "100",
                doc: "Max number of header fields per request (also trailers). <=0 or >32768 becomes 32768. Exceeding raises LimitRequestHeaders -> 431.",
            }
            limit_request_field_size: i64 = 8190 => {
                section: "Security", cli: ["--limit-request-field_size"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "8190",
                doc: "Max size of one header line in bytes (name+':'+value+CRLF, incl. folded continuation lines). 0 (or negative) means the 8190 default cap in message.py (doc says unlimited). Also bounds chunk-size lines. Exceeding -> LimitRequestHeaders -> 431.",
            }
            reload: bool = false => {
                section: "Debugging", cli: ["--reload"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "Development: restart workers when loaded Python modules (or reload_extra_files) change. Worker runs a reloader thread that calls worker_int and exits on change. With reload, a SyntaxError at app load is served as a 500 traceback app instead of failing.",
            }
            reload_engine: String = s("auto") => {
                section: "Debugging", cli: ["--reload-engine"], meta: "STRING",
                action: Store(Str), kind: ReloadEngine, supported: false,
                default_doc: "auto",
                doc: "Reloader implementation: auto (inotify if the 'inotify' package is importable on Linux, else poll), poll (1 s mtime polling of sys.modules files), inotify.",
            }
            reload_extra_files: Vec<String> = Vec::new() => {
                section: "Debugging", cli: ["--reload-extra-file"], meta: "FILES",
                action: Append, kind: FilesOrPatterns, supported: false,
                default_doc: "[]",
                doc: "Extra files to watch with --reload; repeatable. Entries with * ? [ are glob patterns re-expanded on every check (** recursive, relative to start cwd); literal paths must exist at config time.",
            }
            spew: bool = false => {
                section: "Debugging", cli: ["--spew"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "Install a sys.settrace hook that prints every executed line (debugging).",
            }
            check_config: bool = false => {
                section: "Debugging", cli: ["--check-config"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Load config and the application, then exit 0 (ok) or 1 (error).",
            }
            print_config: bool = false => {
                section: "Debugging", cli: ["--print-config"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Print the resolved configuration (sorted 'name = value' lines) then behave like check_config.",
            }
            preload_app: bool = false => {
                section: "Server Mechanics", cli: ["--preload"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Load (import) the application in the arbiter before forking workers (copy-on-write memory sharing; app is not reloaded on HUP).",
            }
            sendfile: Option<bool> = None => {
                section: "Server Mechanics", cli: ["--no-sendfile"], meta: "",
                action: StoreConst(false), kind: Boolean, supported: true,
                default_doc: "None (enabled unless $SENDFILE says otherwise)",
                doc: "CLI --no-sendfile sets it to False, disabling os.sendfile for wsgi.file_wrapper responses. If unset, env SENDFILE=y/1/yes/true enables (other values disable); otherwise enabled. Never used with TLS or HTTP/2.",
            }
            reuse_port: bool = false => {
                section: "Server Mechanics", cli: ["--reuse-port"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Set SO_REUSEPORT on listening sockets; if the platform supports it, the arbiter does not bind and each worker binds its own sockets after fork. Unix sockets are not unlinked on stop when set.",
            }
            chdir: String = FromEnv(default_chdir) => {
                section: "Server Mechanics", cli: ["--chdir"], meta: "",
                action: Store(Str), kind: Chdir, supported: true,
                default_doc: "'.' (current working directory)",
                doc: "Directory to chdir to before loading the app (also inserted in sys.path[0]); applied both before and after config file loading. Default is the current working directory (PWD if it matches getcwd).",
            }
            daemon: bool = false => {
                section: "Server Mechanics", cli: ["-D", "--daemon"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "Double-fork and detach (setsid, umask 022, stdio -> /dev/null unless enable_stdio_inheritance). Skipped when GUNICORN_FD is set (USR2 re-exec).",
            }
            raw_env: Vec<String> = Vec::new() => {
                section: "Server Mechanics", cli: ["-e", "--env"], meta: "ENV",
                action: Append, kind: TextList, supported: true,
                default_doc: "[]",
                doc: "Environment variables KEY=VALUE (repeatable) set in the arbiter (at setup) and in each worker (init_process); restored/removed on HUP reload.",
            }
            pidfile: Option<String> = None => {
                section: "Server Mechanics", cli: ["-p", "--pid"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Path of PID file written by the master (mode 0644, written via temp file + rename). During USR2 the new master writes PATH.2 and renames it when promoted. Start fails if the file holds the pid of a live process.",
            }
            worker_tmp_dir: Option<String> = None => {
                section: "Server Mechanics", cli: ["--worker-tmp-dir"], meta: "DIR",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Directory for the per-worker heartbeat temp files (mkstemp 'wgunicorn-*', unlinked immediately). Use a tmpfs like /dev/shm to avoid blocking disk I/O.",
            }
            user: u32 = FromEnv(default_user) => {
                section: "Server Mechanics", cli: ["-u", "--user"], meta: "USER",
                action: Store(Str), kind: User, supported: false,
                default_doc: "os.geteuid()",
                doc: "Switch workers to this uid (name or number) after fork (setuid in init_process). Default: current euid. Also chowns unix sockets and the heartbeat file.",
            }
            group: u32 = FromEnv(default_group) => {
                section: "Server Mechanics", cli: ["-g", "--group"], meta: "GROUP",
                action: Store(Str), kind: Group, supported: false,
                default_doc: "os.getegid()",
                doc: "Switch workers to this gid (name or number). Default: current egid.",
            }
            umask: i64 = 0 => {
                section: "Server Mechanics", cli: ["-m", "--umask"], meta: "INT",
                action: Store(AutoInt), kind: PosInt, supported: true,
                default_doc: "0",
                doc: "umask applied while binding unix sockets and creating heartbeat files (and in daemon mode 022 is set first). Accepts int or string parsed by int(x,0) with leading-0 octal support.",
            }
            initgroups: bool = false => {
                section: "Server Mechanics", cli: ["--initgroups"], meta: "",
                action: StoreTrue, kind: Boolean, supported: false,
                default_doc: "False",
                doc: "With user/group set, call os.initgroups(username, gid) to set supplementary groups instead of a plain setgid.",
            }
            tmp_upload_dir: Option<String> = None => {
                section: "Server Mechanics", cli: [], meta: "DIR",
                action: FileOnly, kind: Text, supported: false,
                default_doc: "None",
                doc: "Legacy; directory for temporary request data. Not used by the current parser (kept for compatibility).",
            }
            secure_scheme_headers: Vec<(String, String)> = FromEnv(default_scheme_headers) => {
                section: "Server Mechanics", cli: [], meta: "",
                action: FileOnly, kind: SchemeHeaders, supported: true,
                default_doc: "{'X-FORWARDED-PROTOCOL': 'ssl', 'X-FORWARDED-PROTO': 'https', 'X-FORWARDED-SSL': 'on'}",
                doc: "Dict UPPERCASE-HEADER -> exact value meaning https. If the peer is trusted (forwarded_allow_ips) and a listed header is present, wsgi.url_scheme becomes https when the value matches, http otherwise; two listed headers that disagree -> InvalidSchemeHeaders (400). Ignored in trailers. Config-file only (no CLI).",
            }
            forwarded_allow_ips: AddrList = FromEnv(default_forwarded) => {
                section: "Server Mechanics", cli: ["--forwarded-allow-ips"], meta: "STRING",
                action: Store(Str), kind: Addrs, supported: true,
                default_doc: "'127.0.0.1,::1' (or $FORWARDED_ALLOW_IPS)",
                doc: "Comma-separated IPs/CIDRs (or *) trusted to set secure_scheme_headers, forwarder_headers and (since 26.2) to negotiate h2c. Default from env FORWARDED_ALLOW_IPS else '127.0.0.1,::1'. Non-IP peers (unix sockets) are always trusted. Invalid CIDR (host bits set) is a config error.",
            }
            pythonpath: Option<String> = None => {
                section: "Server Mechanics", cli: ["--pythonpath"], meta: "STRING",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Comma-separated directories inserted at the front of sys.path (absolute-ised) before app loading.",
            }
            paste: Option<String> = None => {
                section: "Server Mechanics", cli: ["--paste", "--paster"], meta: "STRING",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "None",
                doc: "Load the app from a PasteDeploy ini (path[#section]); requires PasteDeploy. Sets default_proc_name and uses the ini for logging if it has [loggers].",
            }
            proxy_protocol: String = s("off") => {
                section: "Server Mechanics", cli: ["--proxy-protocol"], meta: "MODE",
                action: Optional("auto"), kind: ProxyProtocol, supported: false,
                default_doc: "off",
                doc: "Accept a HAProxy PROXY header at the start of a connection: off, v1 (text), v2 (binary), auto (either). Bare --proxy-protocol = auto; True/'true'/'1' -> auto, False/'0'/'none' -> off. Only checked on the first request of a connection; when present it overrides REMOTE_ADDR/REMOTE_PORT.",
            }
            proxy_allow_ips: AddrList = FromEnv(local_peers) => {
                section: "Server Mechanics", cli: ["--proxy-allow-from"], meta: "",
                action: Store(Str), kind: Addrs, supported: false,
                default_doc: "127.0.0.1,::1",
                doc: "Comma-separated IPs/CIDRs (or *) allowed to send a PROXY header; others get ForbiddenProxyRequest -> 403. Unix sockets always allowed.",
            }
            protocol: String = s("http") => {
                section: "Server Mechanics", cli: ["--protocol"], meta: "STRING",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "http",
                doc: "Wire protocol for listeners: http (default) or uwsgi (uWSGI binary protocol from nginx uwsgi_pass).",
            }
            uwsgi_allow_ips: AddrList = FromEnv(local_peers) => {
                section: "Server Mechanics", cli: ["--uwsgi-allow-from"], meta: "",
                action: Store(Str), kind: Addrs, supported: false,
                default_doc: "127.0.0.1,::1",
                doc: "IPs (exact string match, or *) allowed to send uWSGI protocol requests; unix sockets always allowed. Validated like an address list.",
            }
            raw_paste_global_conf: Vec<String> = Vec::new() => {
                section: "Server Mechanics", cli: ["--paste-global"], meta: "CONF",
                action: Append, kind: TextList, supported: false,
                default_doc: "[]",
                doc: "PasteDeploy global_conf variables KEY=VALUE (repeatable; '\\=' escapes '=').",
            }
            permit_obsolete_folding: bool = false => {
                section: "Server Mechanics", cli: ["--permit-obsolete-folding"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Accept obs-fold header continuation lines (joined with a single space) instead of rejecting them with ObsoleteFolding (400). Forces the Python parser.",
            }
            strip_header_spaces: bool = false => {
                section: "Server Mechanics", cli: ["--strip-header-spaces"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Dangerous legacy: strip spaces/tabs between header name and ':'. Forces the Python parser. Documented as deprecated.",
            }
            permit_unconventional_http_method: bool = false => {
                section: "Server Mechanics", cli: ["--permit-unconventional-http-method"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Disable gunicorn's extra method rules (3-20 chars, no lowercase, no '#'); methods must still be RFC 9110 tokens.",
            }
            permit_unconventional_http_version: bool = false => {
                section: "Server Mechanics", cli: ["--permit-unconventional-http-version"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Accept HTTP versions outside 1.0-1.x (still must match HTTP/d.d).",
            }
            casefold_http_method: bool = false => {
                section: "Server Mechanics", cli: ["--casefold-http-method"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Upper-case the request method after validation (legacy behaviour). Documented as deprecated.",
            }
            forwarder_headers: Vec<String> = list(&["SCRIPT_NAME", "PATH_INFO"]) => {
                section: "Server Mechanics", cli: ["--forwarder-headers"], meta: "",
                action: Store(Str), kind: CommaList, supported: true,
                default_doc: "SCRIPT_NAME,PATH_INFO",
                doc: "Comma-separated header names (env-style, e.g. SCRIPT_NAME, PATH_INFO, REMOTE_USER) that a trusted proxy may send even though they contain '_' (bypass header_map); '*' allows all. SCRIPT_NAME header overrides the SCRIPT_NAME env var.",
            }
            header_map: String = s("drop") => {
                section: "Server Mechanics", cli: ["--header-map"], meta: "",
                action: Store(Str), kind: HeaderMap, supported: true,
                default_doc: "drop",
                doc: "What to do with request header names containing '_' (which would collide with '-' in environ): drop (default, silently discard), refuse (InvalidHeaderName -> 400), dangerous (map anyway).",
            }
            asgi_loop: String = s("auto") => {
                section: "Worker Processes", cli: ["--asgi-loop"], meta: "STRING",
                action: Store(Str), kind: AsgiLoop, supported: false,
                default_doc: "auto",
                doc: "ASGI worker event loop: auto (uvloop if importable else asyncio), asyncio, uvloop.",
            }
            asgi_lifespan: String = s("auto") => {
                section: "Worker Processes", cli: ["--asgi-lifespan"], meta: "STRING",
                action: Store(Str), kind: AsgiLifespan, supported: false,
                default_doc: "auto",
                doc: "ASGI lifespan protocol: auto (use if the app supports it), on (required; failure stops gunicorn), off. lifespan.startup.failed stops gunicorn (exit code 3) in auto and on.",
            }
            asgi_disconnect_grace_period: i64 = 3 => {
                section: "Worker Processes", cli: ["--asgi-disconnect-grace-period"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: false,
                default_doc: "3",
                doc: "Seconds an ASGI app gets after http.disconnect before its request task is cancelled (0 = cancel immediately).",
            }
            websocket_max_message_size: i64 = 16777216 => {
                section: "Worker Processes", cli: ["--websocket-max-message-size"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: false,
                default_doc: "16777216 (16 MiB)",
                doc: "Max WebSocket message/frame size accepted by the ASGI worker (bytes, default 16 MiB, 0 = unlimited); larger closes with 1009.",
            }
            http_parser: String = s("auto") => {
                section: "Worker Processes", cli: ["--http-parser"], meta: "STRING",
                action: Store(Str), kind: HttpParser, supported: false,
                default_doc: "auto",
                doc: "HTTP/1 parser: auto (gunicorn_h1c C extension if installed and compatible, else Python), fast (require gunicorn_h1c, error otherwise), python. Applies to WSGI and ASGI workers.",
            }
            root_path: String = s("") => {
                section: "Server Mechanics", cli: ["--root-path"], meta: "STRING",
                action: Store(Str), kind: Text, supported: false,
                default_doc: "",
                doc: "ASGI scope['root_path'] (mount point behind a proxy), analogous to SCRIPT_NAME.",
            }
        }
    };
}
