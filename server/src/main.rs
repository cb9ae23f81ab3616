//! `recwal`: the server (`recwal serve`) and the command-line tools.
#![allow(clippy::print_stdout)]

mod answers;
mod api;
mod backup;
mod catalogue;
mod client;
mod cluster;
mod config;
mod datadir;
mod docs_ui;
mod durable;
mod edge;
mod eval_cmd;
mod import;
mod import_items;
mod model_routes;
mod models_cmd;
mod observe;
mod openapi;
mod output;
mod problem;
mod salvage;
mod server;
mod tools;
mod ui;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tracing::{error, info, warn};

use crate::config::ServeConfig;

#[derive(Parser)]
#[command(name = "recwal", version, about = "A recommendation engine with its own write-ahead log")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (defaults: ./recwal-data, 127.0.0.1:8089).
    #[command(after_help = disk_use_note())]
    Serve(Box<ServeArgs>),
    /// Ingest a ratings or events file through the normal ingest path: into
    /// a data dir, or through a running server (`--server`).
    ///
    /// MovieLens u.data, RecBole .inter, CSV (a header row, or --columns) and
    /// JSONL (one event per line, as `recwal export` writes it). The whole
    /// file is checked first: one it cannot parse as a whole is refused,
    /// naming the file and line, and nothing is written; then it is read
    /// again and written a batch at a time (a pipe is copied to $TMPDIR
    /// first). Every event without an event id gets one derived from its
    /// fields and how many identical rows came before it, so a second run
    /// of the same file is all duplicates (inside the dedup window).
    /// Creates the data dir if it does not exist or is empty.
    Import(Box<tools::ImportArgs>),
    /// Offline evaluation of every strategy on a ratings file: MovieLens,
    /// RecBole .inter, CSV/TSV; string ids; explicit ratings on any scale or
    /// implicit feedback; hash 80/20, temporal, leave-last-out or random
    /// holdout (`recwal eval --help` says how each is read).
    Eval(Box<eval_cmd::EvalArgs>),
    /// Inspect or verify a log (read-only; works on a copy while no server
    /// runs), or salvage a damaged one into a new data dir.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
    /// Write a snapshot: of a running server (`--server`), or of a data
    /// directory no server holds.
    Checkpoint {
        #[arg(long, env = "RECWAL_DATA_DIR", default_value = "./recwal-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// One JSON object instead of the human line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        engine: tools::EngineConfigArgs,
    },
    /// Write a consistent, verified backup (snapshot + the log records after
    /// it + model files) of a data dir no server holds, or of a running
    /// server (`--server`; the server writes it, so --out is a path on its
    /// machine). Ingest goes on while it is taken.
    Backup(Box<tools::BackupArgs>),
    /// Restore a backup into a new or empty data dir (never over one).
    Restore(tools::RestoreArgs),
    /// Write every event of a data dir's log as JSONL (re-importable by
    /// `recwal import`) or CSV.
    Export(tools::ExportArgs),
    /// Ranking models: of a running server (`--server`), or of a data
    /// directory no server holds.
    Models {
        #[arg(long, env = "RECWAL_DATA_DIR", default_value = "./recwal-data", global = true)]
        data_dir: PathBuf,
        /// One JSON array instead of the human lines.
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(flatten)]
        engine: tools::EngineConfigArgs,
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Args)]
struct RemoteArgs {
    /// A running server, e.g. http://127.0.0.1:8089 or https://recwal.example:443.
    #[arg(long, env = "RECWAL_SERVER", global = true)]
    server: Option<String>,
    /// Its bearer token.
    #[arg(long, env = "RECWAL_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// PEM file of the certificate(s) to trust for an https:// server (a
    /// private CA or a self-signed TLS proxy) instead of the public roots.
    #[arg(long, env = "RECWAL_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
}

impl RemoteArgs {
    fn remote(&self) -> Result<Option<client::Remote>, String> {
        self.server
            .as_deref()
            .map(|url| client::Remote::new(url, self.token.clone(), self.ca_cert.as_deref()))
            .transpose()
    }
}

