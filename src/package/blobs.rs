//! Reading blob bytes out of a package without extracting it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read};
use std::os::unix::fs::FileExt;

use crate::digest::{Digest, Hasher};
// `Flow` lives with the archive walk that obeys it; the blob stream passes it through.
pub use crate::package::archive::Flow;
use crate::package::archive::{self, Ctx, EntryInfo};
use crate::package::{BlobLocation, Container, Package, PackageError};

/// Read buffer for hashing and copying blob bytes.
const BUF: usize = 1 << 20;

/// Opens one blob for reading when the package allows random access (directory, or uncompressed
/// tar chain: `location.offset` / `location.entry` is used). Returns `Ok(None)` when the blob sits
/// behind a decompressor and can only be read by [`stream`].
pub fn open(
    pkg: &Package,
    location: &BlobLocation,
) -> Result<Option<Box<dyn Read + Send>>, PackageError> {
    let size = size_of(pkg, location);
    let top_is_dir = pkg.path.is_dir();
    if let Some(offset) = location.offset {
        let size = size.ok_or_else(|| unknown_location(pkg, location))?;
        // Offsets count from the outermost file; under a directory, that is the first nested archive.
        let file_path = match (top_is_dir, location.nest.first()) {
            (true, Some(first)) => pkg.path.join(first),
            (true, None) => return Err(unknown_location(pkg, location)),
            (false, _) => pkg.path.clone(),
        };
        let file = File::open(&file_path).map_err(|e| archive::io_error(&file_path, e))?;
        return Ok(Some(Box::new(Pread {
            file,
            pos: offset,
            end: offset + size,
        })));
    }
    if top_is_dir && location.nest.is_empty() {
        let path = pkg.path.join(&location.entry);
        let file = File::open(&path).map_err(|e| archive::io_error(&path, e))?;
        let reader: Box<dyn Read + Send> = match size {
            Some(s) => Box::new(file.take(s)),
            None => Box::new(file),
        };
        return Ok(Some(reader));
    }
    Ok(None)
}

/// Size of the blob or manifest stored at `location`, from the package model.
fn size_of(pkg: &Package, location: &BlobLocation) -> Option<u64> {
    pkg.flatten().into_iter().find_map(|p| {
        p.blobs
            .values()
            .find(|b| &b.location == location)
            .map(|b| b.size)
            .or_else(|| {
                p.manifests
                    .values()
                    .find(|m| &m.location == location)
                    .map(|m| m.bytes.len() as u64)
            })
    })
}

fn unknown_location(pkg: &Package, location: &BlobLocation) -> PackageError {
    PackageError::Corrupt {
        path: pkg.path.clone(),
        entry: Some(location.entry.clone()),
        detail: "no blob of this package is stored at this location".into(),
    }
}

/// Positional reads of one byte range: each reader has its own cursor, so many can run in parallel.
struct Pread {
    file: File,
    pos: u64,
    end: u64,
}

impl Read for Pread {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            // The caller's error names the package and entry; saying the path here too would
            // print it twice.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ends before the blob at offset {} does", self.pos),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The [`stream`] callback: digest, where it sits, and a reader over exactly its bytes.
pub type BlobVisitor<'a> =
    dyn FnMut(&Digest, &BlobLocation, &mut dyn Read) -> Result<Flow, PackageError> + 'a;

/// Reads the package file once from start to end (decompressing as it goes, descending into nested
/// archives) and calls `f` for every blob entry whose digest is in `wanted` (manifests and blobs of
/// this package and of nested packages), in archive order, with a reader over exactly its bytes.
/// Bytes `f` does not read are skipped. Memory stays bounded whatever the blob sizes.
///
/// The reader fails with `UnexpectedEof` when the archive ends inside the blob. A wanted blob that
/// never appears is reported as `MissingBlob` once the pass is over.
pub fn stream(
    pkg: &Package,
    wanted: &dyn Fn(&Digest) -> bool,
    f: &mut BlobVisitor,
) -> Result<(), PackageError> {
    let mut index: HashMap<(Vec<String>, String), (Digest, BlobLocation)> = HashMap::new();
    let mut child_nests: HashSet<Vec<String>> = HashSet::new();
    for p in pkg.flatten() {
        child_nests.insert(p.nest.clone());
        let locations = p.manifests.values().map(|m| (&m.digest, &m.location));
        for (digest, location) in
            locations.chain(p.blobs.values().map(|b| (&b.digest, &b.location)))
        {
            index
                .entry((location.nest.clone(), location.entry.clone()))
                .or_insert_with(|| (digest.clone(), location.clone()));
        }
    }
    let top_is_dir = pkg.path.is_dir();
    let container = if top_is_dir {
        Container::Directory
    } else {
        archive::detect(&pkg.path)?
    };
    let mut pass = Pass {
        target: &pkg.nest,
        child_nests: &child_nests,
        index: &index,
        wanted,
        f,
        seen: HashSet::new(),
        top_is_dir,
        stopped: false,
    };
    let ctx = Ctx {
        path: pkg.path.clone(),
        nest: Vec::new(),
    };
    archive::walk_path(&pkg.path, container, &ctx, &mut |i, r| {
        pass.visit(&ctx, i, r)
    })?;
    if pass.stopped {
        return Ok(());
    }
    let mut missing: Vec<&(Digest, BlobLocation)> = index
        .values()
        .filter(|(d, _)| !pass.seen.contains(d) && wanted(d))
        .collect();
    missing.sort_by(|a, b| a.1.entry.cmp(&b.1.entry));
    if let Some((digest, location)) = missing.first() {
        return Err(PackageError::MissingBlob {
            path: pkg.path.clone(),
            what: user_of(pkg, digest, location),
            digest: digest.clone(),
        });
    }
    Ok(())
}

/// Who needs a blob, for the missing-blob message: the first image using it.
fn user_of(pkg: &Package, digest: &Digest, location: &BlobLocation) -> String {
    pkg.flatten()
        .into_iter()
        .flat_map(|p| p.images.iter())
        .find(|i| i.blobs.contains(digest) || i.manifests.contains(digest))
        .map(|i| format!("image {}", i.reference))
        .unwrap_or_else(|| format!("entry {}", location.entry))
}

/// State of one [`stream`] pass.
struct Pass<'a> {
    /// Nest chain of the package being streamed: archives on the way to it are entered, nothing
    /// outside it is reported.
    target: &'a [String],
    child_nests: &'a HashSet<Vec<String>>,
    index: &'a HashMap<(Vec<String>, String), (Digest, BlobLocation)>,
    wanted: &'a dyn Fn(&Digest) -> bool,
    f: &'a mut BlobVisitor<'a>,
    seen: HashSet<Digest>,
    top_is_dir: bool,
    stopped: bool,
}

