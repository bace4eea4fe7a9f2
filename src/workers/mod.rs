//! workers (being written).
