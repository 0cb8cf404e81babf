//! The dashboard at `GET /` of the admin listener: one page (HTML, JS and
//! CSS written by hand, compiled into the binary, no build step) that
//! reads the admin API — status, the sampled history below, the events —
//! and follows it live over Server-Sent Events. Its scale and reload
//! buttons call the admin API with the token the user types in.

pub mod history;
mod sampler;
mod serve;

pub use history::{History, Sample};
pub use sampler::spawn;
pub use serve::{asset, history_route, is_asset, HISTORY_PATH};
