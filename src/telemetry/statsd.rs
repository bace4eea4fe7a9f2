//! The StatsD client of the default (Rust) logger: Gunicorn 27's `instrument/statsd.py` wire
//! format, sent without ever blocking the caller or touching Python.
//!
//! Owns: the `statsd_host` socket (UDP or AF_UNIX datagram, connected once per `configure`),
//! the metric line shapes, batching lines into multi-metric datagrams in workers, and the
//! count of lines that could not be sent. Must not touch: deciding when metrics are due (the
//! error log, access path and arbiter call in), configuration parsing beyond the raw
//! `statsd_*` strings, and the Python logger path, whose own class sends its own metrics.
//!
//! Two sending modes. The master sends every line as its own datagram and takes no lock at
//! all: it forks workers, and a lock held by another master thread at fork time would stay
//! held in the child. A worker, once `after_fork_in_worker` has run, appends lines to one
//! buffer and sends newline-separated multi-metric datagrams, so a request costs no syscall
//! in the common case; a flusher thread sends what is buffered at most 100 ms after the first
//! line went in.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::published::Published;
use crate::config::BindAddr;
use crate::sys::fd::StableFd;

/// The raw setting values: `statsd_host`, `statsd_prefix` and `dogstatsd_tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdSettings {
    pub host: String,
    pub prefix: String,
    pub tags: String,
}

/// The logger calls Gunicorn's StatsD logger counts as `gunicorn.log.<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogCall {
    Critical,
    Error,
    Warning,
    Exception,
}

/// Where `statsd_host` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StatsdAddr {
    Udp { host: String, port: u16 },
    Unix(PathBuf),
}

/// What every line needs, fixed per `configure`.
#[derive(Debug, PartialEq, Eq)]
struct Conf {
    prefix: String,
    /// `|#<dogstatsd_tags>`, or empty.
    tags: String,
    /// The largest multi-metric datagram a batch grows to.
    max_datagram: usize,
}

/// A common safe payload for UDP: a 1500-byte MTU less IPv6 and UDP headers, with margin.
const MAX_UDP_DATAGRAM: usize = 1432;
/// Local datagrams do not fragment; 8 KiB keeps well under the default socket buffer.
const MAX_UNIX_DATAGRAM: usize = 8192;
/// How long a buffered line may wait for the flusher.
const FLUSH_AFTER: Duration = Duration::from_millis(100);
const SEND_FLAGS: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

static ENABLED: AtomicBool = AtomicBool::new(false);
static CONF: Published<Conf> = Published::new();
/// The socket; later `configure` calls put a new socket behind the same number (dup3), so
/// lock-free senders never see a closed or reused descriptor.
static FD: OnceLock<StableFd> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Serialises `configure` calls only; the send path never takes it.
static CONFIGURE: Mutex<()> = Mutex::new(());

static BATCHING: AtomicBool = AtomicBool::new(false);
static BATCH: Mutex<Batch> = Mutex::new(Batch::new());
static BATCH_READY: Condvar = Condvar::new();

/// Sets up (or with None turns off) StatsD for this process. Called in the master at
/// start-up and again on HUP, replacing the socket. Like Gunicorn, a destination that
/// cannot be resolved or connected is not an error: its metrics are dropped (and counted).
pub fn configure(settings: Option<&StatsdSettings>) -> Result<(), String> {
    let _serial = CONFIGURE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(settings) = settings else {
        ENABLED.store(false, Ordering::Release);
        return Ok(());
    };
    let addr = parse_host(&settings.host)?;
    let socket = open_socket(&addr);
    let max_datagram = match addr {
        StatsdAddr::Udp { .. } => MAX_UDP_DATAGRAM,
        StatsdAddr::Unix(_) => MAX_UNIX_DATAGRAM,
    };
    let tags = if settings.tags.is_empty() {
        String::new()
    } else {
        format!("|#{}", settings.tags)
    };
    CONF.publish(Conf {
        prefix: normalise_prefix(&settings.prefix),
        tags,
        max_datagram,
    });
    if let Some(socket) = socket {
        match FD.get() {
            // A failed dup3 leaves the previous socket in place, which is still a destination.
            Some(stable) => drop(stable.retarget(&socket)),
            None => drop(FD.set(StableFd::new(socket.into()))),
        }
    }
    ENABLED.store(true, Ordering::Release);
    Ok(())
}

