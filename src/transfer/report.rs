//! What a push reports: per image (pushed, unchanged, failed, with the error's class), blob
//! counts and bytes, and the parity of every tag across destinations.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::ExitCode;
use crate::plan::ImagePlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageResult {
    /// The tag was written (new or moved).
    Pushed,
    /// The tag already pointed at this digest and every blob was present.
    Unchanged,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub source: String,
    pub destination: String,
    pub digest: Digest,
    pub result: ImageResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub exit_code: Option<ExitCode>,
}

impl ImageReport {
    /// The report of an image not (yet) confirmed: failed until a phase says otherwise.
    pub(super) fn pending(img: &ImagePlan) -> Self {
        Self {
            source: img.source.clone(),
            destination: img.destination.clone(),
            digest: img.digest.clone(),
            result: ImageResult::Failed,
            error: None,
            exit_code: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BlobCounts {
    pub uploaded: usize,
    pub mounted: usize,
    pub skipped: usize,
    pub failed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub images: Vec<ImageReport>,
    pub blobs: BlobCounts,
    pub bytes_uploaded: u64,
    /// Bytes sent again after a retry or in a further pass over a compressed package; not part
    /// of `bytes_uploaded`.
    pub bytes_resent: u64,
    pub seconds: f64,
    /// Digest -> package (index into the plan) whose bytes were uploaded for it.
    #[serde(skip)]
    pub uploaded_from: HashMap<Digest, usize>,
    /// Blobs that did not arrive.
    #[serde(skip)]
    pub failed_blobs: HashSet<Digest>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.images
            .iter()
            .filter(|i| i.result == ImageResult::Failed)
            .count()
    }

    /// The exit code for the whole run: success, the shared class of every failure, or 1.
    pub fn exit_code(&self) -> ExitCode {
        crate::transfer::exit::fold(
            self.images
                .iter()
                .filter(|i| i.result == ImageResult::Failed)
                .map(|i| i.exit_code.unwrap_or(ExitCode::Failure)),
        )
    }
}

/// Whether a tag resolves to the same digest at every destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Parity {
    Ok,
    /// Some destination resolves the tag to another digest.
    Mismatch,
    /// Some destination does not have it (or could not be asked).
    Missing,
}

impl Parity {
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::Ok => "OK",
            Parity::Mismatch => "MISMATCH",
            Parity::Missing => "MISSING",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ParityCell {
    /// `host/repository:tag` at this destination.
    pub destination: String,
    /// What the reference resolves to there (none: absent or unanswered).
    pub digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The class of `error`, for the run's exit code.
    #[serde(skip)]
    pub code: Option<ExitCode>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParityRow {
    /// The reference as recorded in the package.
    pub image: String,
    /// The package's digest.
    pub expected: Digest,
    pub status: Parity,
    pub destinations: Vec<ParityCell>,
}
