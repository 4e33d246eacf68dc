//! Acceptance tests live in `main.rs` (the `acceptance` test target); this
//! empty library only gives the directory a package.
