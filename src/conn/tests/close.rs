//! The graceful close: write side shut, what the client still sends drained, bounded in
//! time (`LINGER`) and bytes (`LINGER_LIMIT`); and the `Linger` bookkeeping the gthread
//! table uses for the same policy.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use super::{pattern, read_to_eof, tcp_pair, unix_pair, PATIENCE};
use crate::conn::close::{close_graceful, close_now, Linger, LINGER, LINGER_LIMIT};
use crate::conn::transport::Transport;

/// Run `close_graceful` in a thread; the handle says how long it took.
fn close_in_background(t: Transport) -> thread::JoinHandle<Duration> {
    thread::spawn(move || {
        let started = Instant::now();
        close_graceful(t, None);
        started.elapsed()
    })
}

/// Whether a write from the peer fails because our side is gone (EPIPE / ECONNRESET).
fn peer_write_fails(peer: &mut impl Write) -> bool {
    // One write may still be accepted into the buffer on TCP; a few make sure.
    (0..50).any(|_| {
        let failed = peer.write_all(b"more").is_err();
        if !failed {
            thread::sleep(Duration::from_millis(10));
        }
        failed
    })
}

#[test]
fn close_graceful_shuts_our_side_drains_and_returns_when_the_peer_closes() {
    let (mut ours, mut peer) = unix_pair();
    ours.write_all(b"last response").unwrap();
    let closing = close_in_background(ours);
    // The peer sees the whole response, then EOF, while our side still reads.
    assert_eq!(read_to_eof(&mut peer), b"last response");
    thread::sleep(Duration::from_millis(50));
    peer.write_all(b"a request the server will never answer")
        .unwrap();
    thread::sleep(Duration::from_millis(50));
    assert!(
        !closing.is_finished(),
        "stopped lingering while the peer was open"
    );
    drop(peer);
    let took = closing.join().unwrap();
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn close_graceful_over_tcp_keeps_reading_after_our_fin() {
    let (ours, mut peer) = tcp_pair();
    let closing = close_in_background(ours);
    assert_eq!(read_to_eof(&mut peer), b"");
    // Bytes sent after our FIN are read and discarded, not answered with a RST: the
    // peer's second write and its own close go through cleanly.
    peer.write_all(&pattern(32 * 1024)).unwrap();
    thread::sleep(Duration::from_millis(20));
    peer.write_all(b"tail").unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    let took = closing.join().unwrap();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // Everything was read before the close, so it ended with a FIN, not a RST.
    let mut buf = [0u8; 8];
    assert_eq!(peer.read(&mut buf).unwrap(), 0);
}

#[test]
fn close_graceful_gives_up_after_linger_when_the_peer_stays_open() {
    let (ours, mut peer) = unix_pair();
    let closing = close_in_background(ours);
    // The peer reads our EOF but never closes and never sends.
    assert_eq!(read_to_eof(&mut peer), b"");
    let took = closing.join().unwrap();
    assert!(
        took >= Duration::from_millis(1500),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(4), "returned after {took:?}");
    assert_eq!(LINGER, Duration::from_secs(2));
    // The connection is over for the peer: both directions were shut.
    assert!(peer_write_fails(&mut peer));
}

#[test]
fn close_graceful_stops_after_linger_limit_bytes_from_a_peer_that_keeps_sending() {
    let (ours, mut peer) = unix_pair();
    let closing = close_in_background(ours);
    let sender = thread::spawn(move || {
        let chunk = pattern(4096);
        let mut written = 0usize;
        let started = Instant::now();
        // Send until the server stops reading (our side is shut or closed).
        while started.elapsed() < PATIENCE {
            match peer.write(&chunk) {
                Ok(n) => written += n,
                Err(_) => break,
            }
        }
        written
    });
    let took = closing.join().unwrap();
    // Well before the 2 s deadline: the byte limit ended it.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let written = sender.join().unwrap();
    assert!(
        written >= LINGER_LIMIT,
        "stopped after the peer sent only {written} bytes"
    );
}

#[test]
fn close_graceful_ends_the_connection_even_with_a_duplicate_kept() {
    let (ours, mut peer) = unix_pair();
    // The app kept `gunicorn.socket`: without the final shutdown the connection would
    // stay open through it, and the peer's writes would only fill the buffer and block.
    let _kept = UnixStream::from(ours.dup_socket().unwrap());
    let closing = close_in_background(ours);
    let started = Instant::now();
    let chunk = pattern(4096);
    let err = loop {
        if let Err(e) = peer.write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    closing.join().unwrap();
}

#[test]
fn close_now_shuts_both_directions_even_with_a_duplicate_kept() {
    let (ours, mut peer) = unix_pair();
    let kept = UnixStream::from(ours.dup_socket().unwrap());
    let started = Instant::now();
    close_now(ours);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(read_to_eof(&mut peer), b"");
    assert!(peer_write_fails(&mut peer));
    let err = (&kept).write_all(b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn linger_start_shuts_the_write_side_and_sets_the_deadline() {
    let (mut ours, mut peer) = unix_pair();
    let before = Instant::now();
    let linger = Linger::start(&mut ours).expect("an open socket can linger");
    let after = Instant::now();
    assert!(linger.until >= before + LINGER && linger.until <= after + LINGER);
    // Our write side is shut: the peer reads EOF while our read side still works.
    assert_eq!(read_to_eof(&mut peer), b"");
    peer.write_all(b"x").unwrap();
    let mut ours = ours;
    ours.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(ours.read(&mut [0u8; 4]).unwrap(), 1);
}

#[test]
fn linger_absorb_counts_down_to_the_limit() {
    let (mut ours, _peer) = unix_pair();
    let mut linger = Linger::start(&mut ours).unwrap();
    assert!(linger.absorb(0));
    assert!(linger.absorb(LINGER_LIMIT - 2));
    assert!(linger.absorb(1), "one byte is still allowed");
    assert!(!linger.absorb(1), "the limit is reached");
    assert!(!linger.absorb(100), "and stays reached");

    let mut other = Linger::start(&mut ours).unwrap();
    assert!(
        !other.absorb(LINGER_LIMIT * 3),
        "more than the limit at once"
    );
}

#[test]
fn linger_expires_at_its_deadline() {
    let (mut ours, _peer) = unix_pair();
    let linger = Linger::start(&mut ours).unwrap();
    assert!(!linger.expired(Instant::now()));
    assert!(!linger.expired(linger.until - Duration::from_millis(1)));
    assert!(linger.expired(linger.until));
    assert!(linger.expired(linger.until + Duration::from_secs(1)));
}

#[test]
fn a_connection_reset_by_the_peer_cannot_linger_and_closes_at_once() {
    let (ours, peer) = tcp_pair();
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer); // RST
                // Wait for the reset to land.
    let mut probe = ours;
    super::eventually("the reset", || match probe.try_read(&mut [0u8; 8]) {
        Ok(None) => None,
        _ => Some(()),
    });
    assert!(
        Linger::start(&mut probe).is_none(),
        "a reset socket lingered"
    );
    let started = Instant::now();
    close_graceful(probe, None);
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[test]
fn close_graceful_returns_at_once_when_the_peer_is_already_gone() {
    let (ours, peer) = unix_pair();
    drop(peer);
    let started = Instant::now();
    close_graceful(ours, None);
    assert!(started.elapsed() < Duration::from_millis(500));
}
