//! Output: the printer (text / JSON / YAML / quiet) and progress reporting.

pub mod printer;

pub use printer::{Format, Printer};
