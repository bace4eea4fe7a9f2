//! The Python side of the gthread worker: a queue of complete requests, the threads that
//! run the app on them, and the way back to the event loop (a queue plus an eventfd that
//! wakes it). Threads hold the GIL only inside `handle_request`'s Python calls; waiting for
//! work and writing responses happen without it. This module never polls or accepts.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::{Condvar, Mutex};

use ferrocorn_h1::{ParserConfig, RequestHead};
use nix::sys::eventfd::{EfdFlags, EventFd};
use pyo3::prelude::*;

use super::conn::Connection;
use crate::workers::base::WorkerState;
use crate::workers::request::{self, Conn};

pub struct Job {
    pub conn: Box<Connection>,
    pub head: Box<RequestHead>,
    pub leftover: Vec<u8>,
    /// Answer with `Connection: close` (keep-alive off, too many kept connections, stopping).
    pub close: bool,
}

pub enum Done {
    /// The connection may carry another request; these bytes already arrived for it.
    KeepAlive(Box<Connection>, Vec<u8>),
    Close(Box<Connection>),
    /// The app or a hook raised SystemExit (or the worker must otherwise stop): the worker
    /// exits with it, as Gunicorn's gthread worker does.
    Fatal(PyErr),
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

pub struct Pool {
    queue: Mutex<Queue>,
    ready: Condvar,
    done: Mutex<Vec<Done>>,
    /// Written by a thread when it finishes a request; the loop polls it.
    pub wake: EventFd,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    pub fn new() -> std::io::Result<Self> {
        Ok(Pool {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            done: Mutex::new(Vec::new()),
            wake: EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?,
        })
    }

    pub fn submit(&self, job: Job) {
        locked(&self.queue).jobs.push_back(job);
        self.ready.notify_one();
    }

    /// No more jobs: threads finish what is queued and return.
    pub fn close(&self) {
        locked(&self.queue).closed = true;
        self.ready.notify_all();
    }

    /// Block (without the GIL) until there is work; false once closed and empty.
    fn wait_for_work(&self) -> bool {
        let mut q = locked(&self.queue);
        loop {
            if !q.jobs.is_empty() {
                return true;
            }
            if q.closed {
                return false;
            }
            q = self.ready.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn try_next(&self) -> Option<Job> {
        locked(&self.queue).jobs.pop_front()
    }

    fn finish(&self, done: Done) {
        locked(&self.done).push(done);
        let _ = self.wake.write(1);
    }

    /// What the threads finished since the last call.
    pub fn take_done(&self) -> Vec<Done> {
        let _ = self.wake.read();
        std::mem::take(&mut *locked(&self.done))
    }

    pub fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

/// One app thread: serve complete requests until the pool closes.
///
/// A job is claimed only by a thread that already holds the GIL, and that thread goes on
/// to the next queued job without letting go of it. A thread that took a job and then
/// waited for the GIL would hold that request hostage behind every other thread (the GIL is
/// not fair); this way requests run in arrival order, and the GIL changes hands only when
/// the app itself blocks or the queue is empty.
pub fn app_thread(st: &WorkerState<'_>, pool: &Pool, pcfg: &ParserConfig) {
    while pool.wait_for_work() {
        Python::attach(|py| {
            while let Some(job) = pool.try_next() {
                pool.finish(serve(py, st, pcfg, job));
            }
        });
    }
}

fn serve(py: Python<'_>, st: &WorkerState<'_>, pcfg: &ParserConfig, job: Job) -> Done {
    let Job {
        conn,
        head,
        leftover,
        close,
    } = job;
    let listener = &st.ctx.listeners[conn.listener];
    let rconn = Conn {
        stream: conn.stream.clone(),
        peer: conn.peer.clone(),
        listener,
        proxy: conn.proxy_info.clone(),
    };
    // A bug on the request path must cost one connection, never the worker.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        request::handle_request(py, st, pcfg, &rconn, *head, leftover, close)
    }));
    match outcome {
        Ok(Ok(Some(rest))) => Done::KeepAlive(conn, rest),
        Ok(Ok(None)) => Done::Close(conn),
        Ok(Err(err)) => Done::Fatal(err),
        Err(panic) => {
            request::log_request_panic(panic);
            Done::Close(conn)
        }
    }
}
