//! The cosign signature flags of `verify` and `push`: which key to trust, which identity the
//! signatures must name, and whether an unsigned image fails.

use std::path::PathBuf;

use crate::cosign::check::Trust;
use crate::cosign::{Policy, PublicKey};
use crate::error::Fail;

#[derive(Debug, Clone, clap::Args)]
pub struct CosignArgs {
    /// Check every image's cosign signature (the package's `<repo>:sha256-<hex>.sig` images)
    /// against this public key: PEM, ECDSA P-256 or RSA, as `cosign generate-key-pair` writes it.
    #[arg(long, value_name = "KEY.pub")]
    pub cosign_key: Option<PathBuf>,

    /// With --cosign-key: the `docker-reference` every signature must name, exactly, or under a
    /// prefix ending in `/*` (`harbor.demo.io/acp/*`). Without it the reference is not checked,
    /// as with cosign.
    #[arg(long, value_name = "REF")]
    pub identity: Option<String>,

    /// With --cosign-key: an image without a cosign signature fails too (by default it is a warning).
    #[arg(long)]
    pub require_signatures: bool,
}

impl CosignArgs {
    /// The key and policy to check with, or `None` when no `--cosign-key` was given.
    pub fn trust(&self) -> anyhow::Result<Option<Trust>> {
        let Some(path) = &self.cosign_key else {
            for (given, flag) in [
                (self.require_signatures, "--require-signatures"),
                (self.identity.is_some(), "--identity"),
            ] {
                if given {
                    return Err(Fail::usage(format!("{flag} needs --cosign-key"))
                        .with_hint("pass the signer's public key: --cosign-key cosign.pub")
                        .into());
                }
            }
            return Ok(None);
        };
        if let Some(identity) = &self.identity
            && (identity.is_empty() || identity == "/*")
        {
            return Err(Fail::usage(format!("--identity {identity:?} matches nothing"))
                .with_hint("give the signed repository, e.g. --identity harbor.demo.io/acp/foo or --identity 'harbor.demo.io/acp/*'")
                .into());
        }
        Ok(Some(Trust {
            key: PublicKey::load(path)?,
            policy: Policy {
                identity: self.identity.clone(),
            },
        }))
    }
}
