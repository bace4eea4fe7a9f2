//! Sans-IO HTTP/1.1 codec implementing Gunicorn 27's request parsing rules.
#![forbid(unsafe_code)]
