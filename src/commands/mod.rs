//! One module per subcommand: an `Args` struct and a `run` function returning an exit code.

pub mod completion;
pub mod create;
pub mod gc;
pub mod inventory;
pub mod list;
pub mod mirror;
pub mod package;
pub mod push;
pub mod show;
pub mod verify;
pub mod version;

/// Runs an async command body on a multi-threaded runtime: uploads and hashing use both cores.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(fut))
}
