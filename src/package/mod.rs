//! Package reading: containers (tar, tgz, tar.zst, directory), image stores (OCI layout,
//! Distribution storage tree), metadata and file names, nested packages. Everything is read by
//! streaming; nothing is extracted to disk.

pub(crate) mod archive;
pub(crate) mod distribution;
pub mod mediatype;
pub mod metadata;
pub mod model;
pub(crate) mod oci_layout;
pub mod referrer;

use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{ExitCode, UserError};

pub use metadata::{Metadata, PackageType};
pub use model::{
    Blob, BlobLocation, Container, Image, ImageRef, Manifest, MetadataSource, Package, Store,
    StoreKind,
};

/// Everything that can be wrong with a package. Each variant names the file (and entry) at fault.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: not a package (expected .tgz, .tar.gz, .tar, .tar.zst or a package directory)"
    )]
    NotAnArchive { path: PathBuf },
    #[error("{path}: archive is truncated or corrupt{}: {detail}", entry.as_ref().map(|e| format!(" at {e}")).unwrap_or_default())]
    Corrupt {
        path: PathBuf,
        entry: Option<String>,
        detail: String,
    },
    #[error("{path}: unsafe entry {entry:?}: {reason}")]
    UnsafeEntry {
        path: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("{path}: duplicate entry {entry:?}")]
    DuplicateEntry { path: PathBuf, entry: String },
    #[error("{path}: entry {entry} does not match its digest (expected {expected}, got {actual})")]
    DigestMismatch {
        path: PathBuf,
        entry: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{path}: {what} references blob {digest}, which is not in the package")]
    MissingBlob {
        path: PathBuf,
        what: String,
        digest: Digest,
    },
    #[error("{path}: {entry}:{line}:{column}: {message}")]
    Metadata {
        path: PathBuf,
        entry: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: unknown package type {value:?} (expected bundle, plugin, chart or core)")]
    UnknownType { path: PathBuf, value: String },
    #[error("{path}: {entry} is too large ({size} bytes, limit {limit})")]
    TooLarge {
        path: PathBuf,
        entry: String,
        size: u64,
        limit: u64,
    },
    #[error("{path}: {entry} is {actual} bytes but the manifest referencing it says {expected}")]
    SizeMismatch {
        path: PathBuf,
        entry: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: {entry}: invalid manifest: {message}")]
    BadManifest {
        path: PathBuf,
        entry: String,
        message: String,
    },
    /// An image reference the package carries or names that cannot be published as it is.
    #[error("{path}: image {image}: {message}")]
    BadImage {
        path: PathBuf,
        image: String,
        message: String,
    },
}

impl PackageError {
    /// The package file or directory the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            PackageError::NotFound { path }
            | PackageError::Io { path, .. }
            | PackageError::NotAnArchive { path }
            | PackageError::Corrupt { path, .. }
            | PackageError::UnsafeEntry { path, .. }
            | PackageError::DuplicateEntry { path, .. }
            | PackageError::DigestMismatch { path, .. }
            | PackageError::MissingBlob { path, .. }
            | PackageError::Metadata { path, .. }
            | PackageError::UnknownType { path, .. }
            | PackageError::TooLarge { path, .. }
            | PackageError::SizeMismatch { path, .. }
            | PackageError::BadManifest { path, .. }
            | PackageError::BadImage { path, .. } => path,
        }
    }
}

impl UserError for PackageError {
    fn exit_code(&self) -> ExitCode {
        match self {
            PackageError::NotFound { .. } | PackageError::Io { .. } => ExitCode::Input,
            _ => ExitCode::BadPackage,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            PackageError::Corrupt { .. }
            | PackageError::DigestMismatch { .. }
            | PackageError::SizeMismatch { .. } => {
                Some("download the package again and check it with 'violet verify'".into())
            }
            PackageError::Metadata { .. } | PackageError::UnknownType { .. } => {
                Some("see docs/package-format.md for the metadata schema".into())
            }
            _ => None,
        }
    }
}

pub mod blobs;
pub mod load;
