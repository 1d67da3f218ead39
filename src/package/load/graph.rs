//! Image graphs from one scan: every image's manifests and blobs, walked from its root, checked
//! (digests, presence, sizes, media types) and shared across the images of the package.

use super::*;

/// Builds image graphs from one scan, sharing manifests and blobs across images.
pub(super) struct Graph<'s, 'h> {
    pub(super) scan: &'s Scan<'h>,
    pub(super) manifests: BTreeMap<Digest, Manifest>,
    pub(super) blobs: BTreeMap<Digest, Blob>,
    /// Store entries some image uses.
    pub(super) referenced: HashSet<String>,
    /// `differential.expected` of the metadata: blobs the store may lack, with their size.
    pub(super) expected: HashMap<Digest, u64>,
    /// The expected blobs the images use and the store does not hold.
    pub(super) external: BTreeMap<Digest, u64>,
}

/// One image being assembled.
struct ImageWalk {
    name: String,
    order: Vec<Digest>,
    visited: HashSet<Digest>,
    blobs: Vec<Digest>,
    blob_set: HashSet<Digest>,
}

impl Graph<'_, '_> {
    pub(super) fn image(&mut self, store: &Store, root: Root) -> Result<Image, PackageError> {
        let mut walk = ImageWalk {
            name: root.reference.to_string(),
            order: Vec::new(),
            visited: HashSet::new(),
            blobs: Vec::new(),
            blob_set: HashSet::new(),
        };
        self.manifest(
            store,
            &root.digest,
            root.media_type.as_deref(),
            root.size,
            None,
            0,
            &mut walk,
        )?;
        let top = self
            .manifests
            .get(&root.digest)
            .ok_or_else(|| self.missing(&walk.name, &root.digest))?;
        let mut platforms: Vec<String> = Vec::new();
        let candidates: Vec<Option<&String>> = if top.is_index() {
            top.children
                .iter()
                .map(|c| self.manifests.get(c).and_then(|m| m.platform.as_ref()))
                .collect()
        } else {
            vec![top.platform.as_ref()]
        };
        for p in candidates.into_iter().flatten() {
            // Attestation manifests (buildx) carry the placeholder platform unknown/unknown.
            if !p.starts_with("unknown/") && !platforms.contains(p) {
                platforms.push(p.clone());
            }
        }
        let size = walk
            .blobs
            .iter()
            .filter_map(|d| self.blobs.get(d))
            .map(|b| b.size)
            .sum::<u64>()
            + walk
                .order
                .iter()
                .filter_map(|d| self.manifests.get(d))
                .map(|m| m.bytes.len() as u64)
                .sum::<u64>();
        let referrer =
            crate::package::referrer::classify(root.reference.tag.as_deref(), &top.bytes);
        Ok(Image {
            reference: root.reference,
            referrer,
            digest: root.digest,
            media_type: top.media_type.clone(),
            platforms,
            manifests: walk.order,
            blobs: walk.blobs,
            size,
        })
    }

    fn missing(&self, name: &str, digest: &Digest) -> PackageError {
        PackageError::MissingBlob {
            path: self.scan.ctx.path.clone(),
            what: format!("image {name}"),
            digest: digest.clone(),
        }
    }

