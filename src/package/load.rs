//! Opening packages: a single package (file or extracted directory), or every package in a directory.

use std::path::Path;

use crate::package::{Package, PackageError};

/// Opens one package: a `.tgz`/`.tar.gz`/`.tar`/`.tar.zst` file or an extracted package directory
/// (one holding the metadata file or an image store at its root). Nested packages (core package
/// `plugins/*.tgz`) are opened too and appear in `Package::children`.
pub fn open(path: &Path) -> Result<Package, PackageError> {
    let _ = path;
    todo!("package reading")
}

/// Whether `path` is itself a package (archive file, or directory with metadata / image store).
pub fn is_package(path: &Path) -> bool {
    let _ = path;
    todo!("package reading")
}

/// Every package in `path`: `path` itself when it is a package, otherwise every package file and
/// extracted package directory directly inside it, sorted by name. One unreadable package does not
/// hide the others: each comes back as its own `Result`.
pub fn discover(path: &Path) -> Result<Vec<Result<Package, PackageError>>, PackageError> {
    let _ = path;
    todo!("package reading")
}
