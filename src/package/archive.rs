//! Package containers: tar, tar+gzip, tar+zstd and plain directories, read entry by entry without
//! extracting anything. Every entry passes the safety checks (no absolute paths, no `..`, no links
//! leaving the package, no devices, no duplicates) before a caller sees it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::package::{Container, PackageError};

/// What a walk's callback wants done with the rest of the archive.
pub enum Flow {
    Continue,
    Stop,
}

/// Largest entry we accept at all: anything bigger is a forged header, not a real image layer.
pub(crate) const MAX_ENTRY_SIZE: u64 = 1 << 40;
/// More entries than this is a zip bomb of tiny files, not a package.
pub(crate) const MAX_ENTRIES: u64 = 1_000_000;
/// Each small file held in memory (metadata, index.json, links, manifests).
pub(crate) const MAX_SMALL_FILE: u64 = 4 << 20;
/// All small files of one package held in memory together.
pub(crate) const MAX_SMALL_TOTAL: u64 = 64 << 20;

/// Names the package (and nested entry chain) being read, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub path: PathBuf,
    pub nest: Vec<String>,
}

impl Ctx {
    /// Entry name as the user sees it: nested archives joined with `!`.
    pub fn entry(&self, entry: &str) -> String {
        let mut s = String::new();
        for n in &self.nest {
            s.push_str(n);
            s.push('!');
        }
        s.push_str(entry);
        s
    }

    pub fn corrupt(&self, entry: Option<&str>, err: impl std::fmt::Display) -> PackageError {
        PackageError::Corrupt {
            path: self.path.clone(),
            entry: entry.map(|e| self.entry(e)),
            detail: err.to_string(),
        }
    }

    pub fn too_large(&self, entry: &str, size: u64, limit: u64) -> PackageError {
        PackageError::TooLarge {
            path: self.path.clone(),
            entry: self.entry(entry),
            size,
            limit,
        }
    }

    fn unsafe_entry(&self, entry: &str, reason: &str) -> PackageError {
        PackageError::UnsafeEntry {
            path: self.path.clone(),
            entry: self.entry(entry),
            reason: reason.to_string(),
        }
    }

    pub fn child(&self, entry: &str) -> Ctx {
        let mut nest = self.nest.clone();
        nest.push(entry.to_string());
        Ctx {
            path: self.path.clone(),
            nest,
        }
    }
}

/// One regular file of a container, as handed to a visitor.
#[derive(Debug, Clone)]
pub(crate) struct EntryInfo {
    /// Normalized path (no `./`, no trailing `/`).
    pub path: String,
    pub size: u64,
    /// Absolute offset of the data in the physical file, when no decompressor is involved.
    pub offset: Option<u64>,
}

pub(crate) type Visitor<'f> =
    dyn FnMut(&EntryInfo, &mut dyn Read) -> Result<Flow, PackageError> + 'f;

/// The container type a file starts with, from its first bytes (at least 262 for tar).
pub(crate) fn sniff(head: &[u8]) -> Option<Container> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Container::TarGz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Container::TarZst)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Container::Tar)
    } else {
        None
    }
}

