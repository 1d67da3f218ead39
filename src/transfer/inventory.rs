//! The site inventory (`violet inventory`): what a registry holds — repositories, their tags
//! with digests, and every blob under those tags — as a small file carried back to the connected
//! side, where `violet package --base` leaves those blobs out of the next package.
//!
//! The file carries its own digest (sha256 of its canonical JSON form without the `digest`
//! field), so a differential package names exactly which inventory it was built against, and an
//! inventory edited or cut short is refused rather than trusted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::registry::{Client, RegistryError};
use crate::transfer::pull;

pub const API_VERSION: &str = "violet.alauda.io/v1";
pub const KIND: &str = "Inventory";
/// The only inventory layout this violet reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Tags walked at once in one repository.
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inventory {
    pub api_version: String,
    pub kind: String,
    pub format_version: u32,
    /// `host[:port]` of the registry listed.
    pub registry: String,
    /// The `--dest-repo` prefix, when one was given: every repository below is under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// How the repositories were found: `catalog`, `repos` (given) or `package` (`--for`).
    pub listed_from: String,
    pub repositories: Vec<Repository>,
    /// sha256 of this document's canonical JSON without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Repository {
    /// Path at the registry (with the prefix).
    pub name: String,
    pub tags: Vec<Tag>,
    /// Every config and layer blob under the tags, each once, sorted by digest.
    pub blobs: Vec<BlobEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tag {
    pub tag: String,
    pub digest: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlobEntry {
    pub digest: Digest,
    pub size: u64,
}

/// What stops a differential transfer: a base that cannot be used (an inventory file, a
/// previous package), or a destination that lacks a blob the package expects there.
#[derive(Debug, thiserror::Error)]
pub enum DifferentialError {
    /// `--base` names something that is neither an inventory nor a package file.
    #[error("{path}: {message}")]
    Base { path: PathBuf, message: String },
    /// Push preflight: blobs a differential package leaves at the site are not there. `first`
    /// lists a few (digest, image) pairs.
    #[error(
        "{package}: the destination {registry} lacks {count} blob(s) this differential package expects it to hold (built against {base}): {first}"
    )]
    Missing {
        package: String,
        registry: String,
        base: String,
        count: usize,
        first: String,
    },
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: not a violet inventory: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error(
        "{path}: the inventory's digest is {recorded} but its content hashes to {actual}: it was edited or cut short"
    )]
    Digest {
        path: PathBuf,
        recorded: Digest,
        actual: Digest,
    },
}

impl crate::error::UserError for DifferentialError {
    fn exit_code(&self) -> crate::error::ExitCode {
        match self {
            DifferentialError::Read { .. } => crate::error::ExitCode::Input,
            DifferentialError::Base { .. } => crate::error::ExitCode::Usage,
            DifferentialError::Missing { .. } => crate::error::ExitCode::Remote,
            _ => crate::error::ExitCode::BadPackage,
        }
    }
    fn hint(&self) -> Option<String> {
        Some(match self {
            DifferentialError::Read { .. } => "give the file 'violet inventory -o FILE' wrote".into(),
            DifferentialError::Base { .. } => {
                "give --base an inventory file (.json, .yaml) or a previous package file (.tgz, .tar, .tar.zst)".into()
            }
            DifferentialError::Missing { .. } => {
                "nothing was uploaded; push the base (or a full package) to this registry first, or build the package again against a fresh 'violet inventory' of this registry".into()
            }
            _ => "run 'violet inventory' at the site again and bring the new file".into(),
        })
    }
}

impl Inventory {
    /// The digest over the canonical form: this document as compact JSON, without `digest`.
    pub fn compute_digest(&self) -> Digest {
        let mut bare = self.clone();
        bare.digest = None;
        Digest::of(&serde_json::to_vec(&bare).expect("an inventory serializes"))
    }

    /// Sets `digest`; call after the content is final.
    pub fn seal(&mut self) {
        self.digest = Some(self.compute_digest());
    }

    /// JSON, or YAML when `path` ends in `.yaml`/`.yml`.
    pub fn render(&self, path: Option<&Path>) -> anyhow::Result<String> {
        let mut s = if path.is_some_and(is_yaml) {
            serde_saphyr::to_string(self)?
        } else {
            serde_json::to_string_pretty(self)?
        };
        if !s.ends_with('\n') {
            s.push('\n');
        }
        Ok(s)
    }

