//! Seeded mutation test: from every container (tar, tgz, tar.zst, directory) × store form (OCI
//! layout, Distribution tree), generate mutants of a synthetic package (byte flips, truncation at
//! every entry boundary, descriptor field deletions and lies with the digest chain rewritten to
//! match, duplicate entries, links, oversize size claims) and run the real binary on each:
//!
//! * no panic, and an exit code from the README table;
//! * any change of the image content, and every mutant that breaks the format, is refused by
//!   `verify`;
//! * for a sample, `push` into a fresh docker-registry tags nothing when `verify` refused.
//!
//! `VIOLET_MUTANTS` sets the mutants per form (default 40, under a minute in CI); the ignored
//! `mutation_long` runs 500 per form (`cargo test --test it mutation_long -- --ignored`).
//! `VIOLET_MUTATION_SEED` replays another seed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::support::TestContext;
use crate::support::packages::{Container, StoreKind, SynthSpec, plugin_spec, synth};
use crate::support::registry::Registry;
use violet::digest::Digest;

/// The exit codes README documents.
const DOCUMENTED_CODES: [i32; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 130];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Symlink(String),
    Hardlink(String),
}

/// One entry of a package, in archive order.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub kind: Kind,
    pub data: Vec<u8>,
    /// A size for the tar header other than the data length: a lie.
    pub claim: Option<u64>,
}

impl Entry {
    pub(crate) fn file(name: &str, data: Vec<u8>) -> Self {
        Entry {
            name: name.to_string(),
            kind: Kind::File,
            data,
            claim: None,
        }
    }
}

pub(crate) fn container_of(path: &Path) -> Container {
    let name = path.to_string_lossy();
    if path.is_dir() {
        Container::Directory
    } else if name.ends_with(".tar.zst") {
        Container::TarZst
    } else if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
        Container::TarGz
    } else {
        Container::Tar
    }
}

/// Every regular file (and link) of a package, in archive order (sorted for a directory).
pub(crate) fn read_entries(path: &Path) -> Vec<Entry> {
    match container_of(path) {
        Container::Directory => {
            let mut out = Vec::new();
            walk(path, "", &mut out);
            out
        }
        c => {
            let raw = std::fs::read(path).expect("read package");
            let tar = decompress(c, &raw).expect("decompress package");
            let mut archive = tar::Archive::new(&tar[..]);
            let mut out = Vec::new();
            for e in archive.entries().expect("tar entries") {
                let mut e = e.expect("tar entry");
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let ty = e.header().entry_type();
                let kind = if ty.is_symlink() || ty.is_hard_link() {
                    let target = e
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    if ty.is_symlink() {
                        Kind::Symlink(target)
                    } else {
                        Kind::Hardlink(target)
                    }
                } else if ty.is_file() {
                    Kind::File
                } else {
                    continue;
                };
                let mut data = Vec::new();
                e.read_to_end(&mut data).expect("entry data");
                out.push(Entry {
                    name,
                    kind,
                    data,
                    claim: None,
                });
            }
            out
        }
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<Entry>) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        let rel = format!("{prefix}{}", n.to_string_lossy());
        if p.is_dir() {
            walk(&p, &format!("{rel}/"), out);
        } else if let Ok(data) = std::fs::read(&p) {
            // A dangling link of a mutant reads as no file at all.
            out.push(Entry::file(&rel, data));
        }
    }
}

fn decompress(c: Container, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match c {
        Container::TarGz => {
            flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out)?;
        }
        Container::TarZst => {
            zstd::stream::read::Decoder::new(raw)?.read_to_end(&mut out)?;
        }
        _ => out = raw.to_vec(),
    }
    Ok(out)
}

fn compress(c: Container, tar: &[u8]) -> Vec<u8> {
    match c {
        Container::TarGz => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).expect("gzip");
            e.finish().expect("gzip")
        }
        Container::TarZst => zstd::stream::encode_all(tar, 1).expect("zstd"),
        _ => tar.to_vec(),
    }
}

