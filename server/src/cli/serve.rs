//! `pooltriage serve [--listen 127.0.0.1:8080] [--data-dir ./data]`: the HTTP service with its
//! workers. Runs with no set-up: creates the data directory, the SQLite database (migrations
//! applied at start) and the storage folders. Prints `listening on http://ADDR` on stdout once
//! the socket is bound (with `--listen 127.0.0.1:0`, the port the system chose). Stops
//! gracefully on SIGINT/SIGTERM: no new connections, running analyses killed and their jobs
//! returned to the queue.

use crate::config::{Config, ServeArgs};
use crate::http::{self, AppState};
use crate::jobs::{self, WorkerContext};
use crate::storage::Storage;
use std::io::Write;
use std::process::ExitCode;
use tokio::sync::watch;

/// How long a graceful shutdown waits for open connections (uploads in flight).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

pub fn run(args: &ServeArgs) -> ExitCode {
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
    let config = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    crate::storage::private::create_data_dir(dir)?;
    let storage =
        Storage::open(dir).map_err(|e| anyhow::anyhow!("storage in {}: {e}", dir.display()))?;
    let db = crate::db::open(dir, config.database_url.as_deref()).await?;
    let webhooks = crate::webhooks::Webhooks::new(config.webhooks.clone(), dir)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Reports stored before the index existed (or by an older index version): in the
    // background, so a large store does not delay the start.
    let index_db = db.clone();
    tokio::spawn(async move {
        match crate::db::report_index::backfill(&index_db, crate::db::now_unix()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(reports = n, "report index backfilled"),
            Err(e) => tracing::error!("report index backfill: {e}"),
        }
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = WorkerContext {
        db: db.clone(),
        storage: storage.clone(),
        limits: config.job,
        work_dir: dir.clone(),
        analyzer: config.analyzer.clone(),
        symbols: config.symbols.clone(),
    };
    let workers = jobs::start(ctx, config.workers, stop_rx.clone());
    let dispatcher = crate::webhooks::start(db.clone(), webhooks.clone(), stop_rx.clone());
    let retention = crate::retention::start(
        db.clone(),
        storage.clone(),
        config.retention,
        stop_rx.clone(),
    );
    let auth = crate::auth::AuthState::new(db.clone(), config.auth.clone());
    let chunk_files = crate::storage::chunked::ChunkFiles::open(dir)
        .map_err(|e| anyhow::anyhow!("upload storage in {}: {e}", dir.display()))?;
    let uploads = http::uploads::UploadService::new(chunk_files, config.upload_expiry);
    let sweeper = http::uploads::start_sweeper(db.clone(), uploads.clone(), stop_rx.clone());
    let symbols = crate::vendor_symbols::service::SymbolService::new(&config);
    let app = http::router(AppState {
        db: db.clone(),
        storage,
        limits: config.limits,
        auth,
        webhooks,
        uploads,
        symbols,
    });

    let database = match config.database_url.as_deref() {
        Some(url) => crate::db::redact(url),
        None => format!("sqlite: {}", dir.join(crate::db::DB_FILE).display()),
    };
    tracing::info!(data_dir = %dir.display(), %database, workers = config.workers, "pooltriage serve started");
    tracing::info!(
        symbol_path = config.symbols.symbol_path.as_deref().unwrap_or("(none: --no-symbols)"),
        isf_dir = %config.symbols.isf_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
        "analysis symbols"
    );
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let connections = http::connections::ConnectionLimits {
        max_connections: http::connections::fit_to_descriptor_limit(
            config.connections.max_connections,
        ),
        ..config.connections
    };
    let server = http::connections::serve(listener, app, connections, stop_rx.clone());
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    // Graceful, but bounded: an upload still streaming after the grace period is cut off (its
    // temporary file is removed at the next start) rather than holding the shutdown forever.
    let mut stopped = stop_rx.clone();
    let deadline = async move {
        let _ = stopped.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = server => {}
        _ = deadline => tracing::warn!("connections still open after {} s; stopping anyway", SHUTDOWN_GRACE.as_secs()),
    }
    for w in workers {
        let _ = w.await;
    }
    let _ = sweeper.await;
    let _ = dispatcher.await;
    if let Some(r) = retention {
        let _ = r.await;
    }
    db.close().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
