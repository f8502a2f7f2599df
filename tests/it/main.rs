//! The integration tests, one binary (`cargo test --test it`).

mod artifacts;
mod bad_input;
mod cli;
mod lifecycle;
mod page;
mod prometheus;
mod reliability;
mod remote;
mod run;
mod scenarios;
mod serve;
mod support;
mod terraform;
mod tls;