    fn entry_of(store: &Store, digest: &Digest) -> String {
        match store.kind {
            StoreKind::OciLayout => oci_layout::blob_path(&store.root, digest),
            StoreKind::Distribution => distribution::blob_path(&store.root, digest),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn manifest(
        &mut self,
        store: &Store,
        digest: &Digest,
        desc_media_type: Option<&str>,
        desc_size: Option<u64>,
        desc_platform: Option<String>,
        depth: usize,
        walk: &mut ImageWalk,
    ) -> Result<(), PackageError> {
        let scan = self.scan;
        let ctx = &scan.ctx;
        let entry = Self::entry_of(store, digest);
        let bad = |message: String| PackageError::BadManifest {
            path: ctx.path.clone(),
            entry: ctx.entry(&entry),
            message,
        };
        if depth > MAX_INDEX_DEPTH {
            return Err(bad(format!(
                "indexes nested deeper than {MAX_INDEX_DEPTH} levels"
            )));
        }
        if !walk.visited.insert(digest.clone()) {
            return Ok(());
        }
        let bytes = match scan.manifests.get(&entry) {
            Some(b) => b.clone(),
            None => {
                return Err(match scan.blob_entries.get(&entry) {
                    Some(_) if scan.mismatched.contains_key(&entry) => {
                        PackageError::DigestMismatch {
                            path: ctx.path.clone(),
                            entry: ctx.entry(&entry),
                            expected: digest.clone(),
                            actual: scan.mismatched[&entry].clone(),
                        }
                    }
                    Some(_) if scan.broken.contains_key(&entry) => bad(scan.broken[&entry].clone()),
                    Some((size, _)) if *size > MAX_SMALL_FILE => {
                        ctx.too_large(&entry, *size, MAX_SMALL_FILE)
                    }
                    Some(_) => bad("not an image manifest or index".into()),
                    None => self.missing(&walk.name, digest),
                });
            }
        };
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(PackageError::DigestMismatch {
                path: ctx.path.clone(),
                entry: ctx.entry(&entry),
                expected: digest.clone(),
                actual,
            });
        }
        if let Some(expected) = desc_size
            && expected != bytes.len() as u64
        {
            return Err(PackageError::SizeMismatch {
                path: ctx.path.clone(),
                entry: ctx.entry(&entry),
                expected,
                actual: bytes.len() as u64,
            });
        }
        let raw: RawManifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        match raw.schema_version {
            Some(2) => {}
            Some(1) => return Err(bad("Docker schema 1 manifests are not supported; copy the image again with a current tool".into())),
            Some(v) => return Err(bad(format!("schemaVersion is {v}, expected 2"))),
            None => return Err(bad("schemaVersion is missing (the image spec requires 2)".into())),
        }
        let media_type = raw.media_type(desc_media_type);
        let location = BlobLocation {
            nest: ctx.nest.clone(),
            entry: entry.clone(),
            offset: scan.blob_entries.get(&entry).and_then(|(_, o)| *o),
        };
        self.referenced.insert(entry.clone());
        let mut children = Vec::new();
        let mut blobs = Vec::new();
        let mut platform = desc_platform;
        if mediatype::is_index(&media_type) {
            let manifests = raw
                .manifests
                .as_ref()
                .ok_or_else(|| bad("image index without manifests".into()))?;
            for d in manifests {
                let child = d.check().map_err(bad)?;
                let child_platform = d.platform.as_ref().and_then(|p| p.render());
                self.manifest(
                    store,
                    &child,
                    d.media_type.as_deref(),
                    d.size,
                    child_platform,
                    depth + 1,
                    walk,
                )?;
                children.push(child);
            }
        } else if mediatype::is_manifest(&media_type) || raw.layers.is_some() {
            let config = raw
                .config
                .as_ref()
                .ok_or_else(|| bad("image manifest without config".into()))?;
            if raw.layers.is_none() {
                return Err(bad("image manifest without layers".into()));
            }
            for d in std::iter::once(config).chain(raw.layers.iter().flatten()) {
                blobs.push(self.blob(store, d, &entry, walk)?);
            }
            if platform.is_none() {
                let config_entry = Self::entry_of(store, &blobs[0]);
                platform = scan.config_platforms.get(&config_entry).cloned();
            }
        } else {
            return Err(bad(format!("unsupported media type {media_type:?}")));
        }
        walk.order.push(digest.clone());
        self.manifests.entry(digest.clone()).or_insert(Manifest {
            digest: digest.clone(),
            media_type,
            bytes,
            children,
            blobs,
            platform,
            location,
        });
        Ok(())
    }

    fn blob(
        &mut self,
        store: &Store,
        d: &Descriptor,
        manifest_entry: &str,
        walk: &mut ImageWalk,
    ) -> Result<Digest, PackageError> {
        let ctx = &self.scan.ctx;
        let bad = |message: String| PackageError::BadManifest {
            path: ctx.path.clone(),
            entry: ctx.entry(manifest_entry),
            message,
        };
        let digest = d.check().map_err(bad)?;
        let size = d.size.unwrap_or_default();
        let entry = Self::entry_of(store, &digest);
        // A differential package leaves out what its metadata declares the site holds; only
        // those, with the size they were declared with, may be absent.
        if !self.scan.blob_entries.contains_key(&entry)
            && let Some(expected) = self.expected.get(&digest)
        {
            if *expected != size {
                return Err(bad(format!(
                    "blob {digest} has size {size} here but {expected} in differential.expected of {METADATA_FILE}"
                )));
            }
            self.external.insert(digest.clone(), size);
            if walk.blob_set.insert(digest.clone()) {
                walk.blobs.push(digest.clone());
            }
            return Ok(digest);
        }
        let offset = match self.scan.blob_entries.get(&entry) {
            Some((actual, offset)) => {
                if *actual != size {
                    return Err(PackageError::SizeMismatch {
                        path: ctx.path.clone(),
                        entry: ctx.entry(&entry),
                        expected: size,
                        actual: *actual,
                    });
                }
                *offset
            }
            // Past an early stop the blob is checked when it is streamed.
            None if self.scan.stopped => None,
            None => return Err(self.missing(&walk.name, &digest)),
        };
        self.referenced.insert(entry.clone());
        self.blobs.entry(digest.clone()).or_insert_with(|| Blob {
            digest: digest.clone(),
            size,
            media_type: d.media_type.clone(),
            location: BlobLocation {
                nest: ctx.nest.clone(),
                entry,
                offset,
            },
        });
        if walk.blob_set.insert(digest.clone()) {
            walk.blobs.push(digest.clone());
        }
        Ok(digest)
    }
}
