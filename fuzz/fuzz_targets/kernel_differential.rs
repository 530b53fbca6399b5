//! Interpreter == Cranelift, bit for bit, on the random valid kernel the input seeds (see `crux_tests::fuzz::kernel_differential`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| crux_tests::fuzz::kernel_differential(data));
