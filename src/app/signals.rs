//! Signals: SIGINT and SIGTERM stop a process the same way whichever command runs; SIGHUP
//! asks a server to read its files again (the TLS certificate), and never stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Resolves when SIGINT or SIGTERM arrives. The handlers are installed when this is
/// called (inside a runtime), not when the future is first polled, so a signal sent any
/// time after the call stops the process cleanly instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    async fn next(signal: Option<Signal>) {
        match signal {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    async move {
        tokio::select! {
            () = next(term) => {},
            () = next(interrupt) => {},
        }
        tracing::info!("shutdown signal received");
    }
}

/// Sets `stop` when SIGINT or SIGTERM arrives (for a synchronous loop).
pub fn on_shutdown_signal(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async { shutdown_signal().await });
            stop.store(true, Ordering::SeqCst);
        })?;
    Ok(())
}

/// SIGHUP, from now on: registering it here, before a server says it listens, means a
/// SIGHUP sent afterwards is delivered to the stream instead of ending the process.
pub fn hangups() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}
