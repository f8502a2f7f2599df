//! The integration tests, one binary (`cargo test --test it`).

mod artifacts;
mod scenarios;
mod support;
