//! From what one scan held to a `Package`: the image stores it found, each store's roots, the
//! image graphs (`graph.rs`) and the checks that need the whole package (references, tags,
//! images the metadata names, architectures a file name claims).

use super::*;

impl Scan<'_> {
    pub(super) fn finish(
        mut self,
        container: Container,
        file_name: Option<String>,
    ) -> Result<Package, PackageError> {
        // A directory's name is whatever the user chose (`violet create` writes to any
        // directory): with a metadata file it says nothing about the package.
        let name_info = if container == Container::Directory && self.file_meta.is_some() {
            None
        } else {
            file_name.as_deref().and_then(self.hooks.file_name)
        };
        // Architectures a file name implies are only a guess when the metadata gives none: the
        // images' own platforms then decide.
        let name_arch = name_info.as_ref().and_then(|n| n.arch.clone()).filter(|_| {
            self.file_meta
                .as_ref()
                .is_none_or(|m| m.architectures.is_empty())
        });
        let (mut metadata, metadata_source, mut warnings) =
            (self.hooks.effective)(self.file_meta.take(), name_info);
        warnings.append(&mut self.warnings);

        let mut roots: BTreeSet<(String, bool)> = BTreeSet::new();
        for path in self.small.keys() {
            if let Some(root) = oci_layout::root_of_marker(path) {
                roots.insert((root.to_string(), false));
            }
        }
        for path in self
            .blob_entries
            .keys()
            .chain(self.small.keys())
            .chain(self.revisions.iter())
        {
            if let Some((root, _)) = distribution::split(path) {
                roots.insert((root.to_string(), true));
            }
        }
        let stem = file_name.as_deref().map(package_stem).unwrap_or_default();
        let mut graph = Graph {
            scan: &self,
            manifests: BTreeMap::new(),
            blobs: BTreeMap::new(),
            referenced: HashSet::new(),
            expected: metadata
                .differential
                .iter()
                .flat_map(|d| &d.expected)
                .map(|e| (e.digest.clone(), e.size))
                .collect(),
            external: BTreeMap::new(),
        };
        let mut stores = Vec::new();
        let mut images = Vec::new();
        for (root, is_dist) in roots {
            let store = Store {
                kind: if is_dist {
                    StoreKind::Distribution
                } else {
                    StoreKind::OciLayout
                },
                root,
            };
            let store_roots = if is_dist {
                self.distribution_roots(&store.root, &mut warnings)?
            } else {
                let default_repo = match store.root.trim_end_matches('/').rsplit('/').next() {
                    Some(dir) if !dir.is_empty() => dir.to_string(),
                    _ => metadata.name.clone().unwrap_or_else(|| stem.clone()),
                };
                let index = format!("{}index.json", store.root);
                let bytes = self
                    .small
                    .get(&index)
                    .ok_or_else(|| PackageError::BadManifest {
                        path: self.ctx.path.clone(),
                        entry: self.ctx.entry(&index),
                        message: "missing: the OCI layout has an oci-layout file but no index.json"
                            .into(),
                    })?;
                oci_layout::roots(&self.ctx, &index, bytes, &default_repo)?
            };
            if store_roots.is_empty() && !self.stopped {
                // An image store is there to carry images: one with none is what is left of a
                // partial copy or a cut (a package without images has no store at all).
                return Err(PackageError::BadManifest {
                    path: self.ctx.path.clone(),
                    entry: self.ctx.entry(if store.root.is_empty() {
                        "."
                    } else {
                        &store.root
                    }),
                    message: format!(
                        "the {} holds no image (no {})",
                        match store.kind {
                            StoreKind::OciLayout => "OCI image layout",
                            StoreKind::Distribution => "registry storage tree",
                        },
                        match store.kind {
                            StoreKind::OciLayout => "entry in index.json",
                            StoreKind::Distribution => "tag link",
                        }
                    ),
                });
            }
            for root in store_roots {
                images.push(graph.image(&store, root)?);
            }
            stores.push(store);
        }
        let Graph {
            manifests,
            blobs,
            referenced,
            external,
            ..
        } = graph;
        if !self.stopped {
            let unreferenced = self
                .blob_entries
                .keys()
                .filter(|e| !referenced.contains(*e))
                .count();
            if unreferenced > 0 {
                warnings.push(format!(
                    "{unreferenced} blob(s) in the image stores are not used by any image"
                ));
            }
        }
        fill_registries(&mut images, &metadata);
        self.check_images(&images, &metadata, !stores.is_empty())?;
        if let Some(arch) = name_arch {
            honest_architectures(&arch, &images, &mut metadata, &mut warnings);
        }
        Ok(Package {
            path: self.ctx.path.clone(),
            container,
            nest: self.ctx.nest.clone(),
            metadata,
            metadata_source,
            warnings,
            stores,
            images,
            manifests,
            blobs,
            children: std::mem::take(&mut self.children),
            read_whole: !self.stopped,
            external,
        })
    }

    /// What would go wrong only at the registry, or silently: a reference outside the
    /// distribution grammar, two images for one `repository:tag`, and (when the package has an
    /// image store at all; one without is a lightweight package) an image the metadata names
    /// that the package does not hold.
    fn check_images(
        &self,
        images: &[Image],
        metadata: &Metadata,
        has_store: bool,
    ) -> Result<(), PackageError> {
        let bad = |image: &dyn std::fmt::Display, message: String| PackageError::BadImage {
            path: self.ctx.path.clone(),
            image: self.ctx.entry(&image.to_string()),
            message,
        };
        let mut tags: HashMap<(&str, &str), &Digest> = HashMap::new();
        for image in images {
            let r = &image.reference;
            if !crate::registry::names::valid_repository(&r.repository) {
                return Err(bad(
                    r,
                    format!(
                        "repository {:?} is not a valid repository path (lowercase letters, digits and . _ - separators, components joined by /)",
                        r.repository
                    ),
                ));
            }
            if let Some(tag) = &r.tag {
                if !crate::registry::names::valid_tag(tag) {
                    return Err(bad(
                        r,
                        format!(
                            "tag {tag:?} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-], at most 128 characters)"
                        ),
                    ));
                }
                if let Some(first) = tags.insert((&r.repository, tag), &image.digest)
                    && first != &image.digest
                {
                    return Err(bad(
                        r,
                        format!(
                            "the package holds two images for this reference ({first} and {}); a registry keeps only one",
                            image.digest
                        ),
                    ));
                }
            }
        }
        if !has_store {
            return Ok(());
        }
        let held: Vec<&Image> = images
            .iter()
            .chain(
                self.children
                    .iter()
                    .flat_map(|c| c.flatten())
                    .flat_map(|p| p.images.iter()),
            )
            .collect();
        for named in metadata.artifact.iter().chain(&metadata.related_images) {
            let Some(r) = oci_layout::parse_reference(named) else {
                return Err(bad(named, "not a valid image reference".into()));
            };
            // A reference pinned by digest matches by repository: `violet create --platforms`
            // stores a rewritten index under a new digest for a CSV's `repo@sha256:` image.
            let pinned = named.contains('@');
            let found = held.iter().any(|i| {
                i.reference.repository == r.repository
                    && (pinned || r.tag.is_none() || i.reference.tag == r.tag)
            });
            if !found {
                return Err(bad(
                    named,
                    format!(
                        "{METADATA_FILE} names this image but the package's image store does not hold it ({} image(s) held)",
                        held.len()
                    ),
                ));
            }
        }
        // A signature listed but not carried is a package cut or edited after it was written:
        // pushing it would silently drop what a site's policy may require.
        for r in &metadata.referrers {
            let found = oci_layout::parse_reference(&r.reference).is_some_and(|want| {
                held.iter().any(|i| {
                    i.digest == r.digest
                        && i.reference.repository == want.repository
                        && (want.tag.is_none() || i.reference.tag == want.tag)
                })
            });
            if !found {
                return Err(bad(
                    &r.reference,
                    format!(
                        "{METADATA_FILE} lists this {} ({}) but the package's image store does not hold it",
                        r.kind.as_str(),
                        r.digest
                    ),
                ));
            }
        }
        Ok(())
    }

    fn distribution_roots(
        &self,
        root: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Root>, PackageError> {
        let mut out = Vec::new();
        for (path, bytes) in &self.small {
            if let Some(distribution::Link::Tag {
                root: r,
                repository,
                tag,
            }) = distribution::link_of(path)
                && r == root
            {
                let digest = distribution::parse_link(&self.ctx, path, bytes)?;
                let revision = distribution::revision_link_path(root, repository, &digest);
                if !self.stopped && !self.revisions.contains(&revision) {
                    warnings.push(format!(
                        "{}: tag {repository}:{tag} has no revision link (a registry serving this store would not find it)",
                        self.ctx.entry(path)
                    ));
                }
                out.push(distribution::root(repository, tag, digest));
            }
        }
        Ok(out)
    }
}

