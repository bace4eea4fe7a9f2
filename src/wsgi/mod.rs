//! wsgi (being written).
