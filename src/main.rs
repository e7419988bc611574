//! The `clinvoker` command: parse arguments, load settings, start logging, run.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "clinvoker",
    version,
    about = "Serve the Anthropic Messages API from pools of long-lived Claude Code processes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server.
    Serve {
        /// A TOML file overriding the compiled-in defaults (see config/default.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides server.host).
        #[arg(long)]
        host: Option<String>,
        /// Port to listen on, 0 for any free port (overrides server.port).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Print the effective configuration (defaults, file, environment) as TOML-like JSON.
    Config {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Cli::parse().command {
        Command::Serve { config, host, port } => {
            let mut settings = clinvoker::config::Settings::load(config.as_deref())?;
            if let Some(host) = host {
                settings.server.host = host;
            }
            if let Some(port) = port {
                settings.server.port = port;
            }
            settings.validate()?;
            clinvoker::app::serve(settings).await
        }
        Command::Config { config } => {
            let settings = clinvoker::config::Settings::load(config.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&settings)?);
            Ok(())
        }
    }
}