    /// Reads and checks an inventory file (format, version, digest).
    pub fn read(path: &Path) -> Result<Self, DifferentialError> {
        let bytes = std::fs::read(path).map_err(|e| DifferentialError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let malformed = |message: String| DifferentialError::Malformed {
            path: path.to_path_buf(),
            message,
        };
        let inv: Inventory = if is_yaml(path) {
            let text = std::str::from_utf8(&bytes).map_err(|e| malformed(e.to_string()))?;
            serde_saphyr::from_str(text).map_err(|e| malformed(e.to_string()))?
        } else {
            serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?
        };
        if inv.api_version != API_VERSION || inv.kind != KIND {
            return Err(malformed(format!(
                "apiVersion/kind are {}/{}, expected {API_VERSION}/{KIND}",
                inv.api_version, inv.kind
            )));
        }
        if inv.format_version != FORMAT_VERSION {
            return Err(malformed(format!(
                "formatVersion {} (this violet reads {FORMAT_VERSION}; a newer violet wrote it?)",
                inv.format_version
            )));
        }
        let Some(recorded) = inv.digest.clone() else {
            return Err(malformed("no digest".into()));
        };
        let actual = inv.compute_digest();
        if actual != recorded {
            return Err(DifferentialError::Digest {
                path: path.to_path_buf(),
                recorded,
                actual,
            });
        }
        Ok(inv)
    }
}

pub fn is_yaml(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Lists `repo` at the registry: every tag, its digest and the blobs under it. `None` when the
/// registry does not know the repository.
pub async fn list_repository(
    client: &Client,
    repo: &str,
) -> Result<Option<Repository>, RegistryError> {
    let Some(mut tags) = client.tags(repo).await? else {
        return Ok(None);
    };
    tags.sort();
    tags.dedup();
    let walked: Vec<Result<(String, pull::RemoteImage), RegistryError>> = stream::iter(tags)
        .map(|tag| async move {
            let image = pull::resolve(client, repo, &tag).await?;
            Ok((tag, image))
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut out = Repository {
        name: repo.to_string(),
        tags: Vec::new(),
        blobs: Vec::new(),
    };
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for r in walked {
        let (tag, image) = match r {
            Ok(v) => v,
            // A tag deleted between the listing and the walk is simply not there.
            Err(RegistryError::Remote { status: 404, .. }) => continue,
            Err(e) => return Err(e),
        };
        for (d, size) in &image.blobs {
            blobs.insert(d.clone(), *size);
        }
        out.tags.push(Tag {
            tag,
            digest: image.digest,
        });
    }
    out.blobs = blobs
        .into_iter()
        .map(|(digest, size)| BlobEntry { digest, size })
        .collect();
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Inventory {
        let mut inv = Inventory {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            format_version: FORMAT_VERSION,
            registry: "10.0.0.5:11443".into(),
            prefix: None,
            listed_from: "catalog".into(),
            repositories: vec![Repository {
                name: "acp/demo".into(),
                tags: vec![Tag {
                    tag: "v1".into(),
                    digest: Digest::of(b"index"),
                }],
                blobs: vec![BlobEntry {
                    digest: Digest::of(b"layer"),
                    size: 5,
                }],
            }],
            digest: None,
        };
        inv.seal();
        inv
    }

    #[test]
    fn json_and_yaml_read_back_and_an_edit_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let inv = sample();
        for name in ["site.json", "site.yaml"] {
            let path = dir.path().join(name);
            std::fs::write(&path, inv.render(Some(&path)).unwrap()).unwrap();
            assert_eq!(Inventory::read(&path).unwrap(), inv, "{name}");
        }
        let mut edited = inv.clone();
        edited.repositories[0].blobs[0].size = 6;
        let path = dir.path().join("edited.json");
        std::fs::write(&path, edited.render(Some(&path)).unwrap()).unwrap();
        assert!(matches!(
            Inventory::read(&path),
            Err(DifferentialError::Digest { .. })
        ));
        let mut newer = inv;
        newer.format_version = 2;
        newer.seal();
        std::fs::write(&path, newer.render(Some(&path)).unwrap()).unwrap();
        let e = Inventory::read(&path).unwrap_err().to_string();
        assert!(e.contains("formatVersion 2"), "{e}");
    }
}
