//! `recwal`: the server (`recwal serve`) and the command-line tools.
#![allow(clippy::print_stdout)]

mod api;
mod client;
mod config;
mod datadir;
mod edge;
mod openapi;
mod problem;
mod server;
mod tools;

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
    /// Ingest a ratings file (MovieLens u.data, RecBole .inter, or CSV
    /// user,item,rating and an optional timestamp) through the normal ingest path.
    ///
    /// The whole file is read first: one it cannot parse as a whole (a line
    /// it does not recognise, another delimiter, rows of different lengths,
    /// no ratings at all) is refused, naming the line, and nothing is written.
    /// Creates the data dir if it does not exist or is an empty directory.
    Import {
        file: PathBuf,
        #[arg(long, env = "RECWAL_DATA_DIR", default_value = "./recwal-data")]
        data_dir: PathBuf,
        /// Events per log record.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Field separator: one character, or tab, space, comma, semicolon,
        /// pipe (default: tab for u.data and .inter, comma for .csv).
        #[arg(long)]
        delimiter: Option<recwal::eval::Delimiter>,
    },
    /// Offline evaluation of every strategy on a ratings file (hash 80/20 split).
    Eval {
        file: PathBuf,
        /// Cut-off of the top-N metrics.
        #[arg(long, default_value_t = 10)]
        k: usize,
        /// Field separator, as for `import`.
        #[arg(long)]
        delimiter: Option<recwal::eval::Delimiter>,
    },
    /// Inspect or verify a log (read-only; works on a copy while no server runs).
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
    },
    /// Ranking models: of a running server (`--server`), or of a data
    /// directory no server holds.
    Models {
        #[arg(long, env = "RECWAL_DATA_DIR", default_value = "./recwal-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Args)]
struct RemoteArgs {
    /// A running server, e.g. http://127.0.0.1:8089.
    #[arg(long, env = "RECWAL_SERVER", global = true)]
    server: Option<String>,
    /// Its bearer token.
    #[arg(long, env = "RECWAL_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

impl RemoteArgs {
    fn remote(&self) -> Result<Option<client::Remote>, String> {
        self.server.as_deref().map(|url| client::Remote::new(url, self.token.clone())).transpose()
    }
}

#[derive(Subcommand)]
enum WalCommand {
    /// Segments and records, with every CRC checked, then the `verify`
    /// report; exits as `verify` does.
    Inspect {
        /// A data dir, or its wal/ (or a copy of one).
        #[arg(default_value = "./recwal-data")]
        dir: PathBuf,
    },
    /// Check every CRC and the LSN chain, and say what `serve` would do with
    /// each damage found (refuse, or cut a torn tail).
    ///
    /// Exit 0: clean; 1: damage found; 2: could not check (not a log,
    /// locked by a running server, I/O).
    Verify {
        /// A data dir, or its wal/ (or a copy of one).
        #[arg(default_value = "./recwal-data")]
        dir: PathBuf,
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
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (flags and RECWAL_* variables override it).
    #[arg(long, env = "RECWAL_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "RECWAL_LISTEN")]
    listen: Option<String>,
    #[arg(long, env = "RECWAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Bearer token for every endpoint but /healthz and /readyz.
    #[arg(long, env = "RECWAL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// always, batch or never.
    #[arg(long, env = "RECWAL_SYNC")]
    sync: Option<String>,
    #[arg(long, env = "RECWAL_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    #[arg(long, env = "RECWAL_BODY_LIMIT_BYTES")]
    body_limit_bytes: Option<usize>,
    #[arg(long, env = "RECWAL_MAX_N")]
    max_n: Option<usize>,
    #[arg(long, env = "RECWAL_MAX_BATCH")]
    max_batch: Option<usize>,
    #[arg(long, env = "RECWAL_CONCURRENCY")]
    concurrency: Option<usize>,
    /// A request head must be complete this long after its first byte (408).
    #[arg(long, env = "RECWAL_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,
    /// Close a connection with nothing in flight after this long.
    #[arg(long, env = "RECWAL_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: Option<u64>,
    /// A request body must be complete this long after its head (408).
    #[arg(long, env = "RECWAL_BODY_READ_TIMEOUT_MS")]
    body_read_timeout_ms: Option<u64>,
    /// Most open connections (also at most RLIMIT_NOFILE - fd_reserve).
    #[arg(long, env = "RECWAL_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// File descriptors kept for the engine, never given to connections.
    #[arg(long, env = "RECWAL_FD_RESERVE")]
    fd_reserve: Option<u64>,
    /// auto, human or json.
    #[arg(long, env = "RECWAL_LOG_FORMAT")]
    log_format: Option<String>,
    /// Write a snapshot on SIGTERM / SIGINT before exiting (true or false).
    #[arg(long, env = "RECWAL_SNAPSHOT_ON_SHUTDOWN")]
    snapshot_on_shutdown: Option<bool>,
    /// What a start does about a damaged log: tolerate-corrupted-tail (cut
    /// only a torn tail; refuse damage to durable records), point-in-time
    /// (keep the longest valid prefix, drop and report the rest) or
    /// absolute-consistency (refuse any damage).
    #[arg(long, env = "RECWAL_WAL_RECOVERY")]
    wal_recovery: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

impl ServeArgs {
    fn config(&self) -> Result<ServeConfig, config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => ServeConfig::from_file(path)?,
            None => ServeConfig::default(),
        };
        if let Some(listen) = &self.listen {
            config.listen.clone_from(listen);
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        if let Some(token) = &self.token {
            config.token = Some(token.clone());
        }
        if let Some(sync) = &self.sync {
            config.sync.clone_from(sync);
        }
        if let Some(timeout) = self.request_timeout_ms {
            config.request_timeout_ms = timeout;
        }
        if let Some(limit) = self.body_limit_bytes {
            config.body_limit_bytes = limit;
        }
        if let Some(max_n) = self.max_n {
            config.max_n = max_n;
        }
        if let Some(max_batch) = self.max_batch {
            config.max_batch = max_batch;
        }
        if let Some(concurrency) = self.concurrency {
            config.concurrency = concurrency;
        }
        if let Some(timeout) = self.header_read_timeout_ms {
            config.header_read_timeout_ms = timeout;
        }
        if let Some(timeout) = self.idle_timeout_ms {
            config.idle_timeout_ms = timeout;
        }
        if let Some(timeout) = self.body_read_timeout_ms {
            config.body_read_timeout_ms = timeout;
        }
        if let Some(max) = self.max_connections {
            config.max_connections = max;
        }
        if let Some(reserve) = self.fd_reserve {
            config.fd_reserve = reserve;
        }
        if let Some(format) = &self.log_format {
            config.log_format.clone_from(format);
        }
        if let Some(snapshot) = self.snapshot_on_shutdown {
            config.snapshot_on_shutdown = snapshot;
        }
        if let Some(recovery) = &self.wal_recovery {
            config.wal_recovery.clone_from(recovery);
        }
        Ok(config)
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        "json" => true,
        "human" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve(&args),
        other => {
            init_logging("auto");
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
    let config = args.config().map_err(|err| err.to_string())?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let addr = config.validate().map_err(|err| err.to_string())?;
    config.engine().map_err(|err| err.to_string())?;
    datadir::existing_or_new(&config.data_dir).map_err(|err| format!("cannot open the engine: {err}"))?;
    init_logging(&config.log_format);
    let durability = config.sync_policy().map_err(|err| err.to_string())?.default_durability();
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
        info!(%local, data_dir = %config.data_dir.display(), "listening; /healthz answers now, /readyz once the log is replayed");
        let snapshot_on_shutdown = config.snapshot_on_shutdown;
        let limits = edge::Limits::from_config(&config);
        let app = Arc::new(server::App::new(config, durability));
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
        edge::serve(listener, server::router(Arc::clone(&app)), Arc::clone(&app.edge), limits, shutdown)
            .await
            .map_err(|err| format!("server error: {err}"))?;
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
