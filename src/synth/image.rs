//! The content of a synthetic package: reproducible layer bytes, stored gzip, image configs,
//! manifests and indexes, staged as blobs with their digests.

use super::*;

/// splitmix64: tiny, fast and fully specified, so layer bytes never change with a dependency update.
pub(super) struct SplitMix(u64);

impl SplitMix {
    /// Seeds from the spec seed and a label (FNV-1a), so each layer has its own stream.
    pub(super) fn new(seed: u64, label: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for b in label.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self(h)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A gzip stream of stored (uncompressed) deflate blocks. Layer data is incompressible anyway, and
/// unlike a compressor's output these bytes are fixed by the formats alone, so layer digests do not
/// depend on the flate2 backend or its version.
pub(super) struct StoredGzip<W: Write> {
    inner: W,
    block: Vec<u8>,
    crc: flate2::Crc,
}

impl<W: Write> StoredGzip<W> {
    const BLOCK: usize = 65_535;

    pub(super) fn new(mut inner: W) -> io::Result<Self> {
        // magic, deflate, no flags, mtime 0, no extra flags, OS unknown
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        Ok(Self {
            inner,
            block: Vec::with_capacity(Self::BLOCK),
            crc: flate2::Crc::new(),
        })
    }

    pub(super) fn emit_block(&mut self, last: bool) -> io::Result<()> {
        let len = self.block.len() as u16;
        self.inner.write_all(&[u8::from(last)])?;
        self.inner.write_all(&len.to_le_bytes())?;
        self.inner.write_all(&(!len).to_le_bytes())?;
        self.inner.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }

    pub(super) fn finish(mut self) -> io::Result<W> {
        self.emit_block(true)?;
        self.inner.write_all(&self.crc.sum().to_le_bytes())?;
        self.inner.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for StoredGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(Self::BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        if self.block.len() == Self::BLOCK {
            self.emit_block(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(super) fn tar_header(path: &str, size: u64, dir: bool) -> io::Result<tar::Header> {
    let mut h = crate::writer::tar_header(size, dir);
    h.set_path(path)?;
    h.set_cksum();
    Ok(h)
}

pub(super) fn parse_platform(p: &str) -> ImagePlatform {
    let mut parts = p.split('/');
    let os = parts.next().unwrap_or("linux").to_string();
    let architecture = parts.next().unwrap_or("amd64").to_string();
    ImagePlatform {
        architecture,
        os,
        variant: parts.next().map(str::to_string),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<ImagePlatform>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub(super) fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ImageManifest {
    schema_version: u32,
    media_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ImageIndex {
    schema_version: u32,
    media_type: String,
    manifests: Vec<Descriptor>,
}

#[derive(Serialize)]
pub(super) struct ImageConfig {
    created: &'static str,
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    config: ConfigLabels,
    rootfs: RootFs,
    history: Vec<History>,
}

#[derive(Serialize)]
pub(super) struct ConfigLabels {
    #[serde(rename = "Labels")]
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub(super) struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<Digest>,
}

#[derive(Serialize)]
pub(super) struct History {
    created: &'static str,
    created_by: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BlobKind {
    Manifest,
    Data,
}

pub(super) struct StagedBlob {
    path: PathBuf,
    size: u64,
    kind: BlobKind,
}

#[derive(Default)]
pub(super) struct RepoRecord {
    layers: BTreeSet<Digest>,
    revisions: BTreeSet<Digest>,
    tags: BTreeMap<String, Digest>,
}

/// Blobs written so far (each once) and which repository references what.
pub(super) struct Staged {
    dir: PathBuf,
    blobs: BTreeMap<Digest, StagedBlob>,
    /// Blob order of first appearance, so archives list blobs in a stable, meaningful order.
    order: Vec<Digest>,
    /// Layers already generated, by content label: shared layers are generated once.
    layers: BTreeMap<String, (Digest, u64, Digest)>,
    repos: BTreeMap<String, RepoRecord>,
    /// Top manifests (reference, digest, size, media type) for the OCI layout's `index.json`,
    /// in spec order.
    tops: Vec<(String, Digest, u64, &'static str)>,
    /// The platform manifests of each image index, for signing them.
    pub(super) platform_manifests: BTreeMap<Digest, Vec<Digest>>,
    next_tmp: u64,
}

impl Staged {
    pub(super) fn new(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir).map_err(|e| at(&dir, e))?;
        Ok(Self {
            dir,
            blobs: BTreeMap::new(),
            order: Vec::new(),
            layers: BTreeMap::new(),
            repos: BTreeMap::new(),
            tops: Vec::new(),
            platform_manifests: BTreeMap::new(),
            next_tmp: 0,
        })
    }

    pub(super) fn tmp_path(&mut self) -> PathBuf {
        self.next_tmp += 1;
        self.dir.join(format!(".tmp-{}", self.next_tmp))
    }

    pub(super) fn keep(
        &mut self,
        tmp: PathBuf,
        digest: Digest,
        size: u64,
        kind: BlobKind,
    ) -> io::Result<()> {
        if self.blobs.contains_key(&digest) {
            return fs::remove_file(&tmp).map_err(|e| at(&tmp, e));
        }
        let path = self.dir.join(digest.hex());
        fs::rename(&tmp, &path).map_err(|e| at(&path, e))?;
        self.order.push(digest.clone());
        self.blobs.insert(digest, StagedBlob { path, size, kind });
        Ok(())
    }

    pub(super) fn add_json(
        &mut self,
        value: &impl Serialize,
        kind: BlobKind,
    ) -> io::Result<(Digest, u64)> {
        let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
        let digest = Digest::of(&bytes);
        let tmp = self.tmp_path();
        fs::write(&tmp, &bytes).map_err(|e| at(&tmp, e))?;
        self.keep(tmp, digest.clone(), bytes.len() as u64, kind)?;
        Ok((digest, bytes.len() as u64))
    }

    /// One layer: a tar holding a directory and one file of `size` pseudo-random bytes, gzip'd.
    /// Returns (blob digest, blob size, diff_id).
    pub(super) fn add_layer(
        &mut self,
        seed: u64,
        label: &str,
        size: u64,
    ) -> io::Result<(Digest, u64, Digest)> {
        if let Some(done) = self.layers.get(label) {
            return Ok(done.clone());
        }
        let tmp = self.tmp_path();
        let file = File::create(&tmp).map_err(|e| at(&tmp, e))?;
        let blob = HashingWriter::new(BufWriter::with_capacity(CHUNK, file));
        let written = (|| {
            let mut tar = HashingWriter::new(StoredGzip::new(blob)?);
            let dir = format!("opt/synth/{label}");
            tar.write_all(tar_header(&format!("{dir}/"), 0, true)?.as_bytes())?;
            tar.write_all(tar_header(&format!("{dir}/data.bin"), size, false)?.as_bytes())?;
            let mut rng = SplitMix::new(seed, label);
            let mut buf = vec![0u8; CHUNK];
            let mut left = size;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                rng.fill(&mut buf[..n]);
                tar.write_all(&buf[..n])?;
                left -= n as u64;
            }
            let pad = (512 - (size % 512) as usize) % 512;
            tar.write_all(&vec![0u8; pad + 1024])?;
            let diff_id = std::mem::take(&mut tar.hasher).finish();
            let mut blob = tar.inner.finish()?;
            blob.flush()?;
            blob.inner.into_inner().map_err(|e| e.into_error())?;
            Ok::<_, io::Error>((blob.hasher.finish(), blob.len, diff_id))
        })();
        let (digest, len, diff_id) = written.map_err(|e| at(&tmp, e))?;
        self.keep(tmp, digest.clone(), len, BlobKind::Data)?;
        let done = (digest, len, diff_id);
        self.layers.insert(label.to_string(), done.clone());
        Ok(done)
    }

    /// Writes every blob of one image and returns the digest of its index.
    pub(super) fn add_image(&mut self, spec: &SynthSpec, image: &SynthImage) -> io::Result<Digest> {
        let mt = spec.media_types;
        let mut entries = Vec::new();
        let mut revisions = Vec::new();
        let mut layer_links = Vec::new();
        for platform in &image.platforms {
            let p = parse_platform(platform);
            let plat_label = platform.replace('/', "-");
            let mut layers = Vec::new();
            let mut diff_ids = Vec::new();
            let mut history = Vec::new();
            let plan: Vec<(String, u64)> = if image.layer_plan.is_empty() {
                (0..image.layers)
                    .map(|i| {
                        let label = if i < image.shared_layers {
                            format!("shared/{plat_label}/layer-{i}")
                        } else {
                            format!("{}/{plat_label}/layer-{i}", image.repository)
                        };
                        (label, image.layer_size)
                    })
                    .collect()
            } else {
                // The "pool/" prefix keeps planned shared layers apart from `shared_layers` ones.
                (image.layer_plan.iter().enumerate())
                    .map(|(i, l)| match &l.shared {
                        Some(key) => (format!("pool/{plat_label}/{key}"), l.size),
                        None => (
                            format!("{}/{plat_label}/layer-{i}", image.repository),
                            l.size,
                        ),
                    })
                    .collect()
            };
            for (i, (label, layer_size)) in plan.into_iter().enumerate() {
                let (digest, size, diff_id) = self.add_layer(spec.seed, &label, layer_size)?;
                layer_links.push(digest.clone());
                layers.push(Descriptor::new(mt.layer(), digest, size));
                diff_ids.push(diff_id);
                history.push(History {
                    created: FIXED_CREATED,
                    created_by: format!("synth layer {i}"),
                });
            }
            let config = ImageConfig {
                created: FIXED_CREATED,
                architecture: p.architecture.clone(),
                os: p.os.clone(),
                variant: p.variant.clone(),
                config: ConfigLabels {
                    labels: BTreeMap::from([(
                        "io.violet.synth.image".into(),
                        image.repository.clone(),
                    )]),
                },
                rootfs: RootFs {
                    kind: "layers",
                    diff_ids,
                },
                history,
            };
            let (config_digest, config_size) = self.add_json(&config, BlobKind::Data)?;
            layer_links.push(config_digest.clone());
            let manifest = ImageManifest {
                schema_version: 2,
                media_type: mt.manifest().into(),
                config: Descriptor::new(mt.config(), config_digest, config_size),
                layers,
            };
            let (digest, size) = self.add_json(&manifest, BlobKind::Manifest)?;
            revisions.push(digest.clone());
            let mut d = Descriptor::new(mt.manifest(), digest, size);
            d.platform = Some(p);
            entries.push(d);
        }
        let index = ImageIndex {
            schema_version: 2,
            media_type: mt.index().into(),
            manifests: entries,
        };
        let (digest, size) = self.add_json(&index, BlobKind::Manifest)?;
        self.platform_manifests
            .insert(digest.clone(), revisions.clone());
        revisions.push(digest.clone());
        let repo = self.repos.entry(image.repository.clone()).or_default();
        repo.layers.extend(layer_links);
        repo.revisions.extend(revisions);
        repo.tags.insert(image.tag.clone(), digest.clone());
        self.tops
            .push((spec.reference(image), digest.clone(), size, mt.index()));
        Ok(digest)
    }

    /// Writes `bytes` as a blob (each once) and returns its digest.
    pub(super) fn add_bytes(&mut self, bytes: &[u8], kind: BlobKind) -> io::Result<Digest> {
        let digest = Digest::of(bytes);
        let tmp = self.tmp_path();
        fs::write(&tmp, bytes).map_err(|e| at(&tmp, e))?;
        self.keep(tmp, digest.clone(), bytes.len() as u64, kind)?;
        Ok(digest)
    }

    /// Stores a cosign signature artifact as the image `repository:sha256-<hex>.sig` of `signed`.
    pub(super) fn add_signature(
        &mut self,
        spec: &SynthSpec,
        repository: &str,
        signed: &Digest,
        artifact: &super::cosign::SignatureArtifact,
    ) -> io::Result<(String, Digest)> {
        let mut links = Vec::new();
        for (_, bytes) in &artifact.blobs {
            links.push(self.add_bytes(bytes, BlobKind::Data)?);
        }
        let digest = self.add_bytes(&artifact.manifest, BlobKind::Manifest)?;
        let tag = crate::cosign::artifact_tag(signed, "sig");
        let repo = self.repos.entry(repository.to_string()).or_default();
        repo.layers.extend(links);
        repo.revisions.insert(digest.clone());
        repo.tags.insert(tag.clone(), digest.clone());
        let reference = format!("{}/{repository}:{tag}", spec.registry);
        self.tops.push((
            reference.clone(),
            digest.clone(),
            artifact.manifest.len() as u64,
            crate::package::mediatype::OCI_MANIFEST,
        ));
        Ok((reference, digest))
    }

    pub(super) fn blob_totals(&self) -> (usize, u64) {
        let data = self.blobs.values().filter(|b| b.kind == BlobKind::Data);
        data.fold((0, 0), |(n, bytes), b| (n + 1, bytes + b.size))
    }

    /// The store's files in archive order: store metadata and manifests first, then configs and
    /// layers (the `manifestsFirst` promise).
    pub(super) fn layout_entries(&self, spec: &SynthSpec) -> io::Result<Vec<(String, Source)>> {
        let mut out = Vec::new();
        let blob_entry = |d: &Digest| match spec.store {
            StoreKind::OciLayout => format!("blobs/sha256/{}", d.hex()),
            StoreKind::Distribution => format!(
                "{DISTRIBUTION_ROOT}/blobs/sha256/{}/{}/data",
                &d.hex()[..2],
                d.hex()
            ),
        };
        match spec.store {
            StoreKind::OciLayout => {
                out.push((
                    "oci-layout".into(),
                    Source::Bytes(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
                ));
                let manifests = self
                    .tops
                    .iter()
                    .map(|(reference, digest, size, media_type)| {
                        let mut d = Descriptor::new(media_type, digest.clone(), *size);
                        d.annotations
                            .insert(REF_NAME_ANNOTATION.into(), reference.clone());
                        d
                    })
                    .collect();
                let index = ImageIndex {
                    schema_version: 2,
                    media_type: crate::package::mediatype::OCI_INDEX.into(),
                    manifests,
                };
                let bytes = serde_json::to_vec(&index).map_err(io::Error::other)?;
                out.push(("index.json".into(), Source::Bytes(bytes)));
            }
            StoreKind::Distribution => {
                let link = |d: &Digest| Source::Bytes(d.as_str().as_bytes().to_vec());
                for (name, repo) in &self.repos {
                    let base = format!("{DISTRIBUTION_ROOT}/repositories/{name}");
                    for d in &repo.layers {
                        out.push((format!("{base}/_layers/sha256/{}/link", d.hex()), link(d)));
                    }
                    for d in &repo.revisions {
                        out.push((
                            format!("{base}/_manifests/revisions/sha256/{}/link", d.hex()),
                            link(d),
                        ));
                    }
                    for (tag, d) in &repo.tags {
                        let tag_dir = format!("{base}/_manifests/tags/{tag}");
                        out.push((format!("{tag_dir}/current/link"), link(d)));
                        out.push((format!("{tag_dir}/index/sha256/{}/link", d.hex()), link(d)));
                    }
                }
            }
        }
        for kind in [BlobKind::Manifest, BlobKind::Data] {
            for d in &self.order {
                let b = &self.blobs[d];
                if b.kind == kind {
                    out.push((blob_entry(d), Source::File(b.path.clone())));
                }
            }
        }
        Ok(out)
    }
}
