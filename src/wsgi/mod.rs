//! The WSGI (PEP 3333) bridge: the environ, `wsgi.input`, `start_response`, `write`,
//! `wsgi.early_hints`, calling the app and iterating its result, and loading it.
//!
//! It reads the body and writes the response only through the request's `http::Exchange`
//! (`BodySource`, `ResponseSink`): it never calls a socket function, frames no bytes, and
//! does not know which protocol or transport carries the request (`make lint` checks this).
//! It does not accept connections, parse heads or manage processes.

pub mod app;
pub mod call;
pub mod environ;
pub mod input;
pub mod response;
