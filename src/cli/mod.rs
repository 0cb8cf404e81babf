//! Command-line entry points. Each verb is a thin function over the library.

mod client;
mod control;
mod events;
mod logging;
mod plan;
mod top;
mod up;
mod verify;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use shoal_config::{Config, ConfigError};

/// Exit code for an invalid configuration (sysexits' EX_CONFIG).
pub const EXIT_CONFIG: i32 = 78;

/// Exit code for a usage error: what clap itself uses.
const EXIT_USAGE: i32 = 2;

const DEMO_CONFIG: &str = include_str!("../../examples/demo.yaml");

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "Run a stateless HTTP service as many supervised instances behind one load balancer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Client verbs over HTTPS: accept any certificate from the admin API.
    /// For testing only: anyone on the way could pose as shoal and read the
    /// token (trust it with the config's admin.tls or SHOAL_ADMIN_CA=FILE)
    #[arg(long, global = true)]
    insecure: bool,
}

#[derive(clap::Args, Clone)]
pub struct ConfigSource {
    /// Config file
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "file",
        default_value = "shoal.yaml",
        value_name = "FILE"
    )]
    file: PathBuf,
    /// Use the embedded demo config (the bundled demo app, 3 instances) instead of a file
    #[arg(long, conflicts_with = "file")]
    demo: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Start the instances and the load balancer; run until SIGTERM/SIGINT
    Up(ConfigSource),
    /// Validate the config and print the effective configuration
    Check(ConfigSource),
    /// Show the instances of a running shoal
    Status {
        #[command(flatten)]
        src: ConfigSource,
        /// Admin API to ask, e.g. http://127.0.0.1:9090 (default: from the config's admin.listen)
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
        /// Print the raw JSON status
        #[arg(long)]
        json: bool,
    },
    /// Print the instances' recent output (as `pm2 logs`): `shoal logs`,
    /// `shoal logs app-2 -f`, `shoal logs --since 10m`
    Logs {
        /// One instance (`app-2`); every instance when absent
        #[arg(value_name = "INSTANCE")]
        instance: Option<String>,
        /// Keep printing new lines as they come
        #[arg(short, long)]
        follow: bool,
        /// Only lines from this long ago, e.g. 30s, 10m
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Lines to print at most before following
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
        /// Print each line as the JSON object the admin API sends
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        src: ConfigSource,
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
    },
    /// Change the number of instances of a running shoal (drains the ones removed):
    /// `shoal scale 6`, or `shoal scale api 6` for one of several apps
    Scale {
        /// The app (with several apps), then the new number of instances
        #[arg(value_name = "[APP] INSTANCES", num_args = 1..=2, required = true)]
        args: Vec<String>,
        #[command(flatten)]
        src: ConfigSource,
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
    },
    /// Replace every instance with a fresh one, with no failed request (rolling);
    /// with --apply-config, re-read and apply shoal's own config instead
    Reload {
        /// Re-read the config file of the running shoal and apply it (what
        /// SIGHUP does), instead of replacing the instances
        #[arg(long)]
        apply_config: bool,
        /// The old spelling of --apply-config (takes no FILE here: give the
        /// file with -c FILE or --file FILE)
        #[arg(long = "config")]
        old_config: bool,
        /// Config file that names the admin address (on `reload`, `--config`
        /// is the old --apply-config flag, so the long form is --file)
        #[arg(
            short = 'c',
            long = "file",
            default_value = "shoal.yaml",
            value_name = "FILE"
        )]
        file: PathBuf,
        /// Use the embedded demo config to find the admin address
        #[arg(long, conflicts_with = "file")]
        demo: bool,
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
        /// The app to reload, with several apps (`shoal reload web`)
        #[arg(value_name = "APP")]
        stray: Option<String>,
    },
    /// Print the lifecycle events of a running shoal (started, healthy, ejected,
    /// restarted, crash loop, drained, scaled, reloads…); -f follows new ones
    Events {
        #[command(flatten)]
        src: ConfigSource,
        /// Admin API to ask, e.g. http://127.0.0.1:9090 (default: from the config's admin.listen)
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
        /// Keep printing events as they happen (until interrupted)
        #[arg(short = 'f', long)]
        follow: bool,
        /// One JSON object per line, as the API serves them
        #[arg(long)]
        json: bool,
    },
    /// A live view of a running shoal, as `pm2 monit`: each instance's state,
    /// health, CPU, memory, requests/s, p95 and restarts, the fleet's
    /// totals, the latest events; keys to scale (+/-) and reload (r)
    Top {
        #[command(flatten)]
        src: ConfigSource,
        /// Admin API to ask, e.g. http://127.0.0.1:9090 (default: from the config's admin.listen)
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
        /// How often to refresh, e.g. 1s, 500ms
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = interval)]
        interval: std::time::Duration,
    },
    /// Run the bundled demo HTTP service (what `--demo` starts N copies of)
    DemoApp {
        /// Port to listen on; default: $PORT, else 8000
        #[arg(long)]
        port: Option<u16>,
    },
    /// Check a running deployment: health, every backend taking traffic, stickiness, Redis; exit 1 on a failure
    Verify(verify::VerifyArgs),
    /// Measure one instance's capacity through shoal with a bounded, stepped
    /// load, and size the deployment for a target rate: instances, memory,
    /// autoscale settings, DB connections, Redis memory
    Plan(plan::PlanArgs),
    /// Write ready-to-apply files for Kubernetes, Compose or systemd from the config
    Deploy {
        /// What to write for
        #[arg(value_enum)]
        target: crate::deploy::Target,
        #[command(flatten)]
        src: ConfigSource,
        #[command(flatten)]
        opts: crate::deploy::Options,
    },
    /// Internal: the guard process that stops instances if shoal is killed
    #[command(name = "__guard", hide = true)]
    Guard,
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    client::set_insecure(cli.insecure);
    match cli.command {
        Command::Up(src) => up::run(&src),
        Command::Check(src) => check(&src),
        Command::Status { src, admin, json } => control::status(&src, admin.as_deref(), json),
        Command::Logs {
            instance,
            follow,
            since,
            lines,
            json,
            src,
            admin,
        } => control::logs(
            &src,
            admin.as_deref(),
            control::LogsAsk {
                instance: instance.as_deref(),
                follow,
                since: since.as_deref(),
                lines,
                json,
            },
        ),
        Command::Scale { args, src, admin } => {
            let (app, count) = match args.as_slice() {
                [count] => (None, count),
                [app, count] => (Some(app.as_str()), count),
                _ => unreachable!("clap takes one or two"),
            };
            let Ok(instances) = count.parse::<u32>() else {
                eprintln!(
                    "error: `{count}` is not a number of instances: write `shoal scale 6` or `shoal scale APP 6`"
                );
                return EXIT_USAGE;
            };
            control::scale(&src, admin.as_deref(), app, instances)
        }
        Command::Reload {
            apply_config,
            old_config,
            file,
            demo,
            admin,
            stray,
        } => {
            if let (Some(arg), true) = (&stray, old_config) {
                // `reload --config FILE`: neither a rolling restart with
                // that file nor a config reload of it, silently.
                eprintln!(
                    "error: unexpected argument '{arg}'\n\n\
                     On `reload`, --config is the old spelling of --apply-config and takes no file;\n\
                     give the file with -c or --file: `shoal reload --apply-config -c {arg}` \
                     (re-read shoal's config) or `shoal reload -c {arg}` (rolling restart)"
                );
                return EXIT_USAGE;
            }
            if old_config {
                eprintln!(
                    "note: `shoal reload --config` is the old spelling of `shoal reload --apply-config`"
                );
            }
            let src = ConfigSource { file, demo };
            let app = stray.as_deref();
            if app.is_some() && apply_config {
                eprintln!("error: --apply-config reloads shoal's own config, not one app: drop the app name");
                return EXIT_USAGE;
            }
            control::reload(&src, admin.as_deref(), apply_config || old_config, app)
        }
        Command::Events {
            src,
            admin,
            follow,
            json,
        } => events::run(&src, admin.as_deref(), follow, json),
        Command::Top {
            src,
            admin,
            interval,
        } => top::run(&src, admin.as_deref(), interval),
        Command::Deploy { target, src, opts } => deploy(target, &src, &opts),
        Command::Verify(args) => verify::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::DemoApp { port } => shoal_demo::run(port),
        Command::Guard => crate::supervisor::run_guard(),
    }
}