/// Gunicorn's `validate_statsd_address`: the legacy `unix:NNNN` (host `unix`, port NNNN),
/// else `util.parse_address` with default port 8125.
pub(crate) fn parse_host(value: &str) -> Result<StatsdAddr, String> {
    if let Some(port) = crate::config::legacy_unix_port(value) {
        return Ok(StatsdAddr::Udp {
            host: "unix".to_string(),
            port,
        });
    }
    match crate::config::parse_address(value, "8125") {
        Ok(BindAddr::Unix(path)) => Ok(StatsdAddr::Unix(path)),
        Ok(BindAddr::Tcp { host, port }) => Ok(StatsdAddr::Udp { host, port }),
        // Gunicorn accepts `fd://N` here and then fails building its logger.
        Ok(BindAddr::Fd(_)) => Err("statsd_host: fd:// addresses are not supported".into()),
        Err(_) => Err("Value must be one of ('host:port', 'unix://PATH')".into()),
    }
}

/// A non-blocking, close-on-exec datagram socket, connected when possible. A socket whose
/// connect failed is still returned: sending on it fails, which counts the drop, and it
/// replaces the previous destination as Gunicorn's new logger would.
fn open_socket(addr: &StatsdAddr) -> Option<Socket> {
    let ty = Type::DGRAM.nonblocking().cloexec();
    match addr {
        StatsdAddr::Unix(path) => {
            let socket = Socket::new(Domain::UNIX, ty, None).ok()?;
            if let Ok(target) = SockAddr::unix(path) {
                let _ = socket.connect(&target);
            }
            Some(socket)
        }
        StatsdAddr::Udp { host, port } => {
            // Gunicorn picks AF_INET6 only for a numeric IPv6 host; any other name is
            // resolved as IPv4, once, here.
            let v6 = host.parse::<std::net::Ipv6Addr>().ok();
            let domain = if v6.is_some() {
                Domain::IPV6
            } else {
                Domain::IPV4
            };
            let socket = Socket::new(domain, ty, None).ok()?;
            let target = match v6 {
                Some(ip) => Some(SocketAddr::new(IpAddr::V6(ip), *port)),
                None => resolve_v4(host, *port),
            };
            if let Some(target) = target {
                let _ = socket.connect(&target.into());
            }
            Some(socket)
        }
    }
}

fn resolve_v4(host: &str, port: u16) -> Option<SocketAddr> {
    // Python's AF_INET sockets take "" as INADDR_ANY.
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()
        .ok()?
        .find(SocketAddr::is_ipv4)
}

/// `statsd_prefix` with exactly one trailing dot; empty stays empty. Gunicorn's regex skips
/// one-character prefixes (`a` gives `agunicorn.requests`); ferrocorn adds the dot there too.
pub(crate) fn normalise_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        return String::new();
    }
    format!("{}.", prefix.trim_end_matches('.'))
}

/// One relaxed load: the request path asks this before building any metric.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `increment(name, v)`: `<prefix><name>:<v>|c|@1.0`; a negative value prints as Gunicorn's
/// `decrement` does.
pub fn counter(name: &str, v: i64) {
    emit_one(name, v, "c|@1.0");
}

pub fn gauge(name: &str, v: &str) {
    emit_one(name, v, "g");
}

pub fn histogram(name: &str, v: &str) {
    emit_one(name, v, "h");
}

/// A timer in milliseconds, printed as Python prints a float.
pub fn timer_ms(name: &str, ms: f64) {
    emit_one(name, py_float_repr(ms), "ms");
}

/// The three metrics Gunicorn's `Statsd.access` sends per request, in its order. Written
/// into one reused buffer: this runs for every request, so it allocates nothing.
pub fn request(status_code: u16, elapsed: Duration) {
    let Some(conf) = live_conf() else {
        return;
    };
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.clear();
        let (prefix, tags) = (conf.prefix.as_str(), conf.tags.as_str());
        for piece in [prefix, "gunicorn.request.duration:"] {
            buf.push_str(piece);
        }
        write_duration_ms(buf, elapsed);
        for piece in ["|ms", tags, prefix, "gunicorn.requests:1|c|@1.0", tags] {
            buf.push_str(piece);
        }
        let first = buf.len() - (prefix.len() + "gunicorn.requests:1|c|@1.0".len() + tags.len());
        let second = buf.len();
        for piece in [prefix, "gunicorn.request.status."] {
            buf.push_str(piece);
        }
        let _ = write!(buf, "{status_code}");
        for piece in [":1|c|@1.0", tags] {
            buf.push_str(piece);
        }
        emit(conf, &[&buf[..first], &buf[first..second], &buf[second..]]);
    });
}

