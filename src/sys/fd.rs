//! Descriptors whose ownership the type system cannot see on its own: numbers handed over
//! by Python (`socket.detach()`, `file.fileno()`) and the log sink's descriptor that is never
//! closed. Each function here turns such a number into an owned or borrowed descriptor
//! under a rule it can actually check or enforce, so the rest of the crate never holds a
//! `BorrowedFd` made from a bare integer.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use pyo3::prelude::*;

/// A new descriptor for the same open file as the number `fd`, owned by the caller
/// (close-on-exec). For descriptors some other owner (a Python file object) keeps: the
/// duplicate stays valid however that owner closes or reuses its number meanwhile.
pub fn dup_raw(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) reads and writes no memory of ours; a number that is
    // not an open descriptor only makes it fail with EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just created by fcntl and nothing else refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Detach a Python socket object from its descriptor (`sock.detach()`) and take that
/// descriptor. None when the object had none left (closed or already detached). Only an
/// object of exactly the standard library's `socket.socket` class is accepted (TypeError
/// otherwise): its `detach` is the one whose promise the ownership below rests on.
pub fn detach_socket(sock: &Bound<'_, PyAny>) -> PyResult<Option<OwnedFd>> {
    let py = sock.py();
    let class = py
        .import(pyo3::intern!(py, "socket"))?
        .getattr(pyo3::intern!(py, "socket"))?;
    if !sock.get_type().is(&class) {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "detach_socket takes a socket.socket",
        ));
    }
    let fd: RawFd = sock.call_method0(pyo3::intern!(py, "detach"))?.extract()?;
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: `socket.detach()` gives up the descriptor without closing it: from now on the
    // socket object no longer refers to it and we are its only owner.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// A descriptor that stays open for the rest of the process: it is never closed, and the
/// open file behind it changes only through `retarget` (dup3, atomic for concurrent
/// writers). Lock-free writers, forked children included, can therefore borrow it at any
/// time.
#[derive(Debug)]
pub struct StableFd(RawFd);

impl StableFd {
    /// Keep `fd` open for good.
    pub fn new(fd: OwnedFd) -> Self {
        StableFd(fd.into_raw_fd())
    }

    pub fn raw(&self) -> RawFd {
        self.0
    }

    /// Put the open file of `from` behind this number.
    pub fn retarget(&self, from: impl AsFd) -> io::Result<()> {
        // SAFETY: the number came from an OwnedFd that `new` consumed and nothing ever
        // closes; ManuallyDrop keeps this temporary owner from closing it either.
        let mut owned = std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(self.0) });
        nix::unistd::dup3(from, &mut owned, nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(())
    }
}

impl AsFd for StableFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is never closed (see the type's contract), so it outlives
        // any borrow of `self`.
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn dup_raw_survives_the_original_closing() {
        let mut file = tempfile();
        file.write_all(b"hello").unwrap();
        let dup = dup_raw(std::os::fd::AsRawFd::as_raw_fd(&file)).unwrap();
        drop(file);
        let mut again = std::fs::File::from(dup);
        again.rewind().unwrap();
        let mut text = String::new();
        again.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
    }

    #[test]
    fn dup_raw_of_a_closed_number_is_ebadf() {
        let err = dup_raw(-1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn stable_fd_keeps_its_number_across_retargets() {
        let a = tempfile();
        let b = tempfile();
        let stable = StableFd::new(OwnedFd::from(a.try_clone().unwrap()));
        let number = stable.raw();
        stable.retarget(&b).unwrap();
        assert_eq!(stable.raw(), number);
        nix::unistd::write(stable.as_fd(), b"x").unwrap();
        let mut b = b;
        b.rewind().unwrap();
        let mut text = String::new();
        b.read_to_string(&mut text).unwrap();
        assert_eq!(text, "x");
    }

    #[test]
    fn detach_socket_takes_only_a_standard_socket() {
        Python::attach(|py| {
            let socket = py.import("socket").unwrap();
            let sock = socket.getattr("socket").unwrap().call0().unwrap();
            let fd = detach_socket(&sock)
                .unwrap()
                .expect("an open socket has a descriptor");
            assert!(std::os::fd::AsRawFd::as_raw_fd(&fd) >= 0);
            // Detached already: nothing left to take.
            assert!(detach_socket(&sock).unwrap().is_none());
            let other = py.eval(c"type('S', (), {'detach': lambda self: 0})()", None, None);
            let err = detach_socket(&other.unwrap()).unwrap_err();
            assert!(err.is_instance_of::<pyo3::exceptions::PyTypeError>(py));
        });
    }

    fn tempfile() -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "ferrocorn-fd-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        f
    }
}
