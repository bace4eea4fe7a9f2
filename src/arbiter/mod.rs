//! arbiter (being written).
