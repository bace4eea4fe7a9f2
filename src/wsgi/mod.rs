//! The WSGI (PEP 3333) bridge: turning a parsed request into an environ, the `wsgi.input`
//! body stream, `start_response` and the response writer, and calling the app.
//!
//! It owns everything a request touches while Python is involved; it does not accept
//! connections, parse request heads or manage processes.

pub mod app;
pub mod environ;
pub mod input;
pub mod response;
