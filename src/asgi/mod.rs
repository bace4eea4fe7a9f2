//! The ASGI bridge: turns a request the connection parsed into the app's scope, `receive`
//! and `send`, and the app's messages back into `http::Outgoing` for the connection to
//! frame and write. It runs on the event-loop thread and never blocks it.
//!
//! Owns: the scope, the ASGI message state machines and their errors, the tasks of app
//! calls and the futures they wait on. Must not: touch a socket, parse or frame bytes
//! (`conn` and the worker's connection tasks do), or block the event loop.

pub mod awaitable;
pub mod bridge;
pub mod dispatch;
pub mod receive;
pub mod scope;
pub mod send;

pub use bridge::Bridge;
pub use dispatch::handle;
pub use scope::ScopeBase;
