//! violet: push ACP extension packages to a registry and publish their catalog resources.
//!
//! The pipeline, module by module:
//! `package` (read packages by streaming) → `transfer` (`plan`: what to push where;
//! `scheduler`: one read per blob for every destination, tags after graphs; `copy`: registry to
//! registry) → `registry` (the OCI distribution client) → `platform` (catalog CRs) → `output`
//! (text, JSON, progress).
//!
//! The way back, building packages on the connected side: `artifact` (what a bundle image or
//! chart declares) → `transfer::pull` (image graphs, platform selection) → `transfer::build`
//! (streams every blob from the source registry) → `transfer::writer` (the archive, in the order
//! readers rely on).

pub mod args;
pub mod artifact;
mod civil;
pub mod cli;
pub mod commands;
pub mod cosign;
pub mod digest;
pub mod error;
pub mod outcome;
pub mod output;
pub mod package;
pub mod platform;
pub mod registry;
pub mod signature;
#[cfg(feature = "testkit")]
pub mod synth;
pub mod transfer;

// The engine's modules keep their short paths (`crate::plan`, `crate::pull`, ...).
pub use transfer::{build, plan, pull, scheduler, writer};
