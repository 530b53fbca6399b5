//! Philox (being written).
