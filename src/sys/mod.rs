//! sys (being written).
