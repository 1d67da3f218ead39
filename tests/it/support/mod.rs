//! Test support: `TestContext`, real registries, token server, fault proxy, platform emulator.
pub mod registry;
pub mod token_server;
