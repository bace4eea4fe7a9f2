//! The syslog sender of the default (Rust) logger: the records Gunicorn 27's `SysLogHandler`s
//! put on the wire, or RFC 5424 records with ferrocorn's `syslog_rfc5424`.
//!
//! Owns: parsing `syslog_addr` and `syslog_facility` as Gunicorn does, the syslog socket
//! (UDP, TCP or a unix socket), record shapes and stream framing, reconnecting a broken
//! stream, and the count of records that could not be sent. Must not touch: which lines are
//! logged or at what level (the error and access logs call in), and the Python logger path,
//! whose own handlers talk to syslog.
//!
//! The send path takes no lock (the master forks workers, and a lock held by another master
//! thread at fork time would stay held in the child) and never blocks: one `send` with
//! MSG_DONTWAIT per record, and a record that cannot go now is dropped and counted. The
//! socket lives behind a descriptor number that is never closed (`StableFd`); a new
//! configuration or a reconnect puts a new socket behind it with dup3.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Local, Offset, TimeZone, Timelike};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

use super::published::Published;
use crate::sys::fd::StableFd;

/// The raw setting values. `access` is `!disable_redirect_access_to_syslog`; `rfc5424` is
/// ferrocorn's `syslog_rfc5424`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSettings {
    pub addr: String,
    pub prefix: Option<String>,
    pub facility: String,
    pub proc_name: String,
    pub access: bool,
    pub rfc5424: bool,
}

/// Which of Gunicorn's two loggers a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Error,
    Access,
}

/// A parsed `syslog_addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddr {
    Unix { path: PathBuf, socktype: UnixType },
    Udp { host: String, port: u16 },
    Tcp { host: String, port: u16 },
}

/// The socket type asked for with `unix://PATH[#dgram|#stream]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixType {
    /// No suffix: datagram, falling back to stream, as Python's `SysLogHandler` does.
    Any,
    Dgram,
    /// `#stream`: documented by Gunicorn but ignored by its parser; honoured here.
    Stream,
}

/// A destination with host names resolved (once, at `configure`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Unix { path: PathBuf, socktype: UnixType },
}

/// What every record needs, fixed per `configure`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Conf {
    facility: u8,
    /// `gunicorn.<prefix>`.
    tag: String,
    rfc5424: bool,
    hostname: String,
    target: Target,
}

const DGRAM: u8 = 1;
const STREAM: u8 = 2;
const SEND_FLAGS: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
/// A broken stream is re-dialled at most this often, so a dead collector costs one connect
/// attempt a second, not one per log line.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Python connects a TCP syslog socket with no timeout; start-up waits at most this long.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static ENABLED: AtomicBool = AtomicBool::new(false);
static ACCESS: AtomicBool = AtomicBool::new(false);
static CONF: Published<Conf> = Published::new();
static FD: OnceLock<StableFd> = OnceLock::new();
/// DGRAM or STREAM: the type of the socket behind FD (a bare `unix://` may be either).
static KIND: AtomicU8 = AtomicU8::new(0);
/// False after a stream or unix socket broke (or never connected) until a reconnect works.
static CONNECTED: AtomicBool = AtomicBool::new(false);
/// Milliseconds after EPOCH of the last connect attempt; claimed with compare-exchange.
static LAST_ATTEMPT_MS: AtomicU64 = AtomicU64::new(0);
/// Set in `configure`, before any send, so the send path never initialises it.
static EPOCH: OnceLock<Instant> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Serialises `configure` calls only; the send path never takes it.
static CONFIGURE: Mutex<()> = Mutex::new(());

/// Gunicorn's `parse_syslog_address`, with `#stream` honoured.
pub fn parse_address(addr: &str) -> Result<SyslogAddr, String> {
    if addr.starts_with("unix://") {
        let (addr, socktype) = match addr.split_once('#') {
            Some((path, "dgram")) => (path, UnixType::Dgram),
            Some((path, "stream")) => (path, UnixType::Stream),
            Some((path, _)) => (path, UnixType::Any),
            None => (addr, UnixType::Any),
        };
        return Ok(SyslogAddr::Unix {
            path: PathBuf::from(split_second(addr, "unix://")),
            socktype,
        });
    }
    let (rest, tcp) = if addr.starts_with("udp://") {
        (split_second(addr, "udp://"), false)
    } else if addr.starts_with("tcp://") {
        (split_second(addr, "tcp://"), true)
    } else {
        return Err("invalid syslog address".into());
    };
    let host = if rest.contains('[') && rest.contains(']') {
        // `[1:]` drops the first character, whatever it is.
        let mut inside = rest.split(']').next().unwrap_or("").chars();
        inside.next();
        inside.as_str()
    } else if rest.contains(':') {
        rest.split(':').next().unwrap_or("")
    } else if rest.is_empty() {
        "localhost"
    } else {
        rest
    };
    let after = rest.rsplit(']').next().unwrap_or(rest);
    let port = match after.split_once(':') {
        Some((_, port)) => parse_port(port)?,
        None => 514,
    };
    let host = host.to_lowercase();
    Ok(if tcp {
        SyslogAddr::Tcp { host, port }
    } else {
        SyslogAddr::Udp { host, port }
    })
}

