//! The integration tests, one binary (`cargo test --test it`).

mod artifacts;
mod bad_input;
mod cli;
mod demo;
mod feed;
mod history;
mod history_serve;
mod lifecycle;
mod metrics;
mod page;
mod prometheus;
mod reliability;
mod remote;
mod roots;
mod run;
mod scenarios;
mod serve;
mod shipped_configs;
mod support;
mod terraform;
mod tls;