/// A package whose architectures come from its file name (`x.amd64.v1.tgz`) but whose images
/// carry other platforms, or fewer: the content wins, with a warning naming both.
fn honest_architectures(
    arch: &str,
    images: &[Image],
    metadata: &mut Metadata,
    warnings: &mut Vec<String>,
) {
    let carried: BTreeSet<&String> = images
        .iter()
        .flat_map(|i| &i.platforms)
        .filter(|p| !p.starts_with("unknown/"))
        .collect();
    if carried.is_empty() {
        // Charts and other non-image artifacts carry no platform to compare with.
        return;
    }
    let carried_archs: BTreeSet<&str> = carried
        .iter()
        .map(|p| p.split('/').nth(1).unwrap_or(p))
        .collect();
    let named: BTreeSet<&str> = match arch {
        "amd64" | "arm64" => [arch].into(),
        _ => ["amd64", "arm64"].into(),
    };
    if carried_archs == named {
        return;
    }
    let content: Vec<String> = carried.into_iter().cloned().collect();
    warnings.push(format!(
        "the file name says {arch} but the images carry [{}]; using [{}]",
        content.join(" "),
        content.join(" ")
    ));
    metadata.architectures = content;
}

/// The package name part of a file name, for stores that name no repository.
fn package_stem(file_name: &str) -> String {
    [".tar.gz", ".tar.zst", ".tgz", ".tar"]
        .iter()
        .find_map(|ext| file_name.strip_suffix(ext))
        .unwrap_or(file_name)
        .to_string()
}

/// A store names images by repository and tag only; the metadata may say which registry they came from.
fn fill_registries(images: &mut [Image], metadata: &Metadata) {
    let named: Vec<_> = metadata
        .artifact
        .iter()
        .chain(&metadata.related_images)
        .filter_map(|r| oci_layout::parse_reference(r))
        .filter(|r| r.registry.is_some())
        .collect();
    for image in images.iter_mut().filter(|i| i.reference.registry.is_none()) {
        if let Some(n) = named
            .iter()
            .find(|n| n.repository == image.reference.repository && n.tag == image.reference.tag)
        {
            image.reference.registry = n.registry.clone();
        }
    }
}