/// `duration_ms(elapsed)` as Python prints that float. Under a second the value is a whole
/// number of microseconds over 1000, which Python prints as that decimal (no exponent, at
/// least one digit after the point), so it is written without going through `f64`.
pub(crate) fn write_duration_ms(buf: &mut String, elapsed: Duration) {
    if elapsed.as_secs() != 0 {
        buf.push_str(&py_float_repr(duration_ms(elapsed)));
        return;
    }
    let micros = elapsed.subsec_micros();
    let (whole, frac) = (micros / 1000, micros % 1000);
    let _ = write!(buf, "{whole}.");
    match frac {
        0 => buf.push('0'),
        f if f % 100 == 0 => {
            let _ = write!(buf, "{}", f / 100);
        }
        f if f % 10 == 0 => {
            let _ = write!(buf, "{:02}", f / 10);
        }
        f => {
            let _ = write!(buf, "{f:03}");
        }
    }
}

/// `request_time.seconds * 1000 + request_time.microseconds / 1000.0` of the timedelta
/// Gunicorn measures, which holds whole microseconds.
pub(crate) fn duration_ms(elapsed: Duration) -> f64 {
    let micros = elapsed.subsec_micros();
    (elapsed.as_secs() as f64) * 1000.0 + f64::from(micros) / 1000.0
}

/// `gunicorn.log.<kind>` +1 for one logger call at that level.
pub fn log_call(kind: LogCall) {
    let name = match kind {
        LogCall::Critical => "gunicorn.log.critical",
        LogCall::Error => "gunicorn.log.error",
        LogCall::Warning => "gunicorn.log.warning",
        LogCall::Exception => "gunicorn.log.exception",
    };
    counter(name, 1);
}

/// A metric named in a log call's `extra={"metric", "value", "mtype"}`; the value is sent
/// as its text, and an unknown type is ignored as Gunicorn ignores it.
pub fn extra_metric(name: &str, value: &str, mtype: &str) {
    if name.is_empty() {
        return;
    }
    let kind = match mtype {
        "gauge" => "g",
        "counter" => "c|@1.0",
        "histogram" => "h",
        "timer" => "ms",
        _ => return,
    };
    emit_one(name, value, kind);
}

/// Lines (not datagrams) this process could not send.
pub fn dropped_total() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// In a freshly forked worker: start batching, with the flusher thread. If the thread cannot
/// start, lines keep going out one datagram each.
pub fn after_fork_in_worker() {
    // The count inherited from the master is the master's: the endpoint adds it once.
    DROPPED.store(0, Ordering::Relaxed);
    if !enabled() || BATCHING.load(Ordering::Acquire) {
        return;
    }
    let started = std::thread::Builder::new()
        .name("ferrocorn-statsd".into())
        .spawn(flusher);
    if started.is_ok() {
        BATCHING.store(true, Ordering::Release);
    }
}

/// Sends whatever is buffered now (worker exit).
pub fn flush() {
    if !BATCHING.load(Ordering::Acquire) {
        return;
    }
    let out = lock_batch().take();
    send_datagram(&out);
}

fn live_conf() -> Option<&'static Conf> {
    if !enabled() {
        return None;
    }
    CONF.get()
}

fn emit_one(name: &str, value: impl std::fmt::Display, kind: &str) {
    if let Some(conf) = live_conf() {
        emit(conf, &[&line(conf, name, value, kind)]);
    }
}

/// `<prefix><name>:<value>|<kind>[|#<tags>]`.
fn line(conf: &Conf, name: &str, value: impl std::fmt::Display, kind: &str) -> String {
    let mut out = String::with_capacity(conf.prefix.len() + name.len() + 24 + conf.tags.len());
    let _ = write!(out, "{}{name}:{value}|{kind}{}", conf.prefix, conf.tags);
    out
}

fn emit(conf: &Conf, lines: &[&str]) {
    if !BATCHING.load(Ordering::Acquire) {
        for line in lines {
            if line.is_ascii() {
                send_bytes(line.as_bytes(), 1);
            } else {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        return;
    }
    let mut full = Vec::new();
    let woke = {
        let mut batch = lock_batch();
        let was_empty = batch.is_empty();
        for line in lines {
            batch.push(line, conf.max_datagram, &mut full);
        }
        was_empty && !batch.is_empty()
    };
    if woke {
        BATCH_READY.notify_one();
    }
    for datagram in &full {
        send_datagram(datagram);
    }
}

fn lock_batch() -> MutexGuard<'static, Batch> {
    // Every Batch update is a whole-value step; a panic mid-way cannot leave it torn.
    BATCH.lock().unwrap_or_else(|p| p.into_inner())
}

/// Buffered lines waiting for one multi-metric datagram.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) datagram: Datagram,
    /// When the oldest buffered line went in; None while empty.
    first_at: Option<Instant>,
}

