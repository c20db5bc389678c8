//! The dumper-host library: the pieces `main.rs` wires together, public for the integration tests.

pub mod archive;
pub mod codec;
pub mod crypt;
pub mod dump;
pub mod heap;
pub mod host;
pub mod manifest;
mod maria_swap;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod probe;
pub mod probe_service;
mod reply;
pub mod restore;
pub mod server;
pub mod storage;
pub mod test_hooks;
pub mod worker;
