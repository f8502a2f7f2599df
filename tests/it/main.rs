//! The integration tests, one binary (`cargo test --test it`).

mod artifacts;
mod bad_input;
mod cli;
mod history;
mod lifecycle;
mod page;
mod prometheus;
mod reliability;
mod run;
mod scenarios;
mod serve;
mod support;
mod terraform;
mod tls;