/// Python's `addr.split(sep)[1]`: the text between the first and the second `sep`.
fn split_second<'a>(addr: &'a str, sep: &str) -> &'a str {
    addr.split(sep).nth(1).unwrap_or("")
}

/// `port.isdigit()` then `int(port)`; a port past 65535 fails here rather than at send time.
fn parse_port(port: &str) -> Result<u16, String> {
    let bad = || {
        format!(
            "{} is not a valid port number.",
            super::pyformat::py_repr(port, false)
        )
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    port.parse().map_err(|_| bad())
}

/// Gunicorn's `SYSLOG_FACILITIES` (not Python's longer table), looked up case-insensitively.
pub fn facility_code(name: &str) -> Result<u8, String> {
    let code = match name.to_lowercase().as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" | "security" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return Err("unknown facility name".into()),
    };
    Ok(code)
}

/// `SysLogHandler.mapPriority` by level name: the five names map to their severities and
/// every other level (`Level 25`, `NOTSET`) to warning.
pub(crate) fn severity(levelno: u32) -> u8 {
    match levelno {
        50 => 2,
        40 => 3,
        30 => 4,
        20 => 6,
        10 => 7,
        _ => 4,
    }
}

/// Sets up (or with None turns off) syslog for this process: at start-up and on HUP. An
/// address or facility Gunicorn rejects, a host that does not resolve and a TCP collector
/// that refuses the connection are errors, as they stop Gunicorn from starting; a unix
/// socket that is not there yet is not (records are dropped until it appears). On error the
/// previous configuration stays in use.
pub fn configure(settings: Option<&SyslogSettings>) -> Result<(), String> {
    let _serial = CONFIGURE.lock().unwrap_or_else(|p| p.into_inner());
    EPOCH.get_or_init(Instant::now);
    let Some(settings) = settings else {
        ENABLED.store(false, Ordering::Release);
        ACCESS.store(false, Ordering::Release);
        release_socket();
        return Ok(());
    };
    let facility = facility_code(&settings.facility)?;
    let addr = parse_address(&settings.addr)?;
    let (target, opened) = match addr {
        SyslogAddr::Udp { host, port } => {
            let sa = resolve(&host, port)?[0];
            (Target::Udp(sa), open(&Target::Udp(sa), false).ok())
        }
        SyslogAddr::Tcp { host, port } => connect_tcp(&settings.addr, &resolve(&host, port)?)?,
        SyslogAddr::Unix { path, socktype } => {
            let target = Target::Unix { path, socktype };
            let opened = open(&target, false).ok();
            (target, opened)
        }
    };
    let prefix = match settings.prefix.as_deref() {
        Some(prefix) if !prefix.is_empty() => prefix.to_string(),
        _ => settings.proc_name.replace(':', "."),
    };
    CONF.publish(Conf {
        facility,
        tag: format!("gunicorn.{prefix}"),
        rfc5424: settings.rfc5424,
        hostname: hostname(),
        target,
    });
    LAST_ATTEMPT_MS.store(now_ms(), Ordering::Release);
    match opened {
        Some((socket, kind)) => install(socket, kind),
        None => release_socket(),
    }
    ACCESS.store(settings.access, Ordering::Release);
    ENABLED.store(true, Ordering::Release);
    Ok(())
}

/// `getaddrinfo` order, as Python's handler walks it.
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("syslog: cannot resolve {host:?}: {e}"))?
        .collect();
    if found.is_empty() {
        return Err(format!("syslog: cannot resolve {host:?}"));
    }
    Ok(found)
}

/// Python connects a TCP handler at start-up, trying each address in turn, and a refusal
/// escapes Gunicorn's logger set-up (it exits with the traceback).
fn connect_tcp(
    addr: &str,
    candidates: &[SocketAddr],
) -> Result<(Target, Option<(Socket, u8)>), String> {
    let mut last = None;
    for sa in candidates {
        match open(&Target::Tcp(*sa), true) {
            Ok(opened) => return Ok((Target::Tcp(*sa), Some(opened))),
            Err(e) => last = Some(e),
        }
    }
    let err = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound));
    Err(format!(
        "syslog: cannot connect to {addr}: {}",
        os_error_text(&err)
    ))
}

/// Python's `str(OSError)`: `[Errno 111] Connection refused`.
fn os_error_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => format!(
            "[Errno {code}] {}",
            nix::errno::Errno::from_raw(code).desc()
        ),
        None => err.to_string(),
    }
}