impl Pass<'_> {
    fn visit(
        &mut self,
        ctx: &Ctx,
        info: &EntryInfo,
        r: &mut dyn Read,
    ) -> Result<Flow, PackageError> {
        let key = (ctx.nest.clone(), info.path.clone());
        if let Some((digest, location)) = self.index.get(&key) {
            if !(self.wanted)(digest) {
                return Ok(Flow::Continue);
            }
            self.seen.insert(digest.clone());
            let mut reader = BufReader::with_capacity(BUF, r);
            if let Flow::Stop = (self.f)(digest, location, &mut reader)? {
                self.stopped = true;
                return Ok(Flow::Stop);
            }
            return Ok(Flow::Continue);
        }
        let mut chain = ctx.nest.clone();
        chain.push(info.path.clone());
        let on_the_way = self.target.starts_with(&chain);
        if !(on_the_way || self.child_nests.contains(&chain)) {
            return Ok(Flow::Continue);
        }
        let head = archive::read_head(r, 512).map_err(|e| ctx.corrupt(Some(&info.path), e))?;
        let Some(container) = archive::sniff(&head) else {
            return Ok(Flow::Continue);
        };
        let base = match container {
            Container::Tar if self.top_is_dir && ctx.nest.is_empty() => Some(0),
            Container::Tar => info.offset,
            _ => None,
        };
        let child = ctx.child(&info.path);
        let mut chained = Cursor::new(head).chain(r);
        archive::walk_reader(&mut chained, container, base, &child, &mut |i, r| {
            self.visit(&child, i, r)
        })
    }
}

/// Hashes every manifest and blob of the package (and nested packages) in one pass and returns
/// the first mismatch or missing blob as an error naming the entry.
pub fn verify_all(pkg: &Package) -> Result<(), PackageError> {
    verify_all_keeping(pkg, &|_| false).map(|_| ())
}

/// The most [`verify_all_keeping`] keeps of one blob: it is for small blobs read on the way.
const KEEP_LIMIT: usize = 1 << 20;

/// [`verify_all`], keeping the bytes of the blobs `keep` selects (small ones: cosign payloads),
/// so that a compressed package is decoded once for both. A kept blob has matched its digest.
pub fn verify_all_keeping(
    pkg: &Package,
    keep: &dyn Fn(&Digest) -> bool,
) -> Result<HashMap<Digest, bytes::Bytes>, PackageError> {
    let mut kept = HashMap::new();
    let mut buf = vec![0u8; BUF];
    // What the descriptors say each blob measures: a package read front to back may never have
    // compared them with the entries (past an early stop), so the real lengths are checked here.
    let mut claimed: HashMap<&Digest, u64> = HashMap::new();
    for p in pkg.flatten() {
        for b in p.blobs.values() {
            claimed.insert(&b.digest, b.size);
        }
    }
    stream(pkg, &|_| true, &mut |digest, location, r| {
        let label = entry_label(location);
        let mut hasher = Hasher::new();
        let mut length: u64 = 0;
        let mut keeping = keep(digest).then(Vec::new);
        loop {
            let n = r.read(&mut buf).map_err(|e| PackageError::Corrupt {
                path: pkg.path.clone(),
                entry: Some(label.clone()),
                detail: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            length += n as u64;
            if let Some(k) = &mut keeping {
                if k.len() + n > KEEP_LIMIT {
                    keeping = None;
                } else {
                    k.extend_from_slice(&buf[..n]);
                }
            }
        }
        if let Some(&expected) = claimed.get(digest)
            && expected != length
        {
            return Err(PackageError::SizeMismatch {
                path: pkg.path.clone(),
                entry: label,
                expected,
                actual: length,
            });
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err(PackageError::DigestMismatch {
                path: pkg.path.clone(),
                entry: label,
                expected: digest.clone(),
                actual,
            });
        }
        if let Some(k) = keeping {
            kept.insert(actual, bytes::Bytes::from(k));
        }
        Ok(Flow::Continue)
    })?;
    Ok(kept)
}

fn entry_label(location: &BlobLocation) -> String {
    let mut s = String::new();
    for n in &location.nest {
        s.push_str(n);
        s.push('!');
    }
    s.push_str(&location.entry);
    s
}

#[cfg(test)]
mod tests;
