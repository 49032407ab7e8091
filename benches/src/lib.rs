//! Benchmarks live in the scripts beside this crate; see README.md.
