//! The OCI distribution client used for pushes (and pulls): auth, TLS, uploads, manifests, retries.

use crate::error::{ExitCode, UserError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}: {message}")]
    Other { registry: String, message: String },
}

impl UserError for RegistryError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::Remote
    }
}

pub mod client;

pub use client::{BlobOpener, BlobOutcome, BlobStream, Client, Credentials, RegistryConfig};
pub mod credentials;
