//! Operator bundle images and OCI Helm charts, built in memory and pushed into a real registry
//! the way `opm`/`helm push` lay them out, for `violet create` tests.

use bytes::Bytes;
use violet::digest::Digest;
use violet::registry::{Client, Credentials, RegistryConfig};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

/// A gzip'd tar of `files` (path, content).
pub fn tgz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// How to reach a test registry over plain HTTP, anonymously.
pub fn plain(host: &str) -> RegistryConfig {
    RegistryConfig {
        host: host.into(),
        plain: true,
        insecure: false,
        ca_files: Vec::new(),
        credentials: Credentials::Anonymous,
        retries: 0,
        chunk_size: None,
    }
}

/// Pushes one manifest with `config` and `layers` to `repo:tag` in the registry `registry`
/// describes, and returns its digest.
pub fn push(
    registry: &RegistryConfig,
    repo: &str,
    tag: &str,
    config: (&str, Vec<u8>),
    layers: Vec<(&str, Vec<u8>)>,
) -> Digest {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::new(registry.clone()).unwrap();
        let mut descriptors = Vec::new();
        for (media_type, bytes) in std::iter::once(config).chain(layers) {
            let digest = Digest::of(&bytes);
            let size = bytes.len() as u64;
            let body = Bytes::from(bytes);
            let open = move || -> std::io::Result<violet::registry::BlobStream> {
                let body = body.clone();
                Ok(Box::pin(futures_util::stream::once(
                    async move { Ok(body) },
                )))
            };
            client
                .upload_blob(repo, &digest, size, &open, &|_| {})
                .await
                .unwrap();
            descriptors.push(serde_json::json!({
                "mediaType": media_type, "digest": digest.as_str(), "size": size
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptors[0],
            "layers": descriptors[1..],
        });
        let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
        client
            .put_manifest(repo, tag, OCI_MANIFEST, bytes)
            .await
            .unwrap()
    })
}

/// An OLM bundle image (FROM scratch: `manifests/` and `metadata/` in one layer) at
/// `repo:tag`, whose CSV lists `related` in `spec.relatedImages`.
pub fn push_bundle(
    registry: &RegistryConfig,
    repo: &str,
    tag: &str,
    version: &str,
    related: &[String],
) -> Digest {
    push_bundle_as(registry, repo, tag, version, related, LayerForm::OciGzip)
}

/// How a bundle's layer is written: its media type and the compression that goes with it.
#[derive(Debug, Clone, Copy)]
pub enum LayerForm {
    OciGzip,
    OciZstd,
    OciPlain,
    DockerGzip,
}

impl LayerForm {
    pub fn media_type(self) -> &'static str {
        match self {
            LayerForm::OciGzip => OCI_LAYER,
            LayerForm::OciZstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            LayerForm::OciPlain => "application/vnd.oci.image.layer.v1.tar",
            LayerForm::DockerGzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    }

    /// `tgz` output turned into this form's bytes.
    fn encode(self, tgz: Vec<u8>) -> Vec<u8> {
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&tgz[..]), &mut tar).unwrap();
        match self {
            LayerForm::OciGzip | LayerForm::DockerGzip => tgz,
            LayerForm::OciZstd => zstd::encode_all(&tar[..], 3).unwrap(),
            LayerForm::OciPlain => tar,
        }
    }
}

/// [`push_bundle`] with the bundle layer in `form`.
pub fn push_bundle_as(
    registry: &RegistryConfig,
    repo: &str,
    tag: &str,
    version: &str,
    related: &[String],
    form: LayerForm,
) -> Digest {
    let mut csv = format!(
        "apiVersion: operators.coreos.com/v1alpha1\nkind: ClusterServiceVersion\nmetadata:\n  name: demo-operator.v{version}\n  annotations:\n    olm.skipRange: '>=1.0.0 <{version}'\nspec:\n  version: {version}\n  displayName: Demo Operator\n  replaces: demo-operator.v1.0.0\n  relatedImages:\n"
    );
    for (i, r) in related.iter().enumerate() {
        csv.push_str(&format!("  - name: image-{i}\n    image: {r}\n"));
    }
    let annotations = "annotations:\n  operators.operatorframework.io.bundle.mediatype.v1: registry+v1\n  operators.operatorframework.io.bundle.package.v1: demo-operator\n  operators.operatorframework.io.bundle.channels.v1: stable\n  operators.operatorframework.io.bundle.channel.default.v1: stable\n";
    let layer = tgz(&[
        ("manifests/demo-operator.clusterserviceversion.yaml", &csv),
        ("metadata/annotations.yaml", annotations),
    ]);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"operators.operatorframework.io.bundle.package.v1": "demo-operator"}},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"not checked").as_str()]},
    });
    push(
        registry,
        repo,
        tag,
        (OCI_CONFIG, serde_json::to_vec(&config).unwrap()),
        vec![(form.media_type(), form.encode(layer))],
    )
}

/// An OCI Helm chart `name` at `repo:version` whose `values.yaml` lists `images`
/// (`key`, `repository`, `tag`) under `global.images`, with a `module-plugin.yaml` when
/// `plugin` is set.
pub fn push_chart(
    registry: &RegistryConfig,
    repo: &str,
    name: &str,
    version: &str,
    images: &[(&str, &str, &str)],
    plugin: bool,
) -> Digest {
    let chart_yaml = format!("apiVersion: v2\nname: {name}\nversion: {version}\n");
    let mut values = String::from("global:\n  images:\n");
    for (key, repository, tag) in images {
        values.push_str(&format!(
            "    {key}:\n      repository: {repository}\n      tag: {tag}\n      support_arm: true\n"
        ));
    }
    let module_plugin = format!(
        "apiVersion: cluster.alauda.io/v1alpha1\nkind: ModulePlugin\nmetadata:\n  name: {name}\n  annotations:\n    cpaas.io/display-name: '{{\"en\": \"Demo Plugin\", \"zh\": \"演示\"}}'\n  labels:\n    cpaas.io/module-name: {name}\n    cpaas.io/module-type: plugin\n    cpaas.io/lifecycle-type: agnostic\nspec:\n  name: {name}\n  mainChart: {repo}\n  description:\n    en: demo\n    zh: demo\n"
    );
    let mut files = vec![
        (format!("{name}/Chart.yaml"), chart_yaml),
        (format!("{name}/values.yaml"), values),
        (
            format!("{name}/templates/deployment.yaml"),
            "kind: Deployment\n".to_string(),
        ),
    ];
    if plugin {
        files.push((format!("{name}/module-plugin.yaml"), module_plugin));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_str()))
        .collect();
    let config = serde_json::json!({"name": name, "version": version, "apiVersion": "v2"});
    push(
        registry,
        repo,
        version,
        (HELM_CONFIG, serde_json::to_vec(&config).unwrap()),
        vec![(HELM_CHART, tgz(&refs))],
    )
}