/// A tar of `entries` and the offset where each entry starts (and, last, where the end blocks
/// start). Size claims are written as given, with the real data after them.
pub(crate) fn tar_bytes(entries: &[Entry]) -> (Vec<u8>, Vec<usize>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut offsets = Vec::new();
    for e in entries {
        offsets.push(b.get_ref().len());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        match &e.kind {
            Kind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(e.claim.unwrap_or(e.data.len() as u64));
                if e.name.len() <= 100 {
                    // Raw bytes: the builder refuses the unsafe names a hostile package has.
                    h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name.as_bytes());
                    h.set_cksum();
                    b.append(&h, &e.data[..]).expect("append");
                } else {
                    b.append_data(&mut h, &e.name, &e.data[..]).expect("append");
                }
            }
            Kind::Symlink(t) | Kind::Hardlink(t) => {
                h.set_entry_type(if matches!(e.kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_size(0);
                b.append_link(&mut h, &e.name, t).expect("append link");
            }
        }
    }
    offsets.push(b.get_ref().len());
    (b.into_inner().expect("finish tar"), offsets)
}

/// Writes `entries` as a package of `container` at `path`.
pub(crate) fn write_entries(path: &Path, container: Container, entries: &[Entry]) {
    if container == Container::Directory {
        std::fs::create_dir_all(path).expect("mkdir");
        for e in entries {
            let p = path.join(&e.name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            let _ = std::fs::remove_file(&p);
            match &e.kind {
                Kind::File => std::fs::write(&p, &e.data).expect("write"),
                Kind::Symlink(t) => std::os::unix::fs::symlink(t, &p).expect("symlink"),
                Kind::Hardlink(t) => {
                    // A hard link in a directory is just the same file twice.
                    let _ = std::fs::hard_link(path.join(t), &p);
                }
            }
        }
        return;
    }
    let (tar, _) = tar_bytes(entries);
    std::fs::write(path, compress(container, &tar)).expect("write package");
}

/// The image content of a package: every blob entry (its name is its digest) and its bytes.
fn content(entries: &[Entry]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .filter(|e| e.kind == Kind::File && e.name.contains("blobs/sha256/"))
        .map(|e| (e.name.trim_start_matches("./").to_string(), e.data.clone()))
        .collect()
}

/// What a mutant's package file holds after decoding (leniently), `None` when it does not decode.
fn decoded_content(path: &Path) -> Option<BTreeMap<String, Vec<u8>>> {
    let c = container_of(path);
    if c == Container::Directory {
        let mut out = Vec::new();
        walk(path, "", &mut out);
        return Some(content(&out));
    }
    let raw = std::fs::read(path).ok()?;
    let tar = decompress(c, &raw).ok()?;
    let mut archive = tar::Archive::new(&tar[..]);
    let mut out = Vec::new();
    for e in archive.entries().ok()? {
        let mut e = e.ok()?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).ok()?;
        out.push(Entry::file(&name, data));
    }
    Some(content(&out))
}

/// The digest a blob entry is named by.
fn digest_of_name(name: &str) -> Option<Digest> {
    let parts: Vec<&str> = name.split('/').collect();
    let at = parts.iter().position(|p| *p == "sha256")?;
    // `blobs/sha256/<hex>` or `blobs/sha256/<hh>/<hex>/data`.
    let hex = match parts.get(at + 3) {
        Some(&"data") => parts[at + 2],
        _ => parts.get(at + 1)?,
    };
    Digest::from_hex(hex).ok()
}

