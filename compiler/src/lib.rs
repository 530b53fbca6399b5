//! crux-compiler
