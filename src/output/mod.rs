//! Output: the printer (text / JSON / YAML / quiet) and progress reporting.

pub mod escape;
pub mod printer;
pub mod progress;

pub use escape::{escape, escape_text};
pub use printer::{Format, Printer};
pub use progress::{Progress, human_bytes};