#[derive(Subcommand)]
enum WalCommand {
    /// Segments and records, with every CRC checked, then the `verify`
    /// report; exits as `verify` does.
    Inspect {
        /// A data dir, or its wal/ (or a copy of one).
        #[arg(default_value = "./recwal-data", env = "RECWAL_DATA_DIR", value_name = "DATA_DIR")]
        dir: PathBuf,
        /// The same as DATA_DIR, as the other commands take it.
        #[arg(long = "data-dir", value_name = "DATA_DIR", conflicts_with = "dir")]
        data_dir: Option<PathBuf>,
        /// One JSON object instead of the human report.
        #[arg(long)]
        json: bool,
    },
    /// Copy what is provably intact of a damaged data dir into a new one,
    /// and report exactly what was lost: the only command that accepts
    /// loss. The damaged data dir is read, never changed.
    ///
    /// Exit 0: every LSN was recovered; 1: salvaged with loss, or from a
    /// damaged log after which records may be missing (reported); 2: could
    /// not salvage.
    Salvage(tools::SalvageArgs),
    /// Check every CRC and the LSN chain, and say what `serve` would do with
    /// each damage found (refuse, or cut a torn tail).
    ///
    /// Exit 0: clean; 1: damage found; 2: could not check (not a log,
    /// locked by a running server, I/O).
    Verify {
        /// A data dir, or its wal/ (or a copy of one).
        #[arg(default_value = "./recwal-data", env = "RECWAL_DATA_DIR", value_name = "DATA_DIR")]
        dir: PathBuf,
        /// The same as DATA_DIR, as the other commands take it.
        #[arg(long = "data-dir", value_name = "DATA_DIR", conflicts_with = "dir")]
        data_dir: Option<PathBuf>,
        /// One JSON object instead of the human report.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Every version.
    List,
    /// Validate and add an ONNX model.
    Add { file: PathBuf },
    /// Activate a version.
    Activate { version: u32 },
    /// Re-activate the previous version.
    Rollback,
    /// The active, serving, canary and shadow versions.
    Status,
    /// Route a share of users (by user-id hash) to a canary version.
    Canary {
        version: u32,
        /// The share of users, in percent (1–99).
        #[arg(long)]
        percent: u8,
    },
    /// End the canary: every user gets the active version.
    EndCanary,
    /// Activate the canary's version for every user.
    Promote,
    /// Score every ranked answer with a shadow version too, never serving it.
    Shadow { version: u32 },
    /// End the shadow scoring.
    EndShadow,
    /// Retire (unload) a version: not the active one, the canary or the shadow.
    Retire { version: u32 },
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file: `[server]`, `[engine]`, `[engine.wal]`, …
    /// (docs/SERVER.md lists every key). `RECWAL_<SECTION>__<KEY>` variables
    /// (e.g. RECWAL_ENGINE__WAL__SYNC) override it, and flags override those.
    #[arg(long, env = "RECWAL_CONFIG")]
    config: Option<PathBuf>,
    /// Any key, as KEY=VALUE (e.g. --set engine.wal.segment_bytes=4194304);
    /// repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// server.listen.
    #[arg(long, env = "RECWAL_LISTEN")]
    listen: Option<String>,
    /// server.data_dir.
    #[arg(long, env = "RECWAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// server.token: bearer token for every endpoint but /healthz and /readyz.
    #[arg(long, env = "RECWAL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// engine.wal.sync: always, batch or never.
    #[arg(long, env = "RECWAL_SYNC")]
    sync: Option<String>,
    /// server.request_timeout_ms.
    #[arg(long, env = "RECWAL_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// server.body_limit_bytes.
    #[arg(long, env = "RECWAL_BODY_LIMIT_BYTES")]
    body_limit_bytes: Option<usize>,
    /// server.max_n.
    #[arg(long, env = "RECWAL_MAX_N")]
    max_n: Option<usize>,
    /// engine.batch_events_max: most events per ingest request.
    #[arg(long, env = "RECWAL_MAX_BATCH")]
    max_batch: Option<usize>,
    /// server.concurrency.
    #[arg(long, env = "RECWAL_CONCURRENCY")]
    concurrency: Option<usize>,
    /// server.header_read_timeout_ms: a request head must be complete this
    /// long after its first byte (408).
    #[arg(long, env = "RECWAL_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,
    /// server.idle_timeout_ms: close a connection with nothing in flight after this long.
    #[arg(long, env = "RECWAL_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: Option<u64>,
    /// server.body_read_timeout_ms: a request body must be complete this
    /// long after its head (408).
    #[arg(long, env = "RECWAL_BODY_READ_TIMEOUT_MS")]
    body_read_timeout_ms: Option<u64>,
    /// server.max_connections (also at most RLIMIT_NOFILE - fd_reserve).
    #[arg(long, env = "RECWAL_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// server.fd_reserve: file descriptors kept for the engine.
    #[arg(long, env = "RECWAL_FD_RESERVE")]
    fd_reserve: Option<u64>,
    /// server.log_format: auto, human or json.
    #[arg(long, env = "RECWAL_LOG_FORMAT")]
    log_format: Option<String>,
    /// server.snapshot_on_shutdown (true or false).
    #[arg(long, env = "RECWAL_SNAPSHOT_ON_SHUTDOWN")]
    snapshot_on_shutdown: Option<bool>,
    /// engine.wal.recovery: what a start does about a damaged log:
    /// tolerate-corrupted-tail (cut only a torn tail; refuse damage to
    /// durable records), point-in-time (keep the longest valid prefix, drop
    /// and report the rest) or absolute-consistency (refuse any damage).
    #[arg(long, env = "RECWAL_WAL_RECOVERY")]
    wal_recovery: Option<String>,
    /// cluster.url: follow and publish to a NATS JetStream stream, one
    /// replica of several (nats://host:port, comma-separated; docs/CLUSTER.md).
    #[arg(long, env = "RECWAL_CLUSTER", value_name = "NATS_URLS")]
    cluster: Option<String>,
    /// Print the effective configuration (validated: an invalid one exits
    /// non-zero, naming the key) and exit.
    #[arg(long)]
    print_config: bool,
}

impl ServeArgs {
    /// The named flags, by the key each sets; `--set` pairs after them.
    fn sources(&self) -> Result<config::Sources, config::ConfigError> {
        let text = |value: &dyn ToString| Some(value.to_string());
        let named: [(&str, &str, Option<String>); 18] = [
            ("server.listen", "--listen", self.listen.clone()),
            ("server.data_dir", "--data-dir", self.data_dir.as_ref().map(|dir| dir.display().to_string())),
            ("server.token", "--token", self.token.clone()),
            ("engine.wal.sync", "--sync", self.sync.clone()),
            ("server.request_timeout_ms", "--request-timeout-ms", self.request_timeout_ms.and_then(|v| text(&v))),
            ("server.body_limit_bytes", "--body-limit-bytes", self.body_limit_bytes.and_then(|v| text(&v))),
            ("server.max_n", "--max-n", self.max_n.and_then(|v| text(&v))),
            ("engine.batch_events_max", "--max-batch", self.max_batch.and_then(|v| text(&v))),
            ("server.concurrency", "--concurrency", self.concurrency.and_then(|v| text(&v))),
            (
                "server.header_read_timeout_ms",
                "--header-read-timeout-ms",
                self.header_read_timeout_ms.and_then(|v| text(&v)),
            ),
            ("server.idle_timeout_ms", "--idle-timeout-ms", self.idle_timeout_ms.and_then(|v| text(&v))),
            ("server.body_read_timeout_ms", "--body-read-timeout-ms", self.body_read_timeout_ms.and_then(|v| text(&v))),
            ("server.max_connections", "--max-connections", self.max_connections.and_then(|v| text(&v))),
            ("server.fd_reserve", "--fd-reserve", self.fd_reserve.and_then(|v| text(&v))),
            ("server.log_format", "--log-format", self.log_format.clone()),
            ("server.snapshot_on_shutdown", "--snapshot-on-shutdown", self.snapshot_on_shutdown.and_then(|v| text(&v))),
            ("engine.wal.recovery", "--wal-recovery", self.wal_recovery.clone()),
            ("cluster.url", "--cluster", self.cluster.clone()),
        ];
        let mut flags: Vec<(String, String, String)> = named
            .into_iter()
            .filter_map(|(key, flag, value)| {
                let variable =
                    format!("RECWAL_{}", flag.trim_start_matches("--").replace('-', "_").to_ascii_uppercase());
                value.map(|value| (key.to_string(), value, format!("{flag} or {variable}")))
            })
            .collect();
        flags.extend(config::set_flags(&self.set)?);
        Ok(config::Sources { file: self.config.clone(), env: std::env::vars().collect(), flags })
    }

