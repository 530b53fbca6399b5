//! The graph-IR text parser: never panics; what parses verifies and round-trips (see `crux_tests::fuzz::graph_text`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| crux_tests::fuzz::graph_text(data));
