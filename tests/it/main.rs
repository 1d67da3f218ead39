//! The one integration-test binary. `support/` starts real servers (docker-registry, token server,
//! fault proxy, platform emulator); each other module tests one feature end to end.

#[macro_use]
mod support;

mod cli;
mod create_package;
mod differential;
mod list_gc;
mod mirror;
mod mutation;
mod package_read;
mod platform;
mod push;
mod push_multi;
mod push_platform;
mod recovery;
mod referrers;
mod registry_client;
mod release;
mod round_trip;
mod supply_chain;
