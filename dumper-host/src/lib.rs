//! The dumper-host library: the pieces `main.rs` wires together, public for the integration tests.

pub mod dump;
pub mod manifest;
pub mod outbound;
pub mod probe;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod worker;