/// `--interval`: a duration as the config writes them, at least 100ms.
fn interval(text: &str) -> Result<std::time::Duration, String> {
    let d = shoal_config::units::parse_duration(text)?;
    if d < std::time::Duration::from_millis(100) {
        return Err("at least 100ms".into());
    }
    Ok(d)
}

/// Values `${VAR}` can refer to beyond the process environment.
fn lookup_var(name: &str) -> Option<String> {
    if name == "SHOAL_EXE" {
        if let Ok(exe) = std::env::current_exe() {
            return Some(exe.to_string_lossy().into_owned());
        }
    }
    std::env::var(name).ok()
}

/// Loads the config as `shoal up` and `shoal check` do: the TLS files are
/// read too, so a bad certificate is a config error (exit 78) with its key
/// and line, not a failed start; and the app's program must be found
/// (``cannot run `gunicron`: not found in PATH``); and each `files.root`
/// must be a directory.
pub fn load(src: &ConfigSource) -> Result<Config, LoadError> {
    load_with(src, &|config| {
        let mut problems = crate::tls::check(config);
        problems.extend(crate::tls::client::check(config));
        problems.extend(crate::supervisor::check_program(config));
        problems.extend(crate::files::check(config));
        problems.extend(crate::admin::auth::check(config));
        problems
    })
}