/// A non-blocking, close-on-exec socket for `target`, connected unless it is UDP (sent to
/// with sendto, like Python's handler). `wait` lets a TCP connect finish (start-up);
/// otherwise it is left in progress and records sent meanwhile are dropped.
fn open(target: &Target, wait: bool) -> io::Result<(Socket, u8)> {
    let dgram = Type::DGRAM.nonblocking().cloexec();
    match target {
        Target::Udp(sa) => Ok((Socket::new(Domain::for_address(*sa), dgram, None)?, DGRAM)),
        Target::Tcp(sa) => {
            let to = SockAddr::from(*sa);
            if wait {
                let socket = Socket::new(Domain::for_address(*sa), Type::STREAM.cloexec(), None)?;
                socket.connect_timeout(&to, TCP_CONNECT_TIMEOUT)?;
                socket.set_nonblocking(true)?;
                return Ok((socket, STREAM));
            }
            let ty = Type::STREAM.nonblocking().cloexec();
            let socket = Socket::new(Domain::for_address(*sa), ty, None)?;
            match socket.connect(&to) {
                Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => Err(e),
                _ => Ok((socket, STREAM)),
            }
        }
        Target::Unix { path, socktype } => {
            let to = SockAddr::unix(path)?;
            let stream = Type::STREAM.nonblocking().cloexec();
            let attempt = |ty: Type, kind: u8| -> io::Result<(Socket, u8)> {
                let socket = Socket::new(Domain::UNIX, ty, None)?;
                socket.connect(&to)?;
                Ok((socket, kind))
            };
            match socktype {
                UnixType::Dgram => attempt(dgram, DGRAM),
                UnixType::Stream => attempt(stream, STREAM),
                UnixType::Any => attempt(dgram, DGRAM).or_else(|_| attempt(stream, STREAM)),
            }
        }
    }
}

fn install(socket: Socket, kind: u8) {
    match FD.get() {
        // A failed dup3 keeps the previous socket; the next failure retries.
        Some(stable) => {
            if stable.retarget(&socket).is_err() {
                CONNECTED.store(false, Ordering::Release);
                return;
            }
        }
        None => {
            let _ = FD.set(StableFd::new(socket.into()));
        }
    }
    KIND.store(kind, Ordering::Release);
    CONNECTED.store(true, Ordering::Release);
}

/// Marks the socket unusable and lets go of the old connection (a TCP peer sees it close).
fn release_socket() {
    CONNECTED.store(false, Ordering::Release);
    if let (Some(stable), Ok(idle)) = (FD.get(), Socket::new(Domain::UNIX, Type::DGRAM, None)) {
        let _ = stable.retarget(&idle);
    }
}

fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let clean = printable(raw.trim(), 255);
    if clean.is_empty() {
        "-".into()
    } else {
        clean
    }
}

/// RFC 5424's PRINTUSASCII (33..=126), cut to `max` characters; anything else becomes `_`.
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .collect()
}

fn now_ms() -> u64 {
    EPOCH
        .get()
        .map_or(0, |epoch| epoch.elapsed().as_millis() as u64)
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether access lines go to syslog too (syslog on, redirect not disabled).
pub fn access_enabled() -> bool {
    enabled() && ACCESS.load(Ordering::Relaxed)
}

/// Records this process could not send.
pub fn dropped_total() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Sends one record; a multi-line message (a traceback) stays one record, as in Gunicorn.
pub fn send(levelno: u32, stream: Stream, msg: &str) {
    if !enabled() || (stream == Stream::Access && !access_enabled()) {
        return;
    }
    let Some(conf) = CONF.get() else {
        return;
    };
    let now = conf.rfc5424.then(Local::now);
    let record = format_record(conf, levelno, stream, std::process::id(), msg, now.as_ref());
    deliver(conf, &record);
}

/// One record without stream framing: Gunicorn's `<PRI>gunicorn.<prefix>.<stream>: [pid]
/// msg` plus NUL, or RFC 5424's `<PRI>1 TIMESTAMP HOST APP PID - - msg` (`now` is only
/// read there, so Gunicorn-format records skip the clock).
pub(crate) fn format_record<Tz: TimeZone>(
    conf: &Conf,
    levelno: u32,
    stream: Stream,
    pid: u32,
    msg: &str,
    now: Option<&DateTime<Tz>>,
) -> Vec<u8> {
    let pri = u32::from(conf.facility) * 8 + u32::from(severity(levelno));
    let stream = match stream {
        Stream::Error => "error",
        Stream::Access => "access",
    };
    let mut out = String::with_capacity(conf.tag.len() + msg.len() + 96);
    if conf.rfc5424 {
        let _ = write!(out, "<{pri}>1 ");
        match now {
            Some(now) => rfc3339(now, &mut out),
            None => out.push('-'),
        }
        let app = printable(&format!("{}.{stream}", conf.tag), 48);
        let _ = write!(out, " {} {app} {pid} - - {msg}", conf.hostname);
    } else {
        let _ = write!(out, "<{pri}>{}.{stream}: [{pid}] {msg}\0", conf.tag);
    }
    out.into_bytes()
}

/// `2026-12-04T07:28:19.123456+00:00`, the RFC 5424 TIMESTAMP with microseconds.
fn rfc3339<Tz: TimeZone>(now: &DateTime<Tz>, out: &mut String) {
    // A leap second reports 1_000_000_000+ ns; RFC 5424 allows six fraction digits only.
    let micros = (now.nanosecond() / 1000).min(999_999);
    let offset = now.offset().fix().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}{sign}{:02}:{:02}",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        abs / 3600,
        (abs % 3600) / 60
    );
}

