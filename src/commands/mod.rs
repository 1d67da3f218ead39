//! One module per subcommand: an `Args` struct and a `run` function returning an exit code.

pub mod completion;
pub mod gc;
pub mod list;
pub mod mirror;
pub mod push;
pub mod show;
pub mod verify;
pub mod version;
