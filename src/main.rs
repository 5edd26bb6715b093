//! The launcher: every service of the workspace in one process, from one configuration, with a
//! graceful shutdown on Ctrl-C or SIGTERM.

use shared_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dotenvy::dotenv().ok();
    oauth_server::telemetry::init();
    let config = Config::from_env()?;
    let shutdown = CancellationToken::new();

    let oauth_listener = TcpListener::bind((config.oauth_host, config.oauth_port)).await?;
    let oauth_state = oauth_server::AppState::new(config.clone())?;
    tracing::info!(address = %oauth_listener.local_addr()?, issuer = %config.issuer, "OAuth server listening");
    let oauth = tokio::spawn(oauth_server::serve(
        oauth_listener,
        oauth_state,
        shutdown.clone().cancelled_owned(),
    ));

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        result = oauth => {
            shutdown.cancel();
            result??;
            return Ok(());
        }
    }
    shutdown.cancel();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
