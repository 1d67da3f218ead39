//! Output: the printer (text / JSON / YAML / quiet) and progress reporting.

pub mod printer;
pub mod progress;

pub use printer::{Format, Printer};
pub use progress::{Progress, human_bytes};
