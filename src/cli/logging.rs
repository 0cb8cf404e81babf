//! Log setup: text or JSON to stderr, filter from `log.level` unless
//! `SHOAL_LOG` overrides it. Instances' own output goes to stdout/stderr
//! with their id as prefix, or, with `log.format: json`, each line as a
//! JSON object (`supervisor::output`), so the whole stream is JSON lines.

use std::io::IsTerminal;

use shoal_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

pub fn init(config: &LogConfig) {
    let filter = std::env::var("SHOAL_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    crate::supervisor::output::set_json(config.format == LogFormat::Json);
    let _ = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}
