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
                doc: "The Python config file to load: `PATH`, `file:PATH`, or `python:MODULE` to import a module. Taken from the command line, else from `GUNICORN_CMD_ARGS`; without either, `./gunicorn.conf.py` is loaded if it exists in the working directory. Module-level names that are setting names are applied (validated like command-line values); other names are ignored.",
            }
            wsgi_app: Option<String> = None => {
                section: "Config File", cli: [], meta: "STRING",
                action: FileOnly, kind: Text, supported: true,
                default_doc: "None",
                doc: "The application as `module:variable` or `module:factory(args)`, used when no APP_MODULE is given on the command line. Lets the config file name the application.",
            }
            bind: Vec<String> = FromEnv(default_bind) => {
                section: "Server Socket", cli: ["-b", "--bind"], meta: "ADDRESS",
                action: Append, kind: TextList, supported: true,
                default_doc: "['127.0.0.1:8000'] (['0.0.0.0:$PORT'] if PORT is set)",
                doc: "Address to listen on; repeat the flag for several. Accepted forms: `HOST`, `HOST:PORT`, `[IPv6]:PORT`, `unix:PATH` (or `unix://PATH`), `fd://N` and `tcp://HOST:PORT`. A host without a port listens on 8000 and an empty string means `0.0.0.0:8000`.",
            }
            backlog: i64 = 2048 => {
                section: "Server Socket", cli: ["--backlog"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "2048",
                doc: "Maximum number of pending connections queued by `listen()` on each socket. Clients beyond it may be refused under heavy load; 64-2048 is typical.",
            }
            workers: i64 = FromEnv(default_workers) => {
                section: "Worker Processes", cli: ["-w", "--workers"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "1 (or $WEB_CONCURRENCY)",
                doc: "Number of worker processes. The default comes from the `WEB_CONCURRENCY` environment variable when set, else 1. TTIN and TTOU signals change it at run time.",
            }
            worker_class: String = s("sync") => {
                section: "Worker Processes", cli: ["-k", "--worker-class"], meta: "STRING",
                action: Store(Str), kind: Class, supported: true,
                default_doc: "sync",
                doc: "Worker type: a short name (`sync`, `gthread`, `gevent`, `tornado`, `asgi`), a dotted path to a worker class, or a class object in the config file. `sync` with `threads` above 1 runs as `gthread`. This release implements `sync`, `gthread`, `gevent` (`gevent_wsgi` and `gevent_pywsgi` are aliases of it) and `asgi`; `uvicorn.workers.UvicornWorker`, `uvicorn.workers.UvicornH11Worker`, `uvicorn_worker.UvicornWorker` and `uvicorn_worker.UvicornH11Worker` run the `asgi` worker (uvicorn need not be installed). Refused at start-up with exit status 1: `eventlet` (removed in Gunicorn 26: Gunicorn's `class uri 'eventlet' invalid or not found` error, then a pointer to `gevent`); `tornado` (Tornado's worker runs Tornado's own HTTP server, and ferrocorn's sockets and parsing are Rust); and custom worker classes, as a dotted path or a class object (ferrocorn's workers are Rust, so a Python subclass has nothing to extend; the message names the closest built-in worker when the base class is Gunicorn's or Uvicorn's, which takes importing the class's module, as Gunicorn does). A name that leads to no class gets Gunicorn's `class uri '<name>' invalid or not found` error.",
            }
            threads: i64 = 1 => {
                section: "Worker Processes", cli: ["--threads"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "1",
                doc: "Threads per worker for the threaded (`gthread`) worker. With the `sync` worker, a value above 1 switches to `gthread`.",
            }
            worker_connections: i64 = 1000 => {
                section: "Worker Processes", cli: ["--worker-connections"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "1000",
                doc: "Maximum simultaneous connections per worker for the threaded and event-loop workers. At the limit, ferrocorn's gthread worker closes the connection that has waited longest without a complete request to admit a new one; the asgi and gevent workers stop accepting until a connection closes, leaving new ones in the backlog for a worker with room (on gevent, greenlets run per request, not per connection, so idle connections cost none).",
            }
            max_requests: i64 = 0 => {
                section: "Worker Processes", cli: ["--max-requests"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "0",
                doc: "Restart a worker gracefully after it has handled this many requests, to bound memory leaks. 0 disables it. Each worker's limit is `max_requests` plus a random amount up to `max_requests_jitter`.",
            }
            max_requests_jitter: i64 = 0 => {
                section: "Worker Processes", cli: ["--max-requests-jitter"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "0",
                doc: "Largest random amount added to `max_requests` per worker, so that workers do not all restart together.",
            }
            timeout: i64 = 30 => {
                section: "Worker Processes", cli: ["-t", "--timeout"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "30",
                doc: "Seconds a worker may stay silent before the master kills it (SIGABRT, then SIGKILL on the next check). A sync worker is silent while it handles a request, so this bounds request time. 0 disables the check.",
            }
            graceful_timeout: i64 = 30 => {
                section: "Worker Processes", cli: ["--graceful-timeout"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "30",
                doc: "Seconds workers get to finish in-flight requests after a graceful stop or restart before they are killed.",
            }
            keepalive: i64 = 2 => {
                section: "Worker Processes", cli: ["--keep-alive"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "2",
                doc: "Seconds to wait for the next request on a kept-alive connection. 0 disables keep-alive. The sync worker never keeps connections alive.",
            }
            limit_request_line: i64 = 4094 => {
                section: "Security", cli: ["--limit-request-line"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "4094",
                doc: "Maximum length in bytes of the HTTP request line; longer requests get 414. 0 means the hard cap of 8190, and larger values are clamped to it.",
            }
            limit_request_fields: i64 = 100 => {
                section: "Security", cli: ["--limit-request-fields"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "100",
                doc: "Maximum number of header fields in a request (trailers included); more get 431. Values of 0, below 0 or above 32768 mean 32768.",
            }
            limit_request_field_size: i64 = 8190 => {
                section: "Security", cli: ["--limit-request-field_size"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "8190",
                doc: "Maximum size in bytes of one header line (name, value and line ending, folded continuations included); larger get 431. 0 means the 8190 default.",
            }
            reload: bool = false => {
                section: "Debugging", cli: ["--reload"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Restart workers when the application's Python modules (or `reload_extra_files`) change. For development only.",
            }
            reload_engine: String = s("auto") => {
                section: "Debugging", cli: ["--reload-engine"], meta: "STRING",
                action: Store(Str), kind: ReloadEngine, supported: true,
                default_doc: "auto",
                doc: "How `reload` watches files. `inotify` watches the directories of the loaded modules and `reload_extra_files` through the kernel (built in, no `inotify` package needed): any change in them restarts the worker. `poll` checks their mtimes every second. `auto` means `inotify`, falling back to `poll` only if the kernel refuses an inotify instance.",
            }
            reload_extra_files: Vec<String> = Vec::new() => {
                section: "Debugging", cli: ["--reload-extra-file"], meta: "FILES",
                action: Append, kind: FilesOrPatterns, supported: true,
                default_doc: "[]",
                doc: "More files to watch with `reload`; repeatable. Entries containing `*`, `?` or `[` are glob patterns (`**` recursive) expanded on every check; plain paths must exist.",
            }
            spew: bool = false => {
                section: "Debugging", cli: ["--spew"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Print every line of Python the server runs to stdout (a `sys.settrace` hook, installed in the master at start and again on HUP, or removed when HUP turns it off). In ferrocorn the master, parsing and I/O are Rust, so the lines are those of hooks, the config file when HUP reads it again, logging glue and, in each worker's main thread, the application; thread pools are not traced, as in Gunicorn. Debugging only: extremely verbose.",
            }
            check_config: bool = false => {
                section: "Debugging", cli: ["--check-config"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Load the configuration and the application, then exit with 0 if both are fine and 1 otherwise.",
            }
            print_config: bool = false => {
                section: "Debugging", cli: ["--print-config"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Print the resolved configuration as sorted `name = value` lines, then act like `check_config`.",
            }
            preload_app: bool = false => {
                section: "Server Mechanics", cli: ["--preload"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Import the application in the master before forking workers. Saves memory through copy-on-write and surfaces import errors early, but the application is not reloaded on HUP.",
            }
            sendfile: Option<bool> = None => {
                section: "Server Mechanics", cli: ["--no-sendfile"], meta: "",
                action: StoreConst(false), kind: Boolean, supported: true,
                default_doc: "None (on unless $SENDFILE says otherwise)",
                doc: "`--no-sendfile` turns off `sendfile(2)` for `wsgi.file_wrapper` responses. When not set, the `SENDFILE` environment variable decides (y, 1, yes or true enable, anything else disables), and without it sendfile is on. Never used with TLS.",
            }
            reuse_port: bool = false => {
                section: "Server Mechanics", cli: ["--reuse-port"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Set `SO_REUSEPORT` on the listening sockets. The master binds them once and every worker shares them (Gunicorn binds one per worker); another process, such as a second server, can bind the same address.",
            }
            chdir: String = FromEnv(default_chdir) => {
                section: "Server Mechanics", cli: ["--chdir"], meta: "",
                action: Store(Str), kind: Chdir, supported: true,
                default_doc: ". (the working directory at start-up)",
                doc: "Directory to change to before loading the application; it is also put first on `sys.path`. Applied before and again after the config file is read.",
            }
            daemon: bool = false => {
                section: "Server Mechanics", cli: ["-D", "--daemon"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Detach from the terminal and run in the background.",
            }
            raw_env: Vec<String> = Vec::new() => {
                section: "Server Mechanics", cli: ["-e", "--env"], meta: "ENV",
                action: Append, kind: TextList, supported: true,
                default_doc: "[]",
                doc: "Environment variable `KEY=VALUE` to set in the master and the workers; repeatable.",
            }
            pidfile: Option<String> = None => {
                section: "Server Mechanics", cli: ["-p", "--pid"], meta: "FILE",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "File to write the master's process id to. Start-up fails if it names a running process.",
            }
            worker_tmp_dir: Option<String> = None => {
                section: "Server Mechanics", cli: ["--worker-tmp-dir"], meta: "DIR",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Directory for the workers' heartbeat files in Gunicorn. ferrocorn's heartbeat uses shared memory, so the value is accepted and has no effect on liveness checks.",
            }
            user: u32 = FromEnv(default_user) => {
                section: "Server Mechanics", cli: ["-u", "--user"], meta: "USER",
                action: Store(Str), kind: User, supported: true,
                default_doc: "the effective uid at start-up",
                doc: "Run workers as this user, by name or uid.",
            }
            group: u32 = FromEnv(default_group) => {
                section: "Server Mechanics", cli: ["-g", "--group"], meta: "GROUP",
                action: Store(Str), kind: Group, supported: true,
                default_doc: "the effective gid at start-up",
                doc: "Run workers with this group, by name or gid.",
            }
            umask: i64 = 0 => {
                section: "Server Mechanics", cli: ["-m", "--umask"], meta: "INT",
                action: Store(AutoInt), kind: PosInt, supported: true,
                default_doc: "0",
                doc: "File mode mask applied while creating unix sockets and other files. Accepts decimal, `0o`/`0x` prefixes, and a leading 0 for octal (`0022`).",
            }
                        initgroups: bool = false => {
                section: "Server Mechanics", cli: ["--initgroups"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "When switching user, also set the supplementary groups of that user (`initgroups(3)`).",
            }
            tmp_upload_dir: Option<String> = None => {
                section: "Server Mechanics", cli: [], meta: "DIR",
                action: FileOnly, kind: Text, supported: true,
                default_doc: "None",
                doc: "Accepted and validated for compatibility, and unused, as in Gunicorn 27: request bodies are never written to disk; `wsgi.input` reads them from the connection as the app asks.",
            }
            secure_scheme_headers: Vec<(String, String)> = FromEnv(default_scheme_headers) => {
                section: "Server Mechanics", cli: [], meta: "",
                action: FileOnly, kind: SchemeHeaders, supported: true,
                default_doc: "{'X-FORWARDED-PROTOCOL': 'ssl', 'X-FORWARDED-PROTO': 'https', 'X-FORWARDED-SSL': 'on'}",
                doc: "Headers (upper-case name to exact value) that mark a request as HTTPS when sent by a trusted proxy (see `forwarded_allow_ips`). If a listed header is present its value decides `wsgi.url_scheme`; listed headers that disagree give 400. Config file only.",
            }
            forwarded_allow_ips: AddrList = FromEnv(default_forwarded) => {
                section: "Server Mechanics", cli: ["--forwarded-allow-ips"], meta: "STRING",
                action: Store(Str), kind: Addrs, supported: true,
                default_doc: "127.0.0.1,::1 (or $FORWARDED_ALLOW_IPS)",
                doc: "Comma-separated IP addresses or CIDR networks, or `*`, of the proxies trusted to set `secure_scheme_headers` and `forwarder_headers`. Unix-socket peers are always trusted. A network with host bits set (`10.0.0.1/8`) is an error.",
            }
            pythonpath: Option<String> = None => {
                section: "Server Mechanics", cli: ["--pythonpath"], meta: "STRING",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Comma-separated directories to put first on `sys.path` before the application is loaded.",
            }
            paste: Option<String> = None => {
                section: "Server Mechanics", cli: ["--paste", "--paster"], meta: "STRING",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "None",
                doc: "Load the application from a PasteDeploy ini file, `PATH[#name]`: `#name` picks an app section other than `main` (e.g. `production.ini#admin`). The path is made absolute and must exist; it becomes the default process name, and the logging configuration (`logconfig`) when the file has a `[loggers]` section. The app is built with PasteDeploy's `loadapp` (PasteDeploy must be installed), in each worker or once with `preload_app`. An APP_MODULE and the file's `[server:*]` sections are ignored: the command line and config file configure the server. To serve from `pserve` instead, use `use = egg:ferrocorn#main` in the ini's `[server:main]`: `host` and `port` there become `bind`, `config` names a config file (else `./gunicorn.conf.py` if present), and every other key is a setting.",
            }
            proxy_protocol: String = s("off") => {
                section: "Server Mechanics", cli: ["--proxy-protocol"], meta: "MODE",
                action: Optional("auto"), kind: ProxyProtocol, supported: true,
                default_doc: "off",
                doc: "Accept a PROXY protocol header (as sent by HAProxy) at the start of connections: `off`, `v1`, `v2` or `auto` (either). A bare flag means `auto`. The header's addresses replace REMOTE_ADDR and REMOTE_PORT.",
            }
            proxy_allow_ips: AddrList = FromEnv(local_peers) => {
                section: "Server Mechanics", cli: ["--proxy-allow-from"], meta: "",
                action: Store(Str), kind: Addrs, supported: true,
                default_doc: "127.0.0.1,::1",
                doc: "Comma-separated addresses or networks, or `*`, allowed to send a PROXY header; others get 403. Unix-socket peers are always allowed.",
            }
            protocol: String = s("http") => {
                section: "Server Mechanics", cli: ["--protocol"], meta: "STRING",
                action: Store(Str), kind: Protocol, supported: true,
                default_doc: "http",
                doc: "Protocol spoken on the listeners: `http`, or `uwsgi` for a proxy's uWSGI binary protocol (nginx's `uwsgi_pass`). Any other value is an error. The uwsgi protocol runs on the `sync` and `gthread` workers, one request per connection; the proxy's vars (REMOTE_ADDR, SERVER_NAME, HTTPS, ...) describe the client, and it cannot be combined with `proxy_protocol`.",
            }
            uwsgi_allow_ips: AddrList = FromEnv(local_peers) => {
                section: "Server Mechanics", cli: ["--uwsgi-allow-from"], meta: "",
                action: Store(Str), kind: Addrs, supported: true,
                default_doc: "127.0.0.1,::1",
                doc: "Comma-separated IP addresses or CIDR networks, or `*`, allowed to send uWSGI requests (with `protocol = uwsgi`); other peers get 403. Unix-socket peers are always allowed.",
            }
            raw_paste_global_conf: Vec<String> = Vec::new() => {
                section: "Server Mechanics", cli: ["--paste-global"], meta: "CONF",
                action: Append, kind: TextList, supported: true,
                default_doc: "[]",
                doc: "A PasteDeploy global configuration variable, `KEY=VALUE`; repeatable (`--paste-global FOO=1 --paste-global BAR=2`). Each item splits at its first `=` not written `\\=`, and `\\=` stands for `=` in the key and the value. The variables reach the app factory's `global_config`, beside `__file__` and `here`. An item without `=` fails when the app is loaded (`environment setting 'X' invalid`, a worker boot error), as in Gunicorn.",
            }
            permit_obsolete_folding: bool = false => {
                section: "Server Mechanics", cli: ["--permit-obsolete-folding"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Accept obsolete folded header lines (joined with a single space) instead of answering 400.",
            }
            strip_header_spaces: bool = false => {
                section: "Server Mechanics", cli: ["--strip-header-spaces"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Strip spaces between a header name and its colon. Deprecated and dangerous: it enables request smuggling behind some proxies.",
            }
            permit_unconventional_http_method: bool = false => {
                section: "Server Mechanics", cli: ["--permit-unconventional-http-method"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Lift the extra method rules (3 to 20 characters, upper case, no `#`); methods must still be valid tokens.",
            }
            permit_unconventional_http_version: bool = false => {
                section: "Server Mechanics", cli: ["--permit-unconventional-http-version"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Accept HTTP versions other than 1.0 and 1.1 as long as they look like `HTTP/d.d`.",
            }
            casefold_http_method: bool = false => {
                section: "Server Mechanics", cli: ["--casefold-http-method"], meta: "",
                action: StoreTrue, kind: Boolean, supported: true,
                default_doc: "False",
                doc: "Upper-case the request method after validation. Deprecated legacy behaviour.",
            }
            forwarder_headers: Vec<String> = list(&["SCRIPT_NAME", "PATH_INFO"]) => {
                section: "Server Mechanics", cli: ["--forwarder-headers"], meta: "",
                action: Store(Str), kind: CommaList, supported: true,
                default_doc: "SCRIPT_NAME,PATH_INFO",
                doc: "Comma-separated headers, in environ spelling (`SCRIPT_NAME`, `PATH_INFO`, `REMOTE_USER`, ...), that a trusted proxy may send even though their names contain `_`; `*` allows all.",
            }
            header_map: String = s("drop") => {
                section: "Server Mechanics", cli: ["--header-map"], meta: "",
                action: Store(Str), kind: HeaderMap, supported: true,
                default_doc: "drop",
                doc: "What to do with request header names containing `_`, which would collide with `-` in the environ: `drop` them, `refuse` the request (400), or map them anyway (`dangerous`).",
            }
            asgi_loop: String = s("auto") => {
                section: "Worker Processes", cli: ["--asgi-loop"], meta: "STRING",
                action: Store(Str), kind: AsgiLoop, supported: true,
                default_doc: "auto",
                doc: "Event loop of the ASGI worker: `auto` (uvloop when installed), `asyncio` or `uvloop`.",
            }
            asgi_lifespan: String = s("auto") => {
                section: "Worker Processes", cli: ["--asgi-lifespan"], meta: "STRING",
                action: Store(Str), kind: AsgiLifespan, supported: true,
                default_doc: "auto",
                doc: "ASGI lifespan protocol: `auto` (used when the application supports it), `on` (required) or `off`.",
            }
            asgi_disconnect_grace_period: i64 = 3 => {
                section: "Worker Processes", cli: ["--asgi-disconnect-grace-period"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "3",
                doc: "Seconds an ASGI application gets after a client disconnects before its request task is cancelled.",
            }
            websocket_max_message_size: i64 = 16777216 => {
                section: "Worker Processes", cli: ["--websocket-max-message-size"], meta: "INT",
                action: Store(Int), kind: PosInt, supported: true,
                default_doc: "16777216 (16 MiB)",
                doc: "Largest WebSocket message accepted by the ASGI worker, in bytes; 0 means no limit.",
            }
            http_parser: String = s("auto") => {
                section: "Worker Processes", cli: ["--http-parser"], meta: "STRING",
                action: Store(Str), kind: HttpParser, supported: true,
                default_doc: "auto",
                doc: "HTTP/1 parser implementation: `auto`, `fast` or `python`. ferrocorn has one parser, in Rust, with every limit and header policy Gunicorn applies (including `permit_obsolete_folding` and `strip_header_spaces`, which make Gunicorn fall back to its Python parser); all three values use it. Any other value is an error.",
            }
            root_path: String = s("") => {
                section: "Server Mechanics", cli: ["--root-path"], meta: "STRING",
                action: Store(Str), kind: Text, supported: true,
                default_doc: "",
                doc: "ASGI `root_path`: the mount point of the application behind a proxy.",
            }
        }
    };
}
