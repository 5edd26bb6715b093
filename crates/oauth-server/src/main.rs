//! `oauth-server`: the authorization server alone (the root launcher starts every service).

use shared_config::Config;

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
        println!("the oauth schema is up to date");
        return Ok(());
    }
    let addr = (config.oauth_host, config.oauth_port);
    let state = oauth_server::AppState::connect(config).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, issuer = %state.config.issuer, "OAuth server listening");
    oauth_server::serve(listener, state, service_kit::signals::shutdown_signal()).await?;
    Ok(())
}
