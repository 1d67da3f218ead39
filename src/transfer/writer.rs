//! Writing packages: the entries of a package, in the order readers rely on, into a `.tgz`,
//! `.tar`, `.tar.zst` or a directory (docs/package-format.md "Entry ordering").
//!
//! A [`PackageWriter`] never shows a half-written result under its final name: an archive is
//! written to `<file>.partial` and renamed by [`PackageWriter::finish`], a directory entry to
//! `<entry>.partial`; dropping an unfinished writer (an error, Ctrl-C unwinding) removes what it
//! wrote. The sha256 of an archive is computed while it is written, so the `.sha256` sidecar
//! costs no second read of a file that may be hundreds of GB.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;

use crate::digest::{Digest, Hasher};
use crate::package::Container;
use crate::package::mediatype::OCI_INDEX;

/// Every timestamp in archives, so that the same content gives the same archive bytes.
pub const FIXED_MTIME: u64 = 1_700_000_000;
/// Where violet's package writer puts its OCI image layout inside a package.
pub const STORE_ROOT: &str = "images/";
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const BUFFER: usize = 1 << 20;

/// The tar header violet writes for every entry: fixed owner, mode and time.
pub fn tar_header(size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mtime(FIXED_MTIME);
    h.set_uid(0);
    h.set_gid(0);
    // Both names are 4 bytes, well under the 32-byte field: cannot fail.
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

/// Writes to an inner writer while hashing and counting what passes through (the archive file,
/// for its `.sha256`; synthetic layers, for their digests).
pub struct HashingWriter<W> {
    pub inner: W,
    pub hasher: Hasher,
    pub len: u64,
}

impl<W> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
            len: 0,
        }
    }
}

