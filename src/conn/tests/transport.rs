//! `Transport`: non-blocking reads and writes on a blocking descriptor, timeouts, a peer
//! that resets, sendfile, and the `gunicorn.socket` duplicate.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};

use super::{eventually, nothing_pending, pattern, read_n, read_to_eof, tcp_pair, unix_pair};
use super::{TempFile, PATIENCE};
use crate::conn::transport::Transport;

fn is_nonblocking(t: &Transport) -> bool {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(t.as_fd(), FcntlArg::F_GETFL).unwrap();
    OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK)
}

/// Make our socket's send buffer as small as the kernel allows, so it fills quickly.
fn tiny_send_buffer(t: &Transport) {
    let sock = socket2::SockRef::from(t);
    sock.set_send_buffer_size(4096).unwrap();
}

#[test]
fn try_read_is_none_when_empty_and_zero_at_eof_on_a_blocking_socket() {
    let (mut ours, mut peer) = unix_pair();
    assert!(!is_nonblocking(&ours), "the transport starts blocking");
    let mut buf = [0u8; 64];
    let started = Instant::now();
    assert_eq!(ours.try_read(&mut buf).unwrap(), None);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "try_read blocked"
    );
    assert!(
        !is_nonblocking(&ours),
        "try_read must not switch the descriptor's mode"
    );

    peer.write_all(b"abc").unwrap();
    assert_eq!(ours.try_read(&mut buf).unwrap(), Some(3));
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(ours.try_read(&mut buf).unwrap(), None);

    drop(peer);
    assert_eq!(ours.try_read(&mut buf).unwrap(), Some(0));
}

#[test]
fn try_read_on_tcp_is_none_then_data_then_eof() {
    let (mut ours, mut peer) = tcp_pair();
    let mut buf = [0u8; 64];
    assert_eq!(ours.try_read(&mut buf).unwrap(), None);
    peer.write_all(b"hello").unwrap();
    let n = eventually("tcp bytes", || ours.try_read(&mut buf).unwrap());
    assert_eq!(&buf[..n], b"hello");
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    let n = eventually("tcp EOF", || ours.try_read(&mut buf).unwrap());
    assert_eq!(n, 0);
}

#[test]
fn try_write_takes_what_fits_then_nothing_and_the_rest_goes_later() {
    let (mut ours, mut peer) = unix_pair();
    tiny_send_buffer(&ours);
    let data = pattern(1 << 20);
    let started = Instant::now();
    let first = ours.try_write(&data).unwrap();
    assert!(first > 0, "an empty socket takes something");
    assert!(first < data.len(), "a 4 KiB send buffer took {first} bytes");
    let mut sent = first;
    // Keep offering until the socket takes nothing: the buffer is full.
    loop {
        let n = ours.try_write(&data[sent..]).unwrap();
        if n == 0 {
            break;
        }
        sent += n;
        assert!(sent < data.len(), "the whole megabyte fit a 4 KiB buffer");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "try_write blocked"
    );
    assert!(!is_nonblocking(&ours));

    // The peer drains; what was refused can be sent now.
    let reader = thread::spawn(move || read_to_eof(&mut peer));
    ours.write_all(&data[sent..]).unwrap();
    drop(ours);
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes reordered or lost");
}

#[test]
fn blocking_read_gives_up_after_the_read_timeout() {
    let (mut ours, _peer) = unix_pair();
    ours.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let err = ours.read(&mut [0u8; 16]).unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(150),
        "returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(2), "returned after {waited:?}");
}

#[test]
fn blocking_read_waits_for_a_late_peer() {
    let (mut ours, mut peer) = unix_pair();
    ours.set_read_timeout(Some(PATIENCE)).unwrap();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        peer.write_all(b"late").unwrap();
        peer
    });
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = ours.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"late");
    assert!(started.elapsed() >= Duration::from_millis(50));
    drop(writer.join().unwrap());
    assert_eq!(ours.read(&mut buf).unwrap(), 0, "EOF once the peer is gone");
}

