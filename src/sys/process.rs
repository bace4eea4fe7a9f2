//! fork, process titles and pid helpers.

use pyo3::prelude::*;

pub enum Forked {
    Parent(i32),
    Child,
}

/// Fork through CPython's own `os.fork()`, so the interpreter's fork protocol runs
/// (`PyOS_BeforeFork`/`AfterFork_*`, `os.register_at_fork` callbacks, lock resets) exactly as
/// under Gunicorn. The master is single-threaded when it calls this.
///
/// Every signal is blocked across the fork. The parent unblocks at once; the child stays
/// blocked until it has installed its own handlers and wakeup pipe (`unblock_signals`), so a
/// signal sent to a brand-new worker is neither swallowed by the master's handlers it
/// inherited nor written into the master's wakeup pipe.
pub fn fork(py: Python<'_>) -> PyResult<Forked> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), Some(&mut old))
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    let forked = py.import("os").and_then(|os| os.call_method0("fork"));
    let pid: i32 = match forked.and_then(|p| p.extract()) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            return Err(e);
        }
    };
    if pid == 0 {
        BLOCKED_AT_FORK.with(|b| b.set(Some(old)));
        Ok(Forked::Child)
    } else {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        Ok(Forked::Parent(pid))
    }
}

thread_local! {
    static BLOCKED_AT_FORK: std::cell::Cell<Option<nix::sys::signal::SigSet>> =
        const { std::cell::Cell::new(None) };
}

/// In a forked child: restore the signal mask the parent had before `fork`.
pub fn unblock_signals() {
    if let Some(old) = BLOCKED_AT_FORK.with(|b| b.take()) {
        let _ = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&old),
            None,
        );
    }
}

/// Set the process title as Gunicorn does: through `setproctitle` when it is installed,
/// otherwise the kernel's 15-byte comm name (visible in `ps -o comm`, `top`).
pub fn set_title(py: Python<'_>, title: &str) {
    let full = format!("ferrocorn: {title}");
    if let Ok(m) = py.import("setproctitle") {
        if m.call_method1("setproctitle", (full.as_str(),)).is_ok() {
            return;
        }
    }
    let _ =
        nix::sys::prctl::set_name(&std::ffi::CString::new(truncate(&full, 15)).unwrap_or_default());
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().filter(|c| *c != '\0').take(n).collect()
}

/// Ask the kernel to send `sig` to this process when its parent dies, then check the parent
/// is still `expected_parent`: it may have died between fork and the request, and then no
/// signal will ever come. Dirty processes use this so they never outlive what spawned them.
pub fn die_with_parent(
    sig: nix::sys::signal::Signal,
    expected_parent: i32,
) -> std::io::Result<bool> {
    nix::sys::prctl::set_pdeathsig(sig)?;
    Ok(getppid() == expected_parent)
}

/// `ferrocorn._ferrocorn.set_parent_death_signal(signum, parent)`: `die_with_parent` for
/// Python-forked children (dirty workers). False when the parent is already gone.
#[pyfunction]
pub fn set_parent_death_signal(signum: i32, parent: i32) -> PyResult<bool> {
    let sig = nix::sys::signal::Signal::try_from(signum)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    die_with_parent(sig, parent).map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))
}

/// `ferrocorn._ferrocorn.set_proc_title(title)`: `set_title` for Python-forked children.
#[pyfunction]
pub fn set_proc_title(py: Python<'_>, title: &str) {
    set_title(py, title);
}

pub fn getpid() -> i32 {
    nix::unistd::getpid().as_raw()
}

pub fn getppid() -> i32 {
    nix::unistd::getppid().as_raw()
}