type Hashed = HashingWriter<BufWriter<File>>;

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder {
    Plain(Hashed),
    Gzip(GzEncoder<Hashed>),
    Zstd(zstd::Encoder<'static, Hashed>),
}

impl Encoder {
    fn finish(self) -> io::Result<Hashed> {
        match self {
            Encoder::Plain(h) => Ok(h),
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

enum Target {
    Archive {
        partial: PathBuf,
        tar: Option<Box<tar::Builder<Encoder>>>,
        dirs: BTreeSet<String>,
    },
    Directory,
}

/// What [`PackageWriter::finish`] produced.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub path: PathBuf,
    /// Bytes of the archive file (directories: the bytes of the entries written).
    pub bytes: u64,
    /// sha256 of the archive file (`None` for a directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Digest>,
    /// The `<file>.sha256` sidecar, when one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_file: Option<PathBuf>,
}

pub struct PackageWriter {
    path: PathBuf,
    target: Target,
    entry_bytes: u64,
    /// Directory entries written so far (`.partial` files), removed if the writer is dropped unfinished.
    pending: Vec<PathBuf>,
    finished: bool,
}

impl PackageWriter {
    /// Starts a package at `path`. Archives go to `<path>.partial` until [`finish`](Self::finish);
    /// a directory must exist (the caller decides what may already be in it).
    pub fn create(path: &Path, container: Container, gzip_level: u32) -> io::Result<Self> {
        let target = if container == Container::Directory {
            Target::Directory
        } else {
            let mut partial = path.as_os_str().to_owned();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let file = File::create(&partial).map_err(|e| at(&partial, e))?;
            let hashed = HashingWriter::new(BufWriter::with_capacity(BUFFER, file));
            let encoder = match container {
                Container::TarGz => {
                    Encoder::Gzip(GzEncoder::new(hashed, Compression::new(gzip_level.min(9))))
                }
                // Level 1: layers are compressed already; a higher level costs CPU for nothing.
                Container::TarZst => Encoder::Zstd(zstd::Encoder::new(hashed, 1)?),
                _ => Encoder::Plain(hashed),
            };
            let mut tar = tar::Builder::new(encoder);
            tar.mode(tar::HeaderMode::Deterministic);
            Target::Archive {
                partial,
                tar: Some(Box::new(tar)),
                dirs: BTreeSet::new(),
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            target,
            entry_bytes: 0,
            pending: Vec::new(),
            finished: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a small entry held in memory.
    pub fn add_bytes(&mut self, entry: &str, bytes: &[u8]) -> io::Result<()> {
        self.add_reader(entry, bytes.len() as u64, bytes)
    }

    /// Adds an entry of exactly `size` bytes read from `reader`. A reader that ends early or
    /// yields more fails the entry (and with it the package): a tar entry cannot be shortened
    /// afterwards, and a wrong size would corrupt every entry after it.
    pub fn add_reader(&mut self, entry: &str, size: u64, reader: impl Read) -> io::Result<()> {
        let mut exact = Exact {
            inner: reader,
            left: size,
            entry: entry.to_string(),
        };
        match &mut self.target {
            Target::Archive { tar, dirs, .. } => {
                let tar = tar.as_mut().expect("archive writer used after finish");
                // Parent directories first, as `tar` itself writes them, so extraction by any tool
                // creates them with sane modes.
                let parts: Vec<&str> = entry.split('/').collect();
                let mut parent = String::new();
                for part in &parts[..parts.len() - 1] {
                    parent.push_str(part);
                    parent.push('/');
                    if dirs.insert(parent.clone()) {
                        tar.append_data(&mut tar_header(0, true), &parent, io::empty())?;
                    }
                }
                tar.append_data(&mut tar_header(size, false), entry, &mut exact)?;
                exact.check_end()?;
            }
            Target::Directory => {
                let dest = self.path.join(entry);
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent).map_err(|e| at(parent, e))?;
                }
                let mut partial = dest.as_os_str().to_owned();
                partial.push(".partial");
                let partial = PathBuf::from(partial);
                self.pending.push(partial.clone());
                let mut out = BufWriter::with_capacity(
                    BUFFER,
                    File::create(&partial).map_err(|e| at(&partial, e))?,
                );
                io::copy(&mut exact, &mut out)?;
                exact.check_end()?;
                out.into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .map_err(|e| at(&partial, e))?;
                fs::rename(&partial, &dest).map_err(|e| at(&dest, e))?;
                self.pending.pop();
            }
        }
        self.entry_bytes += size;
        Ok(())
    }

    /// Completes the package: closes and syncs the archive, renames it to its final name and
    /// writes `<file>.sha256` next to it.
    pub fn finish(mut self) -> io::Result<Written> {
        let written = match &mut self.target {
            Target::Directory => Written {
                path: self.path.clone(),
                bytes: self.entry_bytes,
                sha256: None,
                sha256_file: None,
            },
            Target::Archive { partial, tar, .. } => {
                let tar = tar.take().expect("finish called once");
                let hashed = tar
                    .into_inner()
                    .and_then(Encoder::finish)
                    .map_err(|e| at(partial, e))?;
                let (file, digest, len) = {
                    let HashingWriter { inner, hasher, len } = hashed;
                    let file = inner
                        .into_inner()
                        .map_err(|e| at(partial, e.into_error()))?;
                    (file, hasher.finish(), len)
                };
                // The package must be on disk before it is announced as complete.
                file.sync_all().map_err(|e| at(partial, e))?;
                fs::rename(&*partial, &self.path).map_err(|e| at(&self.path, e))?;
                let sidecar = sidecar_path(&self.path);
                let name = self
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                fs::write(&sidecar, format!("{}  {name}\n", digest.hex()))
                    .map_err(|e| at(&sidecar, e))?;
                Written {
                    path: self.path.clone(),
                    bytes: len,
                    sha256: Some(digest),
                    sha256_file: Some(sidecar),
                }
            }
        };
        self.finished = true;
        Ok(written)
    }
}

impl Drop for PackageWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        for p in &self.pending {
            let _ = fs::remove_file(p);
        }
        if let Target::Archive { partial, tar, .. } = &mut self.target {
            drop(tar.take());
            let _ = fs::remove_file(&*partial);
        }
    }
}

/// `x.tgz` → `x.tgz.sha256`.
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Passes exactly `left` bytes through, failing on a short or long source.
struct Exact<R> {
    inner: R,
    left: u64,
    entry: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: source ended {} bytes early", self.entry, self.left),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: Read> Exact<R> {
    fn check_end(&mut self) -> io::Result<()> {
        if self.left > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: source ended {} bytes early", self.entry, self.left),
            ));
        }
        let mut probe = [0u8; 1];
        if self.inner.read(&mut probe)? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: source is longer than its recorded size", self.entry),
            ));
        }
        Ok(())
    }
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// One image of an OCI layout's `index.json`.
#[derive(Debug, Clone)]
pub struct LayoutEntry {
    /// The full reference as the package names it (`registry/repository:tag`), recorded as
    /// `org.opencontainers.image.ref.name` so the push knows where the image came from.
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexDescriptor<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    annotations: std::collections::BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LayoutIndex<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<IndexDescriptor<'a>>,
}

