//! The taskflow command line's library: the local stack (two moto servers, the template deployed
//! onto both, and a host that runs the real function binaries over the Lambda Runtime API) and the
//! client operations the CLI and the end-to-end tests use against any stack.

pub mod attach;
pub mod auth;
pub mod catalogue;
pub mod client;
pub mod console;
pub mod cost;
pub mod dlq;
pub mod emulator;
pub mod gateway;
pub mod host;
pub mod local;
pub mod operator;
pub mod operations;
pub mod paths;
pub mod plan;
pub mod process;
pub mod schedules;
pub mod sources;
pub mod stack;
pub mod trace;
pub mod xray;
pub mod otlp;