/// Names that mark a file inside a package as a nested package (the plugins of a core package).
pub(crate) fn has_archive_extension(name: &str) -> bool {
    [".tgz", ".tar", ".tar.gz", ".tar.zst"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Reads up to `n` bytes (fewer only at end of input).
pub(crate) fn read_head(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The container of a package on disk, by content for files.
pub(crate) fn detect(path: &Path) -> Result<Container, PackageError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        return Ok(Container::Directory);
    }
    let mut f = File::open(path).map_err(|e| io_error(path, e))?;
    let head = read_head(&mut f, 512).map_err(|e| io_error(path, e))?;
    sniff(&head).ok_or_else(|| PackageError::NotAnArchive {
        path: path.to_path_buf(),
    })
}

pub(crate) fn io_error(path: &Path, e: io::Error) -> PackageError {
    if e.kind() == io::ErrorKind::NotFound {
        PackageError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        PackageError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// Walks a package on disk (file or directory) and calls `f` for every regular file, in archive
/// order (sorted order for directories), until `f` says stop.
pub(crate) fn walk_path(
    path: &Path,
    container: Container,
    ctx: &Ctx,
    f: &mut Visitor,
) -> Result<(), PackageError> {
    match container {
        Container::Directory => {
            let root = path.canonicalize().map_err(|e| io_error(path, e))?;
            let mut count = 0;
            walk_dir(&root, &root, "", ctx, &mut count, f).map(|_| ())
        }
        Container::Tar => {
            let file = File::open(path).map_err(|e| io_error(path, e))?;
            let len = file.metadata().map_err(|e| io_error(path, e))?.len();
            let mut archive = tar::Archive::new(file);
            // Seeking skips blob bytes nobody asked for instead of reading them.
            let entries = archive
                .entries_with_seek()
                .map_err(|e| ctx.corrupt(None, e))?;
            let (flow, last) = walk_entries(entries, Some(0), Some(len), ctx, f)?;
            if let Flow::Continue = flow {
                end_of_archive(&mut archive.into_inner(), ctx, last.as_deref())?;
            }
            Ok(())
        }
        Container::TarGz | Container::TarZst => {
            let mut file =
                BufReader::with_capacity(1 << 20, File::open(path).map_err(|e| io_error(path, e))?);
            walk_reader(&mut file, container, None, ctx, f).map(|_| ())
        }
    }
}

/// Walks an archive read sequentially from `r`. `base` is the offset of `r`'s first byte in the
/// physical file when `r` is plain bytes of that file (uncompressed tar chain).
pub(crate) fn walk_reader(
    r: &mut dyn Read,
    container: Container,
    base: Option<u64>,
    ctx: &Ctx,
    f: &mut Visitor,
) -> Result<Flow, PackageError> {
    match container {
        Container::Tar => walk_tar(r, base, ctx, f, false),
        Container::TarGz => {
            let decoder = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, r));
            walk_tar(decoder, None, ctx, f, true)
        }
        Container::TarZst => {
            let decoder = zstd::stream::read::Decoder::new(r).map_err(|e| ctx.corrupt(None, e))?;
            walk_tar(decoder, None, ctx, f, true)
        }
        Container::Directory => Err(ctx.corrupt(None, "a directory cannot be read as a stream")),
    }
}

/// Walks one tar stream, then proves it complete: the end-of-archive blocks must follow the last
/// entry, and a compressed stream must end cleanly (gzip CRC and length trailer, a finished zstd
/// frame), so a package cut short anywhere is refused instead of read as a smaller one.
fn walk_tar<R: Read>(
    r: R,
    base: Option<u64>,
    ctx: &Ctx,
    f: &mut Visitor,
    compressed: bool,
) -> Result<Flow, PackageError> {
    let mut archive = tar::Archive::new(r);
    let entries = archive.entries().map_err(|e| ctx.corrupt(None, e))?;
    let (flow, last) = walk_entries(entries, base, None, ctx, f)?;
    if let Flow::Stop = flow {
        return Ok(flow);
    }
    let mut r = archive.into_inner();
    end_of_archive(&mut r, ctx, last.as_deref())?;
    if compressed {
        // The decoder checks the trailer only when it is read to its end; what follows the
        // end-of-archive blocks is record padding, read and dropped in bounded chunks.
        io::copy(&mut r, &mut io::sink()).map_err(|e| {
            ctx.corrupt(
                None,
                format!("the compressed stream does not end cleanly: {e}"),
            )
        })?;
    }
    Ok(flow)
}

/// The tar reader stops at the first zero block, or silently at an end of input that falls
/// between two entries; every standard writer ends an archive with two zero blocks. Reading
/// the block after the one the reader consumed tells the two apart.
fn end_of_archive(r: &mut dyn Read, ctx: &Ctx, last: Option<&str>) -> Result<(), PackageError> {
    let block = read_head(r, 512).map_err(|e| ctx.corrupt(last, e))?;
    if block.len() == 512 && block.iter().all(|b| *b == 0) {
        return Ok(());
    }
    let after = last
        .map(|l| format!(" after {}", ctx.entry(l)))
        .unwrap_or_default();
    Err(PackageError::Corrupt {
        path: ctx.path.clone(),
        entry: None,
        detail: format!(
            "the archive ends{after} without its end-of-archive blocks: it was cut short"
        ),
    })
}

fn walk_entries<R: Read>(
    entries: tar::Entries<'_, R>,
    base: Option<u64>,
    file_len: Option<u64>,
    ctx: &Ctx,
    f: &mut Visitor,
) -> Result<(Flow, Option<String>), PackageError> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut count: u64 = 0;
    let mut last: Option<String> = None;
    for item in entries {
        let mut entry = item.map_err(|e| match &last {
            Some(l) => ctx.corrupt(Some(l), format!("after this entry: {e}")),
            None => ctx.corrupt(None, e),
        })?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(ctx.too_large("(number of entries)", count, MAX_ENTRIES));
        }
        let ty = entry.header().entry_type();
        if ty.is_pax_global_extensions() {
            continue;
        }
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = normalize(&raw_name).map_err(|reason| ctx.unsafe_entry(&raw_name, reason))?;
        if name.is_empty() {
            continue;
        }
        if !seen.insert(name.clone()) {
            return Err(PackageError::DuplicateEntry {
                path: ctx.path.clone(),
                entry: ctx.entry(&name),
            });
        }
        last = Some(name.clone());
        if ty.is_dir() {
            continue;
        }
        if ty.is_symlink() || ty.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            // Symlinks resolve from their own directory, hard links from the archive root.
            let from = if ty.is_symlink() { parent(&name) } else { "" };
            if !link_stays_inside(from, &target) {
                return Err(
                    ctx.unsafe_entry(&name, &format!("link target {target:?} leaves the package"))
                );
            }
            continue;
        }
        if ty.is_character_special() || ty.is_block_special() || ty.is_fifo() {
            return Err(
                ctx.unsafe_entry(&name, "device or fifo entries are not allowed in a package")
            );
        }
        if ty.is_gnu_sparse() {
            return Err(ctx.unsafe_entry(&name, "sparse files are not supported in a package"));
        }
        if !(ty.is_file() || ty.is_contiguous()) {
            // Vendor extension headers carry no package content.
            continue;
        }
        let size = entry.size();
        if size > MAX_ENTRY_SIZE {
            return Err(ctx.too_large(&name, size, MAX_ENTRY_SIZE));
        }
        let offset = base.map(|b| b + entry.raw_file_position());
        if let (Some(off), Some(len)) = (offset, file_len)
            && off.saturating_add(size) > len
        {
            return Err(ctx.corrupt(
                Some(&name),
                format!("entry data ends past the end of the file ({len} bytes)"),
            ));
        }
        let info = EntryInfo {
            path: name,
            size,
            offset,
        };
        let mut exact = Exact {
            inner: &mut entry,
            remaining: size,
        };
        if let Flow::Stop = f(&info, &mut exact)? {
            return Ok((Flow::Stop, last));
        }
    }
    Ok((Flow::Continue, last))
}