    fn config(&self) -> Result<ServeConfig, config::ConfigError> {
        ServeConfig::load(&self.sources()?)
    }
}

/// Installs the subscriber. Lines go through a non-blocking writer (a
/// thread drains a bounded queue to stderr), so a slow or stalled stderr
/// never holds up a request; lines beyond the queue are dropped and counted
/// (`recwal_log_lines_dropped_total`). Keep the guard for the process's
/// lifetime: dropping it flushes the queue.
#[must_use = "dropping the guard stops the log writer"]
fn init_logging(format: &str) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        "json" => true,
        "human" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    observe::set_log_drops(writer.error_counter());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if json {
        builder.json().with_current_span(true).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
    guard
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve(&args),
        other => {
            let _log_writer = init_logging("auto");
            tools::run(other)
        }
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("recwal: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The disk use of the default log, for `recwal serve --help` (from the
/// engine's defaults, so it cannot drift; server/tests/serve_help.rs).
fn disk_use_note() -> String {
    let wal = recwal::EngineConfig::default().wal;
    let segment_mib = wal.segment_bytes >> 20;
    format!(
        "Disk use: the log is segment files of {segment_mib} MiB, created as needed (one at first, then the next prepared ahead \
         while one is in use); while records wait for a checkpoint the ring grows to at most {} \
         segments, {} GiB. A new log takes its segment size from wal_segment_bytes; an existing log keeps its own. \
         Snapshots and model files come on top.",
        wal.segments_max,
        (wal.segment_bytes * u64::from(wal.segments_max)) >> 30
    )
}

fn serve(args: &ServeArgs) -> Result<ExitCode, String> {
    let mut config = args.config().map_err(|err| err.to_string())?;
    let addr = config.validate().map_err(|err| err.to_string())?;
    // The ONNX Runtime library, resolved once, against the working
    // directory of this moment (absolute from here on).
    let runtime = recwal::model::resolve_runtime(config.engine.models.runtime_path.as_deref());
    config.engine.models.runtime_path = runtime.path.clone();
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    if config.cluster.url.is_some() {
        // A replica killed while it installed a snapshot: finish or drop
        // that install first, so the data dir is whole when it is checked.
        cluster::finish_interrupted_install(&config.server.data_dir)
            .map_err(|err| format!("cannot open the engine: {err}"))?;
    }
    datadir::existing_or_new(&config.server.data_dir).map_err(|err| format!("cannot open the engine: {err}"))?;
    let _log_writer = init_logging(&config.server.log_format);
    if let Some(reason) = &runtime.missing {
        warn!(%reason, "ONNX Runtime not found: answers are not ranked by a model");
    }
    let durability = config.sync_policy().default_durability();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    let outcome = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|err| format!("cannot listen on {addr}: {err}"))?;
        let local = listener.local_addr().map_err(|err| err.to_string())?;
        // The first line of stdout, for scripts and tests (port 0 picks one).
        println!("listening on {local}");
        let _ = std::io::stdout().flush();
        info!(%local, data_dir = %config.server.data_dir.display(), "listening; /healthz answers now, /readyz once the log is replayed");
        let snapshot_on_shutdown = config.server.snapshot_on_shutdown;
        let limits = edge::Limits::from_config(&config);
        let cap = edge::connection_cap(&limits)?;
        edge::bound_concurrency(&mut config, cap);
        let app = Arc::new(server::App::new(config, durability));
        if app.config.cluster.url.is_some() {
            let replica = cluster::Replica::connect(&app.config.cluster).await?;
            replica.start(Arc::clone(&app));
            let _ = app.cluster.set(replica);
        }
        let failed = Arc::new(AtomicBool::new(false));
        let open_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        {
            let (app, failed, open_error) = (Arc::clone(&app), Arc::clone(&failed), Arc::clone(&open_error));
            tokio::spawn(async move {
                if let Err(reason) = server::open_engine(app).await {
                    error!(%reason, "cannot open the engine");
                    if let Ok(mut slot) = open_error.lock() {
                        *slot = Some(format!("cannot open the engine: {reason}"));
                    }
                    failed.store(true, Ordering::SeqCst);
                    let _ = stop.send(());
                }
            });
        }
        let shutdown = async move {
            tokio::select! {
                () = termination() => {
                    info!("shutting down: finishing requests in flight (a second signal exits at once)");
                    tokio::spawn(async {
                        termination().await;
                        warn!("second signal: exiting without finishing");
                        std::process::exit(130);
                    });
                }
                // (A dropped sender, after a successful open, is no signal.)
                Ok(()) = stopped => {}
            }
        };
        edge::serve(listener, server::router(Arc::clone(&app)), Arc::clone(&app.edge), limits, cap, shutdown)
            .await
            .map_err(|err| format!("server error: {err}"))?;
        // The follower holds the engine: stop it before the engine closes.
        if let Some(replica) = app.cluster.get() {
            replica.shutdown().await;
        }
        if failed.load(Ordering::SeqCst) {
            return Err(open_error.lock().ok().and_then(|reason| reason.clone()).unwrap_or_default());
        }
        let Some(engine) = app.engine.get().cloned() else {
            // Stopped while replaying: nothing was changed that needs
            // saving, and the replay thread is abandoned (below).
            warn!("stopped during the start-up replay; the next start replays again");
            return Ok(Outcome::StoppedDuringReplay);
        };
        let closed = tokio::task::spawn_blocking(move || -> Result<(), String> {
            if snapshot_on_shutdown {
                match engine.checkpoint() {
                    Ok(info) => info!(lsn = info.lsn, "shutdown snapshot written"),
                    // The log holds every acknowledged event: close it all the
                    // same; the next start replays a little more.
                    Err(err @ recwal::EngineError::DiskFull { .. }) => {
                        warn!(%err, "shutdown snapshot skipped: the disk is full; the log is closed and holds every acknowledged event")
                    }
                    Err(err) => return Err(format!("the shutdown snapshot failed: {err}")),
                }
            }
            drop(app);
            // Work detached from timed-out requests may still hold the
            // engine for a moment: wait for it, then close (sync the log).
            let mut engine = engine;
            for _ in 0..600 {
                match Arc::try_unwrap(engine) {
                    Ok(owned) => return owned.close().map_err(|err| format!("closing the engine: {err}")),
                    Err(shared) => {
                        engine = shared;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
            }
            warn!("the engine is still in use after 30 s; it closes when dropped");
            Ok(())
        })
        .await
        .map_err(|err| err.to_string())?;
        closed?;
        info!("stopped");
        Ok(Outcome::Stopped)
    });
    match outcome {
        Ok(Outcome::Stopped) => Ok(ExitCode::SUCCESS),
        Ok(Outcome::StoppedDuringReplay) => {
            // Do not wait for the replay thread.
            runtime.shutdown_background();
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => Err(reason),
    }
}

enum Outcome {
    Stopped,
    StoppedDuringReplay,
}

async fn termination() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
