//! Shared helpers of crux's cross-crate tests: random graph generators
//! (proptest strategies) used by the optimiser differential tests now and by
//! the backend differential tests later.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod gen;
pub mod kgen;
