//! Signals: SIGINT and SIGTERM stop a process the same way whichever command runs; SIGHUP
//! asks a server to read its files again (the TLS certificate), and never stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Sets `stop` when SIGINT or SIGTERM arrives (for a synchronous loop).
pub fn on_shutdown_signal(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(shutdown_signal());
            stop.store(true, Ordering::SeqCst);
        })?;
    Ok(())
}

/// SIGHUP, from now on: registering it here, before a server says it listens, means a
/// SIGHUP sent afterwards is delivered to the stream instead of ending the process.
pub fn hangups() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}
