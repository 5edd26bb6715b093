//! The launcher: every service of the workspace in one process, from one configuration, with a
//! graceful shutdown on Ctrl-C or SIGTERM.

use shared_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than the system allocator (see the workspace manifest for what it measured).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("hash-password") {
        return oauth_server::service::signin::hash_password_command();
    }
    if std::env::args().nth(1).as_deref() == Some("client-secret") {
        return oauth_server::clients_file::client_secret_command();
    }
    dotenvy::dotenv().ok();
    let config = Config::from_env()?;
    service_kit::telemetry::init(config.audit_log_file.as_deref())?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        oauth_server::migrate(&config).await?;
        mcp_server::migrate(&config).await?;
        println!("the oauth and mcp schemas are up to date");
        return Ok(());
    }
    let shutdown = CancellationToken::new();

    // The OAuth server binds first, so the MCP server can fetch its JWKS at start.
    let oauth_listener = TcpListener::bind((config.oauth_host, config.oauth_port)).await?;
    let mcp_listener = TcpListener::bind((config.mcp_host, config.mcp_port)).await?;
    let oauth_state = oauth_server::AppState::connect(config.clone()).await?;
    let mcp_state = mcp_server::AppState::connect(config.clone()).await?;
    tracing::info!(address = %oauth_listener.local_addr()?, issuer = %config.issuer, "OAuth server listening");
    tracing::info!(address = %mcp_listener.local_addr()?, endpoint = %config.mcp_endpoint(), "MCP server listening");
    let mut oauth = tokio::spawn(oauth_server::serve(
        oauth_listener,
        oauth_state,
        shutdown.clone().cancelled_owned(),
    ));
    let mut mcp = tokio::spawn(mcp_server::serve(
        mcp_listener,
        mcp_state,
        shutdown.clone().cancelled_owned(),
    ));

    let early_exit = tokio::select! {
        _ = service_kit::signals::shutdown_signal() => { tracing::info!("shutting down"); None }
        r = &mut oauth => Some(("OAuth server", r)),
        r = &mut mcp => Some(("MCP server", r)),
    };
    shutdown.cancel();
    if let Some((name, result)) = early_exit {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let _ = oauth.await;
            let _ = mcp.await;
        })
        .await;
        result??;
        anyhow::bail!("the {name} stopped unexpectedly");
    }
    // Let both drain, within bounds.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let _ = oauth.await;
        let _ = mcp.await;
    })
    .await;
    Ok(())
}
