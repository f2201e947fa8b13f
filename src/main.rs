//! The `quiver` binary: parse flags, set up logging, bind, and [`quiver::run`].

use anyhow::Context;
use clap::Parser;
use quiver::config::{Config, Flags};
use tracing_subscriber::EnvFilter;

/// mimalloc keeps freed memory for reuse instead of returning large blocks to the OS at once,
/// so query buffers are not page-faulted in afresh for every query.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sets the allocator's options before anything allocates: Rust's runtime allocates before
/// `main`, so this runs as an ELF constructor (the workspace's other `unsafe_code` exception: the
/// attribute placing it is unsafe). See `quiver::alloc`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array")]
static ALLOCATOR_OPTIONS: extern "C" fn() = quiver::alloc::return_freed_memory;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Elsewhere, as early as `main` can: arenas reserved from here on follow the option.
    #[cfg(not(target_os = "linux"))]
    quiver::alloc::return_freed_memory();
    let flags = Flags::parse();
    let filter = EnvFilter::try_new(format!(
        "{},datafusion=warn,object_store=warn",
        flags.log_level
    ))
    .with_context(|| format!("--log.level: {:?} is not a level", flags.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let config = match Config::load(flags.config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(&flags.web_listen_address)
        .await
        .with_context(|| format!("binding {}", flags.web_listen_address))?;
    let addr = listener.local_addr()?;
    let shown = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    tracing::info!(
        "Quiver listening on http://{shown} — data in {}; try http://{shown}/api/v1/labels, /metrics, /api/v1/status/tsdb; remote write to http://{shown}/api/v1/write, OTLP to http://{shown}/api/v1/otlp/v1/metrics",
        flags.storage_path.display()
    );
    let flight = quiver::bind_flight(&flags).await?;
    if let Some(f) = &flight {
        let a = f.local_addr()?;
        tracing::info!(
            "Arrow Flight and Flight SQL on grpc://{}:{} (pyarrow.flight, ADBC)",
            if a.ip().is_unspecified() {
                "localhost".to_string()
            } else {
                a.ip().to_string()
            },
            a.port()
        );
    }
    quiver::run_with_flight(flags, config, listener, flight, shutdown_signal()).await
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
