//! violet: push ACP extension packages to a registry and publish their catalog resources.
//!
//! The pipeline, module by module:
//! `package` (read packages by streaming) → `plan` (what to push where) → `scheduler` (one
//! upload per blob and destination, tags after graphs) → `registry` (the OCI distribution client)
//! → `platform` (catalog CRs) → `output` (text, JSON, progress).
//!
//! The way back, building packages on the connected side: `artifact` (what a bundle image or
//! chart declares) → `pull` (image graphs, platform selection) → `build` (streams every blob from
//! the source registry) → `writer` (the archive, in the order readers rely on).

pub mod args;
pub mod artifact;
pub mod build;
pub mod cli;
pub mod commands;
pub mod digest;
pub mod error;
pub mod outcome;
pub mod output;
pub mod package;
pub mod plan;
pub mod platform;
pub mod pull;
pub mod registry;
pub mod scheduler;
pub mod signature;
#[cfg(feature = "testkit")]
pub mod synth;
pub mod writer;
