//! The event loop's side of the hub: each new request becomes a task running the app, and
//! each wake-up resolves the futures a `receive()` or `send()` waits on. Runs on the loop
//! thread with the GIL, once per batch of events, however many the I/O thread queued.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;

use super::bridge::Bridge;
use super::receive::{build, take_next, Receive};
use super::scope;
use super::send::{HttpSend, WsSend};
use crate::hooks::{self, objects};
use crate::http::{CallKind, HubEvent, NewCall, Session};

/// A new request: its scope, `receive` and `send`, the `pre_request` hook, and a task
/// running the app.
fn start_call(bridge: &Arc<Bridge>, py: Python<'_>, call: NewCall) -> PyResult<()> {
    let NewCall {
        request,
        kind,
        session,
    } = call;
    let scope = scope::build(py, &bridge.scope, &request, &kind)?;
    let receive = Py::new(
        py,
        Receive::new(session.clone(), bridge.event_loop.clone_ref(py)),
    )?;
    let send = match kind {
        CallKind::Http => {
            let hook_request = if bridge.pre_request.is_some() || bridge.post_request.is_some() {
                let obj = objects::request_object(py, &bridge.serving, &request, py.None())?;
                if let Some(hook) = &bridge.pre_request {
                    if let Err(e) = hook.call1(py, (bridge.worker.clone_ref(py), obj.clone_ref(py)))
                    {
                        hooks::log_hook_error(py, "pre_request", &e);
                    }
                }
                bridge.post_request.as_ref().map(|_| (obj, request.clone()))
            } else {
                None
            };
            Py::new(
                py,
                HttpSend::new(session.clone(), bridge.clone(), hook_request),
            )?
            .into_any()
        }
        CallKind::WebSocket { .. } => {
            Py::new(py, WsSend::new(session.clone(), bridge.clone()))?.into_any()
        }
    };
    (bridge.on_request)(py);
    let coro = bridge
        .run_call
        .call1(py, (bridge.app.clone_ref(py), scope, receive, send))?;
    let task = bridge.create_task.call1(py, (coro,))?;
    session.state().task = Some(task);
    Ok(())
}

/// Resolve what the session's waiters wait for, if it happened. A waiter whose future is
/// already done (cancelled by a timeout around `receive()`) is dropped without taking a
/// message, which stays queued for the next `receive()`.
fn wake(py: Python<'_>, session: &Arc<Session>) -> PyResult<()> {
    let (reader, sender) = {
        let mut st = session.state();
        Session::woken(&mut st);
        let reader = st.recv_waiter.take();
        let sender = if st.send_waiter.is_some() && (!session.over_high_water() || st.client_gone) {
            st.send_waiter.take()
        } else {
            None
        };
        (reader, sender)
    };
    if let Some(fut) = reader {
        let live = !fut
            .bind(py)
            .call_method0(intern!(py, "done"))?
            .is_truthy()?;
        let next = if live {
            let mut st = session.state();
            let next = take_next(session, &mut st);
            if next.is_none() {
                // Still nothing for it: it keeps waiting.
                st.recv_waiter = Some(fut.clone_ref(py));
            }
            next
        } else {
            None
        };
        if let Some(next) = next {
            let msg = build(py, next)?;
            fut.bind(py)
                .call_method1(intern!(py, "set_result"), (msg,))?;
        }
    }
    if let Some(fut) = sender {
        let fut = fut.bind(py);
        if !fut.call_method0(intern!(py, "done"))?.is_truthy()? {
            fut.call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
    }
    Ok(())
}

/// Handle a batch of hub events.
pub fn handle(py: Python<'_>, bridge: &Arc<Bridge>, events: Vec<HubEvent>) -> PyResult<()> {
    for event in events {
        match event {
            HubEvent::Call(call) => {
                let session = call.session.clone();
                if let Err(e) = start_call(bridge, py, *call) {
                    // The scope could not be built or the app not called: answer 500.
                    crate::telemetry::error_log::error(&format!(
                        "Error in ASGI application\n{}",
                        crate::wsgi::app::format_traceback(py, &e)
                    ));
                    session.send(crate::http::Outgoing::Done { failed: true });
                }
            }
            // One failing event must not strand the rest of the batch.
            HubEvent::Wake(session) => {
                if let Err(e) = wake(py, &session) {
                    e.print(py);
                }
            }
            HubEvent::Cancel(session) => {
                let task = session.state().task.take();
                if let Some(task) = task {
                    let task = task.bind(py);
                    let cancel = task.call_method0(intern!(py, "done")).and_then(|d| {
                        if d.is_truthy()? {
                            Ok(())
                        } else {
                            task.call_method0(intern!(py, "cancel")).map(drop)
                        }
                    });
                    if let Err(e) = cancel {
                        e.print(py);
                    }
                }
            }
        }
    }
    Ok(())
}