/// Replaces blob `old` by `bytes` everywhere: the entry is renamed to the new digest, links and
/// descriptors naming the old digest are rewritten (digest and size), and each rewritten parent
/// blob is replaced in turn, so the package stays consistent except for what the caller changed.
pub(crate) fn replace_blob(entries: &mut Vec<Entry>, old: &Digest, bytes: Vec<u8>) {
    let new = Digest::of(&bytes);
    let size = bytes.len();
    for e in entries.iter_mut() {
        if e.name.contains(old.hex()) {
            let two = |d: &Digest| format!("{}/{}", &d.hex()[..2], d.hex());
            e.name = e
                .name
                .replace(&two(old), &two(&new))
                .replace(old.hex(), new.hex());
            if e.kind == Kind::File && digest_of_name(&e.name).as_ref() == Some(&new) {
                e.data = bytes.clone();
            }
        }
    }
    let mut parents: Vec<(Digest, Vec<u8>)> = Vec::new();
    for e in entries.iter_mut() {
        if e.kind != Kind::File
            || !e
                .data
                .windows(old.as_str().len())
                .any(|w| w == old.as_str().as_bytes())
        {
            continue;
        }
        if e.name.ends_with("/link") {
            e.data = new.as_str().as_bytes().to_vec();
            continue;
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(&e.data) else {
            continue;
        };
        rewrite_descriptors(&mut v, old, &new, size);
        let data = serde_json::to_vec(&v).expect("json");
        match digest_of_name(&e.name) {
            Some(d) if e.name.contains("blobs/sha256/") => parents.push((d, data)),
            _ => e.data = data,
        }
    }
    for (d, data) in parents {
        replace_blob(entries, &d, data);
    }
}

fn rewrite_descriptors(v: &mut Value, old: &Digest, new: &Digest, size: usize) {
    match v {
        Value::Object(m) => {
            if m.get("digest").and_then(Value::as_str) == Some(old.as_str()) {
                m.insert("digest".into(), Value::from(new.as_str()));
                if m.contains_key("size") {
                    m.insert("size".into(), Value::from(size));
                }
            }
            for x in m.values_mut() {
                rewrite_descriptors(x, old, new, size);
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| rewrite_descriptors(x, old, new, size)),
        _ => {}
    }
}

/// Edits one descriptor (the `n`th, counting every object with a `digest`) of the JSON document
/// in entry `at`, then makes the package consistent around the edit.
pub(crate) fn edit_descriptor(
    entries: &mut Vec<Entry>,
    at: usize,
    n: usize,
    edit: &dyn Fn(&mut serde_json::Map<String, Value>),
) -> bool {
    let Ok(mut v) = serde_json::from_slice::<Value>(&entries[at].data) else {
        return false;
    };
    let mut seen = 0;
    if !visit_descriptor(&mut v, n, &mut seen, edit) {
        return false;
    }
    let data = serde_json::to_vec(&v).expect("json");
    match digest_of_name(&entries[at].name).filter(|_| entries[at].name.contains("blobs/sha256/")) {
        Some(d) => replace_blob(entries, &d, data),
        None => entries[at].data = data,
    }
    true
}

fn visit_descriptor(
    v: &mut Value,
    n: usize,
    seen: &mut usize,
    edit: &dyn Fn(&mut serde_json::Map<String, Value>),
) -> bool {
    match v {
        Value::Object(m) => {
            if m.contains_key("digest") {
                if *seen == n {
                    edit(m);
                    return true;
                }
                *seen += 1;
            }
            m.values_mut().any(|x| visit_descriptor(x, n, seen, edit))
        }
        Value::Array(a) => a.iter_mut().any(|x| visit_descriptor(x, n, seen, edit)),
        _ => false,
    }
}

/// A change to one descriptor object.
pub(crate) type DescriptorEdit = dyn Fn(&mut serde_json::Map<String, Value>);

/// What a mutant must do to `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The format is broken (truncated, a lying descriptor, a duplicate, an unsafe link):
    /// refused whatever the content.
    Reject,
    /// Refused when the image content changed (decided by decoding the mutant).
    ByContent,
}

/// The mutant kinds, each with its own generator.
const KINDS: [&str; 9] = [
    "rename",
    "flip",
    "truncate",
    "truncate-compressed",
    "descriptor",
    "duplicate",
    "link",
    "oversize",
    "drop",
];

/// Builds mutant `i` of a package: (what was done, expectation), or `None` when this kind does
/// not apply to the container.
fn mutate(
    rng: &mut StdRng,
    container: Container,
    original: &[Entry],
    original_raw: &[u8],
    out: &Path,
) -> Option<(String, Expect)> {
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let mut entries = original.to_vec();
    let pick = |rng: &mut StdRng, entries: &[Entry], f: &dyn Fn(&Entry) -> bool| -> Option<usize> {
        let idx: Vec<usize> = (0..entries.len()).filter(|i| f(&entries[*i])).collect();
        (!idx.is_empty()).then(|| idx[rng.random_range(0..idx.len())])
    };
    let is_blob = |e: &Entry| e.kind == Kind::File && e.name.contains("blobs/sha256/");
    match kind {
        "flip" => {
            if container == Container::Directory {
                let at = pick(rng, &entries, &|e| {
                    e.kind == Kind::File && !e.data.is_empty()
                })?;
                let off = rng.random_range(0..entries[at].data.len());
                entries[at].data[off] ^= 1 << rng.random_range(0..8);
                write_entries(out, container, &entries);
                return Some((
                    format!("flip {} byte {off}", entries[at].name),
                    Expect::ByContent,
                ));
            }
            let mut raw = original_raw.to_vec();
            let off = rng.random_range(0..raw.len());
            raw[off] ^= 1 << rng.random_range(0..8);
            std::fs::write(out, raw).expect("write");
            Some((format!("flip file byte {off}"), Expect::ByContent))
        }
        "truncate" => {
            // At an entry boundary of the (inner) tar, the compressed stream itself complete.
            let (tar, offsets) = tar_bytes(&entries);
            let i = rng.random_range(0..offsets.len());
            if container == Container::Directory {
                entries.truncate(i);
                write_entries(out, container, &entries);
                let _ = tar;
                return Some((format!("keep only the first {i} files"), Expect::ByContent));
            }
            // The last boundary is where the end blocks start: a cut there loses only them.
            let cut = offsets[i] + if rng.random_bool(0.2) { 512 } else { 0 };
            std::fs::write(out, compress(container, &tar[..cut.min(tar.len() - 1)]))
                .expect("write");
            Some((format!("tar cut at {cut} (entry {i})"), Expect::Reject))
        }
        "truncate-compressed" => {
            if container == Container::Directory {
                return None;
            }
            let cut = rng.random_range(0..original_raw.len());
            std::fs::write(out, &original_raw[..cut]).expect("write");
            Some((format!("file cut at {cut}"), Expect::Reject))
        }
        "descriptor" => {
            let docs: Vec<usize> = (0..entries.len())
                .filter(|i| {
                    let e = &entries[*i];
                    e.kind == Kind::File
                        && (e.name.ends_with("index.json") || is_blob(e))
                        && serde_json::from_slice::<Value>(&e.data).is_ok_and(|v| {
                            v.get("manifests").is_some() || v.get("layers").is_some()
                        })
                })
                .collect();
            let at = docs[rng.random_range(0..docs.len())];
            let n = rng.random_range(0..3);
            let (what, edit): (&str, Box<DescriptorEdit>) = match rng.random_range(0..8) {
                0 => (
                    "delete mediaType",
                    Box::new(|m| {
                        m.remove("mediaType");
                    }),
                ),
                1 => (
                    "delete digest",
                    Box::new(|m| {
                        m.remove("digest");
                    }),
                ),
                2 => (
                    "delete size",
                    Box::new(|m| {
                        m.remove("size");
                    }),
                ),
                3 => (
                    "negative size",
                    Box::new(|m| {
                        m.insert("size".into(), Value::from(-1));
                    }),
                ),
                4 => (
                    "size + 1",
                    Box::new(|m| {
                        let s = m.get("size").and_then(Value::as_u64).unwrap_or(0);
                        m.insert("size".into(), Value::from(s + 1));
                    }),
                ),
                5 => (
                    "size - 1",
                    Box::new(|m| {
                        let s = m.get("size").and_then(Value::as_u64).unwrap_or(1);
                        m.insert("size".into(), Value::from(s.saturating_sub(1)));
                    }),
                ),
                6 => (
                    "uppercase digest",
                    Box::new(|m| {
                        let d = m
                            .get("digest")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_uppercase();
                        m.insert("digest".into(), Value::from(d));
                    }),
                ),
                _ => (
                    "digest of another algorithm",
                    Box::new(|m| {
                        m.insert(
                            "digest".into(),
                            Value::from(format!("sha512:{}", "ab".repeat(64))),
                        );
                    }),
                ),
            };
            if !edit_descriptor(&mut entries, at, n, &*edit) {
                return None;
            }
            write_entries(out, container, &entries);
            Some((
                format!("{what} in descriptor {n} of {}", original[at].name),
                Expect::Reject,
            ))
        }
        "duplicate" => {
            if container == Container::Directory {
                return None;
            }
            let at = rng.random_range(0..entries.len());
            let mut dup = entries[at].clone();
            if rng.random_bool(0.5) && !dup.data.is_empty() {
                dup.data[0] ^= 1;
            }
            let to = rng.random_range(at + 1..=entries.len());
            entries.insert(to, dup);
            write_entries(out, container, &entries);
            Some((format!("duplicate {}", entries[at].name), Expect::Reject))
        }
        "link" => {
            let at = pick(rng, &entries, &is_blob)?;
            let other = pick(rng, &entries, &|e| is_blob(e) && e.name != entries[at].name)?;
            let depth = entries[at].name.matches('/').count();
            let (target, escapes) = match rng.random_range(0..3) {
                0 => ("../".repeat(depth + 2) + "etc/passwd", true),
                1 => ("/etc/passwd".to_string(), true),
                _ => ("../".repeat(depth) + &entries[other].name, false),
            };
            let hard = container != Container::Directory && !escapes && rng.random_bool(0.5);
            entries[at].kind = if hard {
                Kind::Hardlink(entries[other].name.clone())
            } else {
                Kind::Symlink(target.clone())
            };
            entries[at].data.clear();
            write_entries(out, container, &entries);
            let expect = Expect::Reject;
            Some((
                format!("{} -> {target} (hard: {hard})", entries[at].name),
                expect,
            ))
        }
        "rename" => {
            if container == Container::Directory {
                return None;
            }
            let at = rng.random_range(0..entries.len());
            let (name, expect) = match rng.random_range(0..4) {
                0 => ("/etc/violet-mutant", Expect::Reject),
                1 => ("../violet-mutant", Expect::Reject),
                2 => ("blobs/../../violet-mutant", Expect::Reject),
                // Control characters: a blob renamed so is gone, anything else is noise, and
                // neither may reach the terminal raw.
                _ => ("x\nerror: forged\u{1b}[31m\u{9b}", Expect::ByContent),
            };
            entries[at].name = name.to_string();
            write_entries(out, container, &entries);
            Some((format!("rename entry {at} to {name:?}"), expect))
        }
        "oversize" => {
            if container == Container::Directory {
                return None;
            }
            let at = rng.random_range(0..entries.len());
            let real = entries[at].data.len() as u64;
            let claim = match rng.random_range(0..3) {
                0 => real + 1,
                1 => real + 513 + rng.random_range(0..4096),
                _ => (1 << 40) + rng.random_range(0..1024),
            };
            entries[at].claim = Some(claim);
            write_entries(out, container, &entries);
            // A claim a little past the data is a valid archive whose entry swallows what
            // follows: refused when that loses content (or runs past the end of the file).
            Some((
                format!("{} claims {claim} bytes", entries[at].name),
                Expect::ByContent,
            ))
        }
        _ => {
            let at = rng.random_range(0..entries.len());
            let name = entries.remove(at).name;
            write_entries(out, container, &entries);
            Some((format!("drop {name}"), Expect::ByContent))
        }
    }
}

fn base_spec(container: Container, store: StoreKind) -> SynthSpec {
    plugin_spec("mut", container, store, 600)
}

/// Tags present in a docker-registry storage tree.
fn tags_in(storage: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![storage.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.parent().is_some_and(|q| q.ends_with("_manifests/tags")) {
                    out.push(p.clone());
                }
                stack.push(p);
            }
        }
    }
    out
}