/// Newline-separated lines going out as one datagram.
#[derive(Debug, Default, Clone)]
pub(crate) struct Datagram {
    pub(crate) bytes: Vec<u8>,
    pub(crate) lines: u64,
    /// Lines refused before sending (Gunicorn's `encode("ascii")` fails on them).
    refused: u64,
}

impl Datagram {
    fn append(&mut self, line: &str) {
        if !line.is_ascii() {
            self.refused += 1;
            return;
        }
        if !self.bytes.is_empty() {
            self.bytes.push(b'\n');
        }
        self.bytes.extend_from_slice(line.as_bytes());
        self.lines += 1;
    }
}

impl Batch {
    pub(crate) const fn new() -> Batch {
        Batch {
            datagram: Datagram {
                bytes: Vec::new(),
                lines: 0,
                refused: 0,
            },
            first_at: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.datagram.lines == 0 && self.datagram.refused == 0
    }

    /// Adds a line; a datagram that the line would push past `max` moves to `full` first.
    pub(crate) fn push(&mut self, line: &str, max: usize, full: &mut Vec<Datagram>) {
        if self.datagram.lines > 0 && self.datagram.bytes.len() + 1 + line.len() > max {
            full.push(self.take());
        }
        if self.first_at.is_none() {
            self.first_at = Some(Instant::now());
        }
        if self.datagram.bytes.capacity() == 0 {
            // One allocation per datagram instead of a doubling series.
            self.datagram.bytes.reserve(max);
        }
        self.datagram.append(line);
    }

    pub(crate) fn take(&mut self) -> Datagram {
        self.first_at = None;
        std::mem::take(&mut self.datagram)
    }
}

/// The worker's flusher: sends the buffer once its oldest line has waited `FLUSH_AFTER`.
fn flusher() {
    loop {
        let mut batch = lock_batch();
        let out = loop {
            match batch.first_at {
                None => {
                    batch = BATCH_READY.wait(batch).unwrap_or_else(|p| p.into_inner());
                }
                Some(first) => {
                    let due = first + FLUSH_AFTER;
                    let now = Instant::now();
                    if now >= due {
                        break batch.take();
                    }
                    batch = BATCH_READY
                        .wait_timeout(batch, due - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        };
        drop(batch);
        send_datagram(&out);
    }
}

fn send_datagram(datagram: &Datagram) {
    if datagram.refused > 0 {
        DROPPED.fetch_add(datagram.refused, Ordering::Relaxed);
    }
    if datagram.lines > 0 {
        send_bytes(&datagram.bytes, datagram.lines);
    }
}

/// One non-blocking send of `lines` metric lines; whatever cannot go (no socket, not
/// connected, buffer full, collector gone) is counted, never waited for.
fn send_bytes(bytes: &[u8], lines: u64) {
    let sent = FD
        .get()
        .map(|fd| SockRef::from(fd).send_with_flags(bytes, SEND_FLAGS));
    if !matches!(sent, Some(Ok(_))) {
        DROPPED.fetch_add(lines, Ordering::Relaxed);
    }
}

/// CPython's `repr(float)`: the shortest digits that round-trip, in positional form unless
/// the decimal exponent is below -4 or at least 16 (`1e-05`, `1e+16`).
pub(crate) fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` also prints the shortest round-tripping digits, as `d.ddde<exp>`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if x < 0.0 {
        out.push('-');
    }
    let decpt = exp + 1;
    if -4 < decpt && decpt <= 16 {
        let n = digits.len() as i32;
        if decpt <= 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-decpt) as usize));
            out.push_str(&digits);
        } else if decpt < n {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        } else {
            out.push_str(&digits);
            out.push_str(&"0".repeat((decpt - n) as usize));
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// Test hooks: the lines a configuration produces, and leaving batch mode.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn render(prefix: &str, tags: &str, name: &str, value: &str, kind: &str) -> String {
        let conf = Conf {
            prefix: normalise_prefix(prefix),
            tags: if tags.is_empty() {
                String::new()
            } else {
                format!("|#{tags}")
            },
            max_datagram: MAX_UDP_DATAGRAM,
        };
        line(&conf, name, value, kind)
    }

    pub(crate) fn batching() -> bool {
        BATCHING.load(Ordering::Acquire)
    }

    /// Back to master mode; the flusher thread stays, idle on an empty buffer.
    pub(crate) fn stop_batching() {
        flush();
        BATCHING.store(false, Ordering::Release);
    }

    pub(crate) const MAX_UDP: usize = MAX_UDP_DATAGRAM;
}
