//! The transfer engine: what moves image graphs into registries.
//!
//! * `plan`: which images of which packages go to which destination references (no I/O).
//! * `scheduler`: package → registries. Resolve (`HEAD` per repository and blob) → transfer (one
//!   read per blob, fanned out to every destination that lacks it; mounts inside a registry) →
//!   commit (child manifests, then the tag, only over a complete graph) → parity (every tag read
//!   back at every destination). Used by `push`. `body`: the upload bodies (hashed reads from a
//!   package, fan-out to several destinations); `report`: what a push reports.
//! * `source`: where a blob's bytes are read ([`source::Origin`]: a package entry, a source
//!   registry's repository), every body checked against its digest; the one opener of all paths.
//! * `copy`: registry → registry (`mirror`): images resolved at the source, then the same
//!   scheduler run with the source registry as the blobs' origin, and the mirror's report view.
//! * `exit`: the one rule that folds the outcomes of many images (and packages, catalog writes,
//!   deletions) into one process exit code.
//!
//! Building a package from registries (`create`, `package`) runs the other way:
//! * `pull`: image graphs from a registry, `--platforms` selection, the digest-checked download
//!   that resumes with `Range` (under `source`'s registry origin).
//! * `build`: every image of the package resolved and streamed, from its [`source::Origin`] (a
//!   registry or a directory store), into the writer; `ahead`: what is read ahead of the writer.
//! * `referrers`: signatures, attestations, SBOMs and OCI referrers found next to each image (and,
//!   at a destination without the referrers API, the fallback tag that lists them).
//! * `writer`: the package sink (tgz / tar / tar.zst / directory, `.partial` then rename).

mod ahead;
mod body;
pub mod build;
pub mod copy;
pub mod differential;
pub mod exit;
pub mod inventory;
pub mod plan;
pub mod preflight;
pub mod pull;
pub mod referrers;
pub mod report;
pub mod scheduler;
pub mod source;
pub mod writer;