fn run_mutants(per_form: usize, pushes_per_form: usize) {
    let seed: u64 = std::env::var("VIOLET_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let ctx = TestContext::new();
    let mut failures: Vec<String> = Vec::new();
    let mut total = 0;
    for container in [
        Container::Tar,
        Container::TarGz,
        Container::TarZst,
        Container::Directory,
    ] {
        for store in [StoreKind::OciLayout, StoreKind::Distribution] {
            let form = format!("{container:?}-{store:?}");
            let base_dir = ctx.path().join("base").join(&form);
            let written = synth::write(&base_spec(container, store), &base_dir).expect("synth");
            let original = read_entries(&written.path);
            let original_raw = if container == Container::Directory {
                Vec::new()
            } else {
                std::fs::read(&written.path).expect("read")
            };
            let before = content(&original);
            let file_name = written.path.file_name().expect("name").to_owned();
            let mut rng =
                StdRng::seed_from_u64(seed ^ (total as u64 + 1).wrapping_mul(0x9e37_79b9));
            let mut pushed = 0;
            let mut made = 0;
            while made < per_form {
                let dir = ctx.path().join("m").join(format!("{form}-{made}"));
                std::fs::create_dir_all(&dir).expect("mkdir");
                let out = dir.join(&file_name);
                let Some((what, expect)) =
                    mutate(&mut rng, container, &original, &original_raw, &out)
                else {
                    let _ = std::fs::remove_dir_all(&dir);
                    continue;
                };
                made += 1;
                total += 1;
                let label = format!("{form} #{made} ({what}), seed {seed}");
                let mut codes = Vec::new();
                for cmd in ["show", "verify"] {
                    let o = ctx.run([cmd, out.to_str().expect("utf-8")]);
                    if o.stderr.contains("panicked") || !DOCUMENTED_CODES.contains(&o.code) {
                        failures.push(format!("{label}: {cmd} exit {}: {}", o.code, o.stderr));
                    }
                    let text = format!("{}{}", o.stdout, o.stderr);
                    if text.chars().any(|c| c != '\n' && c.is_control())
                        || text.lines().any(|l| l.starts_with("error: forged"))
                    {
                        failures.push(format!(
                            "{label}: {cmd} printed a raw control character: {text:?}"
                        ));
                    }
                    codes.push(o.code);
                }
                let verify_ok = codes[1] == 0;
                let changed = decoded_content(&out).is_none_or(|c| c != before);
                let must_reject = expect == Expect::Reject || changed;
                if must_reject && verify_ok {
                    failures.push(format!("{label}: verify accepted it"));
                }
                if !verify_ok && pushed < pushes_per_form && rng.random_bool(0.5) {
                    pushed += 1;
                    let registry = Registry::plain();
                    let o = ctx.push(
                        out.to_str().expect("utf-8"),
                        &[&registry.host()],
                        &["--plain", "--no-auth"],
                    );
                    if o.stderr.contains("panicked") || !DOCUMENTED_CODES.contains(&o.code) {
                        failures.push(format!("{label}: push exit {}: {}", o.code, o.stderr));
                    }
                    let tags = tags_in(&registry.storage_dir());
                    if !tags.is_empty() {
                        failures.push(format!(
                            "{label}: verify refused it but push tagged {tags:?} (exit {})",
                            o.code
                        ));
                    }
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} mutants misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn mutants_of_every_container_and_store_are_refused_or_harmless() {
    let per_form = std::env::var("VIOLET_MUTANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    run_mutants(per_form, 2);
}

#[test]
#[ignore = "long mode: thousands of mutants (VIOLET_MUTANTS per form, default 500)"]
fn mutation_long() {
    let per_form = std::env::var("VIOLET_MUTANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    run_mutants(per_form, 10);
}
