//! `shoal deploy kubernetes | compose | systemd`: ready-to-apply files
//! written from a config, with comments saying why each setting is there.
//!
//! shoal runs on the existing engines rather than replacing them: these
//! files give Kubernetes, Compose or systemd what they need to run shoal
//! well — readiness on `/ready`, liveness on `/health`, a stop that waits
//! for `shutdown.delay` + `shutdown.grace`, no privileges — and the config
//! they carry is the user's own, with only what a container needs changed
//! (see [`config::for_container`]).
//!
//! - `kubernetes.rs`: two patterns, shoal as the proxy tier in front of the
//!   app's Service, or shoal as the entrypoint of each app pod;
//! - `compose.rs`: shoal, the app's instances and Redis (with Sentinel when
//!   the config uses it);
//! - `unit.rs`: a systemd unit, `Type=notify` (see `crate::systemd`).

mod compose;
mod config;
mod kubernetes;
mod unit;

use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_config::Config;

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Kubernetes,
    Compose,
    Systemd,
}

/// How shoal runs on Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pattern {
    /// shoal's own Deployment, in front of the app's Service.
    Proxy,
    /// shoal as the entrypoint of each app pod, supervising its workers.
    Entrypoint,
}

/// The choices the config does not hold.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Folder to write into (created; existing files of the same names are replaced)
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// shoal's container image
    #[arg(
        long,
        default_value = "ghcr.io/shoal-proxy/shoal:latest",
        value_name = "IMAGE"
    )]
    pub image: String,
    /// The app's container image (it must listen on $PORT)
    #[arg(
        long,
        default_value = "registry.example.com/my-app:latest",
        value_name = "IMAGE"
    )]
    pub app_image: String,
    /// The port the app listens on in its container (Kubernetes proxy pattern, Compose)
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    pub app_port: u16,
    /// Kubernetes: how shoal runs
    #[arg(long, value_enum, default_value = "proxy")]
    pub pattern: Pattern,
    /// Kubernetes: shoal replicas (the HPA's minimum)
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub replicas: u32,
    /// Kubernetes: the HPA's maximum
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub max_replicas: u32,
    /// systemd: the shoal binary's path on the host
    #[arg(long, default_value = "/usr/local/bin/shoal", value_name = "PATH")]
    pub exe: PathBuf,
    /// systemd: where the config is on the host
    #[arg(long, default_value = "/etc/shoal/shoal.yaml", value_name = "PATH")]
    pub config_path: PathBuf,
}

/// What the files are made from: the config as written (its text, for the
/// ConfigMap or the mounted file) and as loaded (ports, timings, the app).
pub struct Source<'a> {
    pub text: &'a str,
    pub config: &'a Config,
    pub origin: &'a str,
}

/// One file to write: its name in the folder and its text.
pub struct File {
    pub name: String,
    pub text: String,
}

/// Facts about the config the generators share.
pub(crate) struct Facts {
    /// The first public listener's port.
    pub port: u16,
    pub admin_port: u16,
    /// `shutdown.delay` + `shutdown.grace` + the app's `stop_timeout`:
    /// the longest a graceful stop takes.
    pub stop: Duration,
    pub shutdown_delay: Duration,
    /// The first app's name and instance count, if the config has apps.
    pub app: Option<(String, u32, Option<String>)>,
    pub redis: bool,
    pub sentinel: Option<shoal_config::SentinelConfig>,
}

impl Facts {
    pub fn of(config: &Config) -> Facts {
        let port = config
            .public_listeners()
            .first()
            .map_or(8080, |l| l.listen.port());
        let apps = config.all_apps();
        let app = apps
            .first()
            .map(|(name, app)| (name.to_string(), app.instances, app.health.path.clone()));
        let stop_timeout = apps
            .iter()
            .map(|(_, a)| a.stop_timeout)
            .max()
            .unwrap_or_default();
        Facts {
            port,
            admin_port: config.admin.listen.port(),
            stop: config.shutdown.delay + config.shutdown.grace + stop_timeout,
            shutdown_delay: config.shutdown.delay,
            app,
            redis: config.state.backend == shoal_config::StateBackend::Redis,
            sentinel: config.state.sentinel.clone(),
        }
    }
}

/// Whole seconds, rounded up.
pub(crate) fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The files for `target`.
pub fn generate(target: Target, src: &Source<'_>, opts: &Options) -> Result<Vec<File>, String> {
    match target {
        Target::Kubernetes => kubernetes::files(src, opts),
        Target::Compose => compose::files(src, opts),
        Target::Systemd => Ok(unit::files(src, opts)),
    }
}

/// Write `files` into `dir`.
pub fn write(dir: &Path, files: &[File]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for f in files {
        std::fs::write(dir.join(&f.name), &f.text)?;
    }
    Ok(())
}

/// A generated file's first lines: where it came from, and how to remake it.
pub(crate) fn header(src: &Source<'_>, command: &str) -> String {
    format!(
        "# Written by `shoal deploy {command}` from {} (shoal {}).\n\
         # Edit the config and run it again rather than editing this file.\n",
        src.origin,
        env!("CARGO_PKG_VERSION")
    )
}