fn walk_dir(
    root: &Path,
    dir: &Path,
    prefix: &str,
    ctx: &Ctx,
    count: &mut u64,
    f: &mut Visitor,
) -> Result<Flow, PackageError> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    let mut names = Vec::new();
    for e in rd {
        names.push(e.map_err(|e| io_error(dir, e))?.file_name());
    }
    names.sort();
    for name in names {
        *count += 1;
        if *count > MAX_ENTRIES {
            return Err(ctx.too_large("(number of files)", *count, MAX_ENTRIES));
        }
        let full = dir.join(&name);
        let rel = format!("{prefix}{}", name.to_string_lossy());
        let meta = std::fs::symlink_metadata(&full).map_err(|e| io_error(&full, e))?;
        let ft = meta.file_type();
        let (file, size) = if ft.is_dir() {
            if let Flow::Stop = walk_dir(root, &full, &format!("{rel}/"), ctx, count, f)? {
                return Ok(Flow::Stop);
            }
            continue;
        } else if ft.is_symlink() {
            let target = full.canonicalize().map_err(|e| io_error(&full, e))?;
            if !target.starts_with(root) {
                return Err(ctx.unsafe_entry(
                    &rel,
                    &format!("symlink to {} leaves the package", target.display()),
                ));
            }
            let tmeta = std::fs::metadata(&target).map_err(|e| io_error(&target, e))?;
            // Linked directories are not descended into: that is how link loops are avoided.
            if !tmeta.is_file() {
                continue;
            }
            (target, tmeta.len())
        } else if ft.is_file() {
            (full, meta.len())
        } else {
            return Err(ctx.unsafe_entry(
                &rel,
                "device, fifo or socket files are not allowed in a package",
            ));
        };
        let mut reader = File::open(&file).map_err(|e| io_error(&file, e))?;
        let info = EntryInfo {
            path: rel,
            size,
            offset: None,
        };
        let mut exact = Exact {
            inner: &mut reader,
            remaining: size,
        };
        if let Flow::Stop = f(&info, &mut exact)? {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// Normalizes an entry name; `Err` carries why the name is unsafe.
pub(crate) fn normalize(name: &str) -> Result<String, &'static str> {
    if name.starts_with('/') {
        return Err("absolute path");
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("path contains '..'"),
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

fn link_stays_inside(from_dir: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut stack: Vec<&str> = from_dir.split('/').filter(|c| !c.is_empty()).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            s => stack.push(s),
        }
    }
    true
}

/// Yields exactly `remaining` bytes, turning an early end of input into an error: a truncated
/// archive must never pass for a short blob.
pub(crate) struct Exact<'a> {
    pub inner: &'a mut dyn Read,
    pub remaining: u64,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry data ends {} bytes early", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads a whole small entry, mapping read failures to `Corrupt` naming the entry.
pub(crate) fn read_entry(
    r: &mut dyn Read,
    info: &EntryInfo,
    ctx: &Ctx,
) -> Result<Vec<u8>, PackageError> {
    let mut buf = Vec::with_capacity(usize::try_from(info.size.min(MAX_SMALL_FILE)).unwrap_or(0));
    r.read_to_end(&mut buf)
        .map_err(|e| ctx.corrupt(Some(&info.path), e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(normalize("./a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(normalize("./").unwrap(), "");
        assert!(normalize("/etc/passwd").is_err());
        assert!(normalize("a/../../b").is_err());
        assert!(link_stays_inside("a/b", "../c"));
        assert!(!link_stays_inside("a", "../../c"));
        assert!(!link_stays_inside("", "/etc/passwd"));
    }

    #[test]
    fn sniffs_magic_not_extension() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Some(Container::TarGz));
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Container::TarZst));
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff(&tar), Some(Container::Tar));
        assert_eq!(sniff(b"hello"), None);
    }
}