/// Loads the config without reading the files it names (TLS keys): enough
/// for the client verbs, which only need `admin.listen`, and which an
/// operator may run without the right to read the private keys.
pub fn load_settings(src: &ConfigSource) -> Result<Config, LoadError> {
    load_with(src, &|_| Vec::new())
}

/// Why there is no config to run with.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: no such file (give one with -c FILE, or try `shoal up --demo`)", .path.display())]
    NoFile { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Read, but not a valid config: every problem with its key and line.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

fn load_with(
    src: &ConfigSource,
    files: shoal_config::ExternalCheck<'_>,
) -> Result<Config, LoadError> {
    if src.demo {
        return Ok(shoal_config::load_str_checked(
            DEMO_CONFIG,
            "<demo>",
            &lookup_var,
            files,
        )?);
    }
    let path = &src.file;
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => LoadError::NoFile { path: path.clone() },
        _ => LoadError::Read {
            path: path.clone(),
            source,
        },
    })?;
    Ok(shoal_config::load_str_checked(
        &text,
        &display(path),
        &lookup_var,
        files,
    )?)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// What is allowed but probably wrong, as `FILE:LINE: KEY: message`.
pub fn warnings(src: &ConfigSource, config: &Config) -> Vec<String> {
    let mut found = crate::tls::client::unverified(config);
    found.extend(crate::admin::auth::clear_text(config));
    for (name, app) in config.all_apps() {
        if let Some((path, message)) = crate::supervisor::port_warning(app) {
            found.push((crate::supervisor::key_of(config, name, path), message));
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let (origin, text) = if src.demo {
        ("<demo>".to_string(), DEMO_CONFIG.to_string())
    } else {
        (
            display(&src.file),
            std::fs::read_to_string(&src.file).unwrap_or_default(),
        )
    };
    found
        .into_iter()
        .map(
            |(path, message)| match shoal_config::line_of(&text, &path) {
                Some(line) => format!("{origin}:{line}: {path}: {message}"),
                None => format!("{origin}: {path}: {message}"),
            },
        )
        .collect()
}

fn deploy(target: crate::deploy::Target, src: &ConfigSource, opts: &crate::deploy::Options) -> i32 {
    // The program and the certificates are the image's and the host's,
    // not this machine's: only the settings are checked here.
    let config = match load_settings(src) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    let (text, origin) = if src.demo {
        (
            DEMO_CONFIG.to_string(),
            "the embedded demo config".to_string(),
        )
    } else {
        match std::fs::read_to_string(&src.file) {
            Ok(t) => (t, display(&src.file)),
            Err(e) => {
                eprintln!("{}: {e}", display(&src.file));
                return EXIT_CONFIG;
            }
        }
    };
    let source = crate::deploy::Source {
        text: &text,
        config: &config,
        origin: &origin,
    };
    let files = match crate::deploy::generate(target, &source, opts) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let name = format!("{target:?}").to_lowercase();
    let dir = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("shoal-{name}")));
    if let Err(e) = crate::deploy::write(&dir, &files) {
        eprintln!("error: cannot write into {}: {e}", dir.display());
        return 1;
    }
    for f in &files {
        println!("wrote {}", dir.join(&f.name).display());
    }
    0
}

fn check(src: &ConfigSource) -> i32 {
    match load(src) {
        Ok(config) => {
            for w in warnings(src, &config) {
                eprintln!("warning: {w}");
            }
            print!("{}", shoal_config::to_yaml(&config));
            0
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_CONFIG
        }
    }
}