#[test]
fn write_all_sends_a_large_buffer_to_a_peer_reading_slowly() {
    let (mut ours, mut peer) = unix_pair();
    tiny_send_buffer(&ours);
    let data = pattern(4 << 20);
    let reader = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        read_to_eof(&mut peer)
    });
    ours.write_all(&data).unwrap();
    drop(ours);
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes reordered or lost");
}

#[test]
fn write_all_gives_up_after_the_write_timeout() {
    let (mut ours, _peer) = unix_pair();
    tiny_send_buffer(&ours);
    ours.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let err = ours.write_all(&pattern(1 << 20)).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// SIGPIPE blocked in this thread for the guard's life: a SIGPIPE raised by a write of
/// this thread then stays pending (Linux keeps blocked signals even when ignored, and the
/// test harness ignores SIGPIPE), where `/proc/thread-self/status` shows it.
struct SigpipeWatch(SigSet);

impl SigpipeWatch {
    fn new() -> SigpipeWatch {
        let mut set = SigSet::empty();
        set.add(Signal::SIGPIPE);
        set.thread_block().unwrap();
        SigpipeWatch(set)
    }

    /// Whether a SIGPIPE is pending for this thread; consumes it.
    fn take(&self) -> bool {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigPnd:"))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
            .unwrap();
        let pending = mask & (1 << (Signal::SIGPIPE as i32 - 1)) != 0;
        if pending {
            self.0.wait().unwrap();
        }
        pending
    }
}

impl Drop for SigpipeWatch {
    fn drop(&mut self) {
        let _ = self.take();
        let _ = self.0.thread_unblock();
    }
}

#[test]
fn try_write_to_a_closed_peer_is_epipe_without_sigpipe() {
    let watch = SigpipeWatch::new();
    // The watch works: a send without MSG_NOSIGNAL to a closed peer raises SIGPIPE.
    let (control, control_peer) = UnixStream::pair().unwrap();
    drop(control_peer);
    let plain = nix::sys::socket::send(
        control.as_raw_fd(),
        b"x",
        nix::sys::socket::MsgFlags::empty(),
    );
    assert_eq!(plain, Err(nix::errno::Errno::EPIPE));
    assert!(watch.take(), "the SIGPIPE detector does not see SIGPIPE");

    let (mut ours, peer) = unix_pair();
    drop(peer);
    let err = ours.try_write(b"response").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPIPE), "{err:?}");
    assert!(!watch.take(), "try_write raised SIGPIPE");
}

#[test]
fn tcp_peer_reset_is_an_error_or_eof_and_writes_fail_without_sigpipe() {
    let watch = SigpipeWatch::new();
    let (mut ours, peer) = tcp_pair();
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer); // RST
    let mut buf = [0u8; 64];
    let first = eventually("the reset to arrive", || match ours.try_read(&mut buf) {
        Ok(None) => None,
        other => Some(other),
    });
    match first {
        Ok(Some(0)) => {}
        Ok(Some(n)) => panic!("read {n} bytes from a reset connection"),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e:?}"),
        Ok(None) => unreachable!(),
    }
    // A blocking read does not wait for anything either.
    ours.set_read_timeout(Some(PATIENCE)).unwrap();
    let started = Instant::now();
    match ours.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("read {n} bytes from a reset connection"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));

    for _ in 0..3 {
        let err = ours.try_write(b"response").unwrap_err();
        let errno = err.raw_os_error();
        assert!(
            errno == Some(libc::EPIPE) || errno == Some(libc::ECONNRESET),
            "{err:?}"
        );
    }
    assert!(!watch.take(), "try_write raised SIGPIPE");
}

