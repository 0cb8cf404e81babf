//! shoal's configuration. See `docs/CONFIG.md` for every key.
//!
//! [`load_file`] / [`load_str`] run the whole pipeline: `${VAR}` interpolation
//! on the raw text, YAML parsing, strict mapping onto the [model](Config)
//! (unknown keys and wrong types are errors with key path and line), then
//! semantic validation that reports every problem at once.
#![forbid(unsafe_code)]

pub mod cidr;
mod diagnose;
mod error;
mod fields;
mod interpolate;
mod lines;
mod load;
mod model;
mod suggest;
pub mod units;
mod upstream;
mod validate;

pub use error::{ConfigError, ErrorKind, Problem};
pub use load::{line_of, load_file, load_str, load_str_checked, to_yaml, ExternalCheck};
pub use model::*;

#[cfg(test)]
mod tests;
