//! Synthetic packages for tests, demos and benchmarks.
