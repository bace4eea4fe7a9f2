//! Crate-wide error type and the single conversion point to Python exceptions.