#[test]
fn send_file_sends_from_the_offset_and_stops_at_the_end_of_the_file() {
    let contents = pattern(10_000);
    let tmp = TempFile::with(&contents);
    let file = tmp.open();
    let (mut ours, mut peer) = unix_pair();

    let mut offset = 1000;
    assert_eq!(
        ours.send_file(file.as_fd(), &mut offset, 3000).unwrap(),
        3000
    );
    assert_eq!(offset, 4000);
    assert_eq!(read_n(&mut peer, 3000), &contents[1000..4000]);

    // The file has 1000 bytes left: fewer than asked go out, and the offset ends at EOF.
    let mut offset = 9000;
    assert_eq!(
        ours.send_file(file.as_fd(), &mut offset, 5000).unwrap(),
        1000
    );
    assert_eq!(offset, 10_000);
    assert_eq!(read_n(&mut peer, 1000), &contents[9000..]);
    assert!(nothing_pending(&peer));

    // The file's own position is not sendfile's business.
    use std::io::Seek;
    assert_eq!((&file).stream_position().unwrap(), 0);
}

#[test]
fn send_file_of_more_than_the_socket_buffer_waits_for_the_peer() {
    let contents = pattern(3 << 20);
    let tmp = TempFile::with(&contents);
    let file = tmp.open();
    let (mut ours, mut peer) = unix_pair();
    tiny_send_buffer(&ours);
    let reader = thread::spawn(move || read_to_eof(&mut peer));
    let mut offset = 5;
    let sent = ours
        .send_file(file.as_fd(), &mut offset, contents.len() as u64)
        .unwrap();
    assert_eq!(sent, contents.len() as u64 - 5);
    drop(ours);
    let got = reader.join().unwrap();
    assert!(got == contents[5..], "bytes reordered or lost");
}

#[test]
fn dup_socket_is_an_independent_descriptor_for_the_same_socket() {
    let (mut ours, mut peer) = unix_pair();
    let dup = ours.dup_socket().unwrap();
    assert_ne!(dup.as_raw_fd(), ours.as_fd().as_raw_fd());
    // The duplicate reaches the same peer.
    let mut app_side = UnixStream::from(dup);
    app_side.write_all(b"via dup;").unwrap();
    assert_eq!(read_n(&mut peer, 8), b"via dup;");
    // Closing it leaves ours working both ways.
    drop(app_side);
    ours.write_all(b"still here").unwrap();
    assert_eq!(read_n(&mut peer, 10), b"still here");
    peer.write_all(b"ping").unwrap();
    ours.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 8];
    let n = ours.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
}

#[test]
fn plain_sockets_never_want_write() {
    let (unix, _p1) = unix_pair();
    let (tcp, _p2) = tcp_pair();
    assert!(!unix.wants_write());
    assert!(!tcp.wants_write());
}

#[test]
fn write_all_to_a_closed_peer_is_an_error() {
    let (mut ours, peer) = unix_pair();
    drop(peer);
    let err = ours.write_all(b"response").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

/// A client that stops reading during a sendfile response: like `write_all`, `send_file`
/// must give up after the write timeout (SO_SNDTIMEO makes sendfile(2) fail with EAGAIN).
#[test]
fn send_file_gives_up_after_the_write_timeout() {
    let contents = pattern(4 << 20);
    let tmp = TempFile::with(&contents);
    let file = tmp.open();
    let (mut ours, peer) = unix_pair();
    tiny_send_buffer(&ours);
    ours.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let sender = thread::spawn(move || {
        let mut offset = 0;
        let res = ours.send_file(file.as_fd(), &mut offset, contents.len() as u64);
        let _ = done.send(res.map_err(|e| e.kind()));
    });
    let res = finished.recv_timeout(Duration::from_secs(3));
    // Let a stuck sender go (the peer's close makes sendfile fail) before judging.
    drop(peer);
    sender.join().unwrap();
    match res {
        Ok(Err(kind)) => assert!(
            matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
            "{kind:?}"
        ),
        Ok(Ok(n)) => panic!("sent {n} bytes to a client that reads nothing"),
        Err(_) => panic!("send_file still blocked 3 s after a 200 ms write timeout"),
    }
}
