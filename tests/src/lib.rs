//! Shared helpers of crux's cross-crate tests: random graph generators
//! (proptest strategies) for the differential tests, and the Monte Carlo
//! tolerances of the statistical tests.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod differential;
pub mod fuzz;
pub mod gen;
pub mod kgen;
pub mod kill;
pub mod stats;