/// The `oci-layout` marker and `index.json` of an OCI image layout holding `entries`.
pub fn layout_files(entries: &[LayoutEntry]) -> io::Result<[(&'static str, Vec<u8>); 2]> {
    let index = LayoutIndex {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests: entries
            .iter()
            .map(|e| IndexDescriptor {
                media_type: &e.media_type,
                digest: e.digest.as_str(),
                size: e.size,
                annotations: [(REF_NAME_ANNOTATION, e.reference.as_str())].into(),
            })
            .collect(),
    };
    Ok([
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        (
            "index.json",
            serde_json::to_vec_pretty(&index).map_err(io::Error::other)?,
        ),
    ])
}

/// Entry path of a blob in violet's store.
pub fn blob_entry(digest: &Digest) -> String {
    format!("{STORE_ROOT}blobs/sha256/{}", digest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_tgz(path: &Path) -> Vec<(String, Vec<u8>)> {
        let f = File::open(path).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn archive_appears_only_when_finished_with_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tgz");
        let mut w = PackageWriter::create(&path, Container::TarGz, 1).unwrap();
        w.add_bytes("violet.yaml", b"name: x\n").unwrap();
        let long = format!("images/blobs/sha256/{}", "a".repeat(64));
        w.add_reader(&long, 3, &b"abc"[..]).unwrap();
        assert!(!path.exists(), "no final file before finish");
        let written = w.finish().unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(written.sha256, Some(Digest::of(&bytes)));
        let sidecar = fs::read_to_string(sidecar_path(&path)).unwrap();
        assert_eq!(sidecar, format!("{}  x.tgz\n", Digest::of(&bytes).hex()));
        let entries = read_tgz(&path);
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "violet.yaml",
                "images/",
                "images/blobs/",
                "images/blobs/sha256/",
                long.as_str()
            ]
        );
        assert_eq!(entries[4].1, b"abc");
    }

    #[test]
    fn a_short_source_fails_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar");
        let mut w = PackageWriter::create(&path, Container::Tar, 1).unwrap();
        let err = w.add_reader("blob", 10, &b"abc"[..]).unwrap_err();
        assert!(err.to_string().contains("7 bytes early"), "{err}");
        drop(w);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        let out = dir.path().join("d");
        fs::create_dir(&out).unwrap();
        let mut w = PackageWriter::create(&out, Container::Directory, 1).unwrap();
        assert!(w.add_reader("a/b", 2, &b"abc"[..]).is_err());
        drop(w);
        assert!(!out.join("a/b").exists() && !out.join("a/b.partial").exists());
    }

    #[test]
    fn layout_index_names_every_image() {
        let d = Digest::of(b"x");
        let [(marker, _), (name, index)] = layout_files(&[LayoutEntry {
            reference: "r.io/a/b:v1".into(),
            digest: d.clone(),
            media_type: OCI_INDEX.into(),
            size: 1,
        }])
        .unwrap();
        assert_eq!((marker, name), ("oci-layout", "index.json"));
        let v: serde_json::Value = serde_json::from_slice(&index).unwrap();
        assert_eq!(
            v["manifests"][0]["annotations"][REF_NAME_ANNOTATION],
            "r.io/a/b:v1"
        );
        assert_eq!(v["manifests"][0]["digest"], d.as_str());
    }
}
