//! `mcp-server`: the MCP server alone (the root launcher starts every service).

use shared_config::Config;

/// mimalloc rather than the system allocator (see the workspace manifest for what it measured).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dotenvy::dotenv().ok();
    let config = Config::from_env()?;
    service_kit::telemetry::init(config.audit_log_file.as_deref())?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        mcp_server::migrate(&config).await?;
        println!("the mcp schema is up to date");
        return Ok(());
    }
    let addr = (config.mcp_host, config.mcp_port);
    let state = mcp_server::AppState::connect(config).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, endpoint = %state.config.mcp_endpoint(), "MCP server listening");
    mcp_server::serve(listener, state, service_kit::signals::shutdown_signal()).await?;
    Ok(())
}
