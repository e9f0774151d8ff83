//! The `pixmill` command line.

#[cfg(feature = "failpoints")]
mod debug;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::{App, Mode, StartOptions};
use crate::auth::issuer::LocalIssuer;
use crate::config::{listen, Config};

#[derive(Parser)]
#[command(
    name = "pixmill",
    version,
    about = "Image processing backend: upload, process, download"
)]
pub struct Cli {
    /// A TOML configuration file (see pixmill.example.toml); also PIXMILL_CONFIG.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Gateway and workers in one process, on embedded backends in the data directory.
    Standalone {
        /// Listen address.
        #[arg(long, value_parser = listen::parse)]
        addr: Option<SocketAddr>,
        /// Where the database, the objects and the token key are kept.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The HTTP API only.
    Gateway {
        #[arg(long, value_parser = listen::parse)]
        addr: Option<SocketAddr>,
    },
    /// The processing pipeline only (health on --admin-addr).
    Worker {
        #[arg(long, value_parser = listen::parse)]
        admin_addr: Option<SocketAddr>,
    },
    /// Print a bearer token signed by the standalone issuer's key.
    Token {
        /// The owner: the token's `sub`, 1 to 255 printable characters (the server's rule).
        #[arg(long, value_parser = owner)]
        sub: String,
        /// The data directory whose issuer key signs the token: the one `standalone` uses
        /// (default: the configured data directory, `./data` unless set).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// How long the token is valid, e.g. `1h`, `30m`.
        #[arg(long, default_value = "1h", value_parser = lifetime)]
        ttl: Duration,
        /// A realm role to carry (repeatable), e.g. `pixmill-admin`.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Print the OpenAPI spec the server serves.
    Openapi,
    /// Tools for the fault battery (only in builds with the `failpoints` feature).
    #[cfg(feature = "failpoints")]
    #[command(subcommand)]
    Debug(debug::DebugCommand),
    /// Exit 0 when URL answers with a 2xx status (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
    },
}

/// `--sub`: an owner the server accepts (the server's own rule), so the command never prints
/// a token that every request would then be refused with.
fn owner(value: &str) -> Result<String, String> {
    pixmill_actors::Owner::parse(value)
        .map(|owner| owner.as_str().to_owned())
        .map_err(|e| format!("{e}: pass --sub <name>, e.g. --sub alice"))
}

/// A token's lifetime: at least a second (a token valid for none would be refused at once).
fn lifetime(value: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(value).map_err(|e| format!("{e}: e.g. 1h, 30m"))?;
    if ttl < Duration::from_secs(1) {
        return Err("a token must be valid for at least 1s, e.g. 1h, 30m".to_owned());
    }
    Ok(ttl)
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Openapi => {
            println!("{}", crate::api::spec_json());
            ExitCode::SUCCESS
        }
        Command::Healthcheck { url } => healthcheck(&url).await,
        command => match load(cli.config, command).await {
            Ok(code) => code,
            Err(message) => {
                eprintln!("pixmill: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn load(file: Option<PathBuf>, command: Command) -> Result<ExitCode, String> {
    let mut config = Config::load(file.as_deref()).map_err(|e| e.to_string())?;
    match command {
        Command::Token {
            sub,
            data_dir,
            ttl,
            roles,
        } => {
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            let dir = config.issuer_dir();
            let new_key = !LocalIssuer::exists_in(&dir);
            let issuer = LocalIssuer::open_or_create(&dir).map_err(|e| e.to_string())?;
            if new_key {
                // Not an error (a key made before the first start is the one the server
                // then uses), but a wrong --data-dir or working directory looks the same,
                // and its tokens are refused with `unknown_signing_key`.
                eprintln!(
                    "note: {} held no issuer key, so a new one was made there; a server started with another data directory refuses this token (pass the one it uses with --data-dir)",
                    dir.display()
                );
            }
            let token = issuer
                .mint(&sub, &roles, ttl, &config.auth.audience)
                .map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Standalone { addr, data_dir } => {
            if let Some(addr) = addr {
                config.server.addr = addr;
            }
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            serve(config, Mode::Standalone).await
        }
        Command::Gateway { addr } => {
            if let Some(addr) = addr {
                config.server.addr = addr;
            }
            serve(config, Mode::Gateway).await
        }
        Command::Worker { admin_addr } => {
            if let Some(addr) = admin_addr {
                config.worker.admin_addr = addr;
            }
            serve(config, Mode::Worker).await
        }
        #[cfg(feature = "failpoints")]
        Command::Debug(command) => debug::run(&config, command).await,
        Command::Openapi | Command::Healthcheck { .. } => Ok(ExitCode::SUCCESS),
    }
}

async fn serve(config: Config, mode: Mode) -> Result<ExitCode, String> {
    crate::telemetry::init(config.log.format);
    let data_dir = config.data_dir.clone();
    let app = App::start(config, mode, StartOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    if mode == Mode::Standalone {
        let dir = data_dir.display();
        // This very binary: `pixmill` is on no PATH when it runs from `cargo run`.
        let exe = std::env::current_exe()
            .map_or_else(|_| "pixmill".to_owned(), |path| path.display().to_string());
        tracing::info!(
            url = %format!("http://{}", app.addr()),
            data_dir = %dir,
            docs = %format!("http://{}/docs", app.addr()),
            get_a_token = %format!("{exe} token --sub alice --data-dir {dir}"),
            "standalone pixmill is ready"
        );
    }
    if app.run_until_signal().await {
        Ok(ExitCode::SUCCESS)
    } else {
        // Returning would drop the runtime, which waits for every blocking task, hung
        // ones included: the deadline would mean nothing. Whatever is unfinished comes
        // back through the queue, leases and dispatch marks.
        std::process::exit(1)
    }
}

async fn healthcheck(url: &str) -> ExitCode {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build();
    let Ok(client) = client else {
        return ExitCode::FAILURE;
    };
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("{url} answered {}", response.status());
            // A readiness report: say which backends fail and how, for `docker inspect`.
            if let Ok(report) = response.json::<serde_json::Value>().await {
                let failing = report["backends"].as_array().into_iter().flatten();
                for backend in failing.filter(|b| b["ok"] == false) {
                    eprintln!(
                        "  {}: {}",
                        backend["name"].as_str().unwrap_or("?"),
                        backend["problem"].as_str().unwrap_or("failed")
                    );
                }
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{url} did not answer: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn a_token_needs_an_owner() {
        let too_long = "a".repeat(pixmill_actors::ids::MAX_OWNER_LEN + 1);
        for refused in ["", "tab\there", too_long.as_str()] {
            let message = match Cli::try_parse_from(["pixmill", "token", "--sub", refused]) {
                Ok(_) => panic!("--sub {refused:?} was taken"),
                Err(error) => error.to_string(),
            };
            assert!(message.contains("owner id must be"), "{message}");
        }
        assert!(Cli::try_parse_from(["pixmill", "token", "--sub", "alice"]).is_ok());
    }

    #[test]
    fn a_token_valid_for_no_time_is_not_minted() {
        for ttl in ["0s", "500ms"] {
            let parsed = Cli::try_parse_from(["pixmill", "token", "--sub", "a", "--ttl", ttl]);
            let message = parsed.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains("at least 1s"), "--ttl {ttl}: {message}");
        }
        assert!(Cli::try_parse_from(["pixmill", "token", "--sub", "a", "--ttl", "8h"]).is_ok());
    }
}
