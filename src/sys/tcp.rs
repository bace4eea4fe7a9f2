//! The accept-queue length of a listening TCP socket, read from the kernel's `TCP_INFO`
//! (Gunicorn's `get_backlog`: `tcpi_unacked` is, for a listener, the connections waiting to
//! be accepted). Only the getsockopt call lives here; what to do with the number is the
//! caller's business.

use std::os::fd::{AsRawFd, BorrowedFd};

/// Connections queued on the listener `fd`, or None for a socket that is not TCP (a unix
/// listener has no `TCP_INFO`; Gunicorn counts it as -1, which skews sums, so it is left out).
pub fn accept_queue_len(fd: BorrowedFd<'_>) -> Option<u32> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a zeroed buffer of exactly `len` bytes that the kernel fills; `fd` is
    // borrowed, so it stays open for the call; the kernel writes no more than `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || (len as usize) < std::mem::offset_of!(libc::tcp_info, tcpi_unacked) + 4 {
        return None;
    }
    // SAFETY: the buffer started zeroed and the kernel filled at least up to tcpi_unacked
    // (checked above); every bit pattern is a valid tcp_info (plain integers).
    let info = unsafe { info.assume_init() };
    Some(info.tcpi_unacked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn counts_unaccepted_connections_and_refuses_unix() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(accept_queue_len(l.as_fd()), Some(0));
        let addr = l.local_addr().unwrap();
        let _a = std::net::TcpStream::connect(addr).unwrap();
        let _b = std::net::TcpStream::connect(addr).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while accept_queue_len(l.as_fd()) != Some(2) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(accept_queue_len(l.as_fd()), Some(2));
        let dir = std::env::temp_dir().join(format!("ferrocorn-tcpinfo-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let u = std::os::unix::net::UnixListener::bind(&dir).unwrap();
        assert_eq!(accept_queue_len(u.as_fd()), None);
        let _ = std::fs::remove_file(&dir);
    }
}
