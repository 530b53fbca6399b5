//! crux benchmarks. The programs live in `src/bin/`: each is a release-mode
//! program that measures one thing and reports ratios against a baseline
//! taken in the same process. [`handwritten`] holds the plain-Rust
//! baselines, [`report`] what every program shares.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod handwritten;
pub mod report;
