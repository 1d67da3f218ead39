//! Reading blob bytes out of a package without extracting it.

use std::io::Read;

use crate::digest::Digest;
use crate::package::{BlobLocation, Package, PackageError};

/// Opens one blob for reading when the package allows random access (directory, or uncompressed
/// tar chain: `location.offset` / `location.entry` is used). Returns `Ok(None)` when the blob sits
/// behind a decompressor and can only be read by [`stream`].
pub fn open(pkg: &Package, location: &BlobLocation) -> Result<Option<Box<dyn Read + Send>>, PackageError> {
    let _ = (pkg, location);
    todo!("package reading")
}

/// What the [`stream`] callback wants done with the rest of the archive.
pub enum Flow {
    Continue,
    Stop,
}

/// Reads the package file once from start to end (decompressing as it goes, descending into nested
/// archives) and calls `f` for every blob entry whose digest is in `wanted` (manifests and blobs of
/// this package and of nested packages), in archive order, with a reader over exactly its bytes.
/// Bytes `f` does not read are skipped. Memory stays bounded whatever the blob sizes.
pub fn stream(
    pkg: &Package,
    wanted: &dyn Fn(&Digest) -> bool,
    f: &mut dyn FnMut(&Digest, &BlobLocation, &mut dyn Read) -> Result<Flow, PackageError>,
) -> Result<(), PackageError> {
    let _ = (pkg, wanted, f);
    todo!("package reading")
}

/// Hashes every manifest and blob of the package (and nested packages) in one pass and returns
/// the first mismatch or missing blob as an error naming the entry.
pub fn verify_all(pkg: &Package) -> Result<(), PackageError> {
    let _ = pkg;
    todo!("package reading")
}
