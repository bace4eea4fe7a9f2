//! The gthread worker (`-k gthread`, or `sync` with `--threads` above 1): an event loop on
//! the worker's main thread owns every connection until a request is complete, and
//! `threads` Python threads only run the app. Idle keep-alive connections and slow clients
//! therefore never occupy a thread, and a worker whose threads are all busy stops
//! accepting, leaving new connections to a worker that can serve them.
//!
//! This module wires the two halves together; `conn` parses, `event_loop` does the I/O,
//! `pool` runs the app.

mod conn;
mod event_loop;
mod pool;

use pyo3::prelude::*;

use super::base::WorkerState;
use super::signals::WorkerSignals;

pub fn run(py: Python<'_>, st: &WorkerState<'_>, signals: &WorkerSignals) -> PyResult<()> {
    let threads = st.ctx.cfg.threads.max(1) as usize;
    let pcfg = super::sync::parser_config(st.ctx.cfg);
    let pool = pool::Pool::new()?;
    let mut lp = event_loop::EventLoop::new(st, &pool, signals, &pcfg, threads)?;
    py.detach(|| {
        std::thread::scope(|scope| {
            for i in 0..threads {
                let (pool, pcfg) = (&pool, &pcfg);
                std::thread::Builder::new()
                    .name(format!("ferrocorn-app-{i}"))
                    .spawn_scoped(scope, move || pool::app_thread(st, pool, pcfg))
                    .expect("spawning an app thread");
            }
            let result = lp.run();
            // Threads finish the requests they hold (a quick stop still lets them answer,
            // as Gunicorn's interpreter exit joins its pool threads), then return.
            pool.close();
            result
        })
    })
}
