//! systemd integration: socket activation (`LISTEN_FDS`/`LISTEN_PID`) and `sd_notify`.
//!
//! Gunicorn only ever sends `READY=1`; ferrocorn also tells systemd when it reloads (HUP) and
//! when it stops, so `systemctl reload` waits for the new workers and `systemctl stop` shows
//! the drain. Nothing here reads configuration.

use std::os::unix::net::UnixDatagram;

/// The inherited listening descriptors (3, 4, ...) when systemd started this very process.
/// The variables are removed, as Gunicorn does, so workers and children do not reuse them.
pub fn listen_fds() -> Vec<i32> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if !pid_ok {
        return Vec::new();
    }
    let n = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<i32>().ok())
        .unwrap_or(0);
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    (3..3 + n.max(0)).collect()
}

/// Send one state message to `$NOTIFY_SOCKET` (a leading `@` is the abstract namespace).
/// Failures are only worth a debug line: not running under systemd is normal.
pub fn notify(state: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = sent {
        crate::telemetry::error_log::debug(&format!("sd_notify to {path} failed: {e}"));
    }
}
