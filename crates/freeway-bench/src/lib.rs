//! Criterion micro-benchmarks of freeway's hot paths; the code is in `benches/`.
//!
//! `cargo bench -p freeway-bench` runs them; load benchmarks over HTTP are the scripts in
//! `bench/` at the repository root.