/// Take ownership of a listening socket handed to us by number (`fd://N`, systemd, USR2).
pub fn adopt_socket(fd: i32) -> std::io::Result<socket2::Socket> {
    use std::os::fd::FromRawFd;
    // Refuse anything that is not an open socket before claiming it: SO_TYPE fails with
    // EBADF or ENOTSOCK otherwise, so we never wrap (and later close) an unrelated fd.
    let borrowed_ok = {
        let mut ty: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `ty`, a properly sized c_int.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                (&mut ty as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        rc == 0
    };
    if !borrowed_ok {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is an open socket (checked above) that the user explicitly handed to this
    // process; from here on the Socket is its only owner.
    Ok(unsafe { socket2::Socket::from_raw_fd(fd) })
}

/// Test helper: run `child` in a forked child process that then leaves with `_exit(0)`,
/// and return the child's pid.
#[cfg(test)]
pub fn fork_and_run(child: impl FnOnce()) -> nix::unistd::Pid {
    use nix::unistd::{fork, ForkResult};
    // SAFETY: fork in a process with other threads leaves the child with only this thread;
    // the child runs `child` and leaves with _exit. The one caller (a telemetry test, holding
    // the global test guard so no other test logs) formats one line and writes it through the
    // lock-free sink: the only lock it can meet is malloc's, which glibc re-initialises in
    // the child through its own fork handlers.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            child();
            // SAFETY: _exit ends the child at once, skipping atexit handlers and destructors
            // that belong to the parent's copy of the process.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    }
}

/// Drop the worker's privileges as Gunicorn's `set_owner_process`: the group first (with
/// the user's supplementary groups when `initgroups` is set and the user has a name), then
/// the user. uid and gid 0 are never set explicitly, and an unchanged id is left alone.
pub fn set_owner(uid: u32, gid: u32, initgroups: bool) -> std::io::Result<()> {
    use nix::unistd::{getgid, getuid, setgid, setuid, Gid, Uid, User};
    if gid != 0 {
        let name = if initgroups && uid != 0 {
            User::from_uid(Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name)
        } else {
            None
        };
        match name {
            Some(name) => {
                let cname = std::ffi::CString::new(name)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                nix::unistd::initgroups(&cname, Gid::from_raw(gid))?;
                setgid(Gid::from_raw(gid))?;
            }
            None if getgid().as_raw() != gid => setgid(Gid::from_raw(gid))?,
            None => {}
        }
    }
    if uid != 0 && getuid().as_raw() != uid {
        setuid(Uid::from_raw(uid))?;
    }
    Ok(())
}

/// chown a path the master created (unix socket file) to the workers' user and group.
pub fn chown_path(path: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )?;
    Ok(())
}

/// Detach from the terminal as Gunicorn's `util.daemonize`: fork (the parent exits 0),
/// setsid, fork again, umask 022, and stdin/stdout/stderr on /dev/null. With
/// `inherit_stdio`, stdin still goes to /dev/null but stdout and stderr are only redirected
/// when they are terminals (so a supervisor capturing them keeps them). The forks go
/// through CPython, like every fork of ours.
pub fn daemonize(py: Python<'_>, inherit_stdio: bool) -> PyResult<()> {
    let os = py.import("os")?;
    let fork_and_leave_parent = || -> PyResult<()> {
        let pid: i32 = os.call_method0("fork")?.extract()?;
        if pid != 0 {
            os.call_method1("_exit", (0,))?;
        }
        Ok(())
    };
    fork_and_leave_parent()?;
    os.call_method0("setsid")?;
    // The second fork leaves a process that is not a session leader, so it can never
    // acquire a controlling terminal again.
    fork_and_leave_parent()?;
    os.call_method1("umask", (0o22,))?;
    let null: i32 = os
        .call_method1("open", ("/dev/null", os.getattr("O_RDWR")?))?
        .extract()?;
    let isatty = |fd: i32| -> bool {
        os.call_method1("isatty", (fd,))
            .and_then(|r| r.extract())
            .unwrap_or(false)
    };
    for fd in 0..3 {
        if fd == 0 || !inherit_stdio || isatty(fd) {
            os.call_method1("dup2", (null, fd))?;
        }
    }
    if null > 2 {
        os.call_method1("close", (null,))?;
    }
    Ok(())
}
