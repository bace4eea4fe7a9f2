//! Unit tests of the config layer.