enum Outcome {
    Sent,
    /// Not sent, the socket is fine (buffer full, message too large).
    Dropped,
    /// Not sent, the socket is unusable until reconnected.
    Broken,
}

fn deliver(conf: &Conf, record: &[u8]) {
    if !CONNECTED.load(Ordering::Acquire) && !reconnect(conf) {
        count_drop();
        return;
    }
    match try_send(conf, record) {
        Outcome::Sent => {}
        Outcome::Dropped => count_drop(),
        Outcome::Broken => {
            CONNECTED.store(false, Ordering::Release);
            // Python's handler reconnects and resends at once; here that happens only if
            // the once-a-second budget allows.
            if !(reconnect(conf) && matches!(try_send(conf, record), Outcome::Sent)) {
                count_drop();
            }
        }
    }
}

fn count_drop() {
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

fn try_send(conf: &Conf, record: &[u8]) -> Outcome {
    let Some(fd) = FD.get() else {
        return Outcome::Broken;
    };
    let socket = SockRef::from(fd);
    let stream = KIND.load(Ordering::Acquire) == STREAM;
    // RFC 6587 octet counting marks record boundaries on a stream; Gunicorn's records rely
    // on their NUL instead.
    let bytes: Cow<'_, [u8]> = if stream && conf.rfc5424 {
        let mut framed = format!("{} ", record.len()).into_bytes();
        framed.extend_from_slice(record);
        Cow::Owned(framed)
    } else {
        Cow::Borrowed(record)
    };
    let sent = match &conf.target {
        Target::Udp(sa) => socket.send_to_with_flags(&bytes, &SockAddr::from(*sa), SEND_FLAGS),
        _ => socket.send_with_flags(&bytes, SEND_FLAGS),
    };
    match sent {
        Ok(n) if n == bytes.len() => Outcome::Sent,
        Ok(_) => {
            // Part of a record went out: anything sent after it would be misread, so this
            // connection ends here and the record goes again on a new one.
            let _ = socket.shutdown(Shutdown::Both);
            Outcome::Broken
        }
        Err(e) => classify(&e, &conf.target),
    }
}

fn classify(err: &io::Error, target: &Target) -> Outcome {
    let transient = matches!(
        err.raw_os_error(),
        Some(libc::EAGAIN | libc::ENOBUFS | libc::EMSGSIZE | libc::EINTR)
    );
    // An unconnected UDP socket has no connection to lose.
    if transient || matches!(target, Target::Udp(_)) {
        Outcome::Dropped
    } else {
        Outcome::Broken
    }
}

/// Re-dials the destination if no attempt was made in the last second; true when a new
/// socket is in place (a TCP one may still be completing its handshake).
fn reconnect(conf: &Conf) -> bool {
    let now = now_ms();
    let last = LAST_ATTEMPT_MS.load(Ordering::Acquire);
    if now.saturating_sub(last) < RECONNECT_EVERY.as_millis() as u64 {
        return false;
    }
    if LAST_ATTEMPT_MS
        .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    match open(&conf.target, false) {
        Ok((socket, kind)) => {
            install(socket, kind);
            CONNECTED.load(Ordering::Acquire)
        }
        Err(_) => false,
    }
}

/// Test hooks: a configuration built without sockets, for the record formats.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn conf(facility: &str, prefix: &str, rfc5424: bool, hostname: &str) -> Conf {
        Conf {
            facility: facility_code(facility).unwrap(),
            tag: format!("gunicorn.{prefix}"),
            rfc5424,
            hostname: hostname.to_string(),
            target: Target::Udp(SocketAddr::from(([127, 0, 0, 1], 514))),
        }
    }

    pub(crate) fn stream_kind() -> bool {
        KIND.load(Ordering::Acquire) == STREAM
    }

    pub(crate) fn connected() -> bool {
        CONNECTED.load(Ordering::Acquire)
    }

    pub(crate) fn local_hostname() -> String {
        hostname()
    }
}
