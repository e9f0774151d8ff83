//! `pixmill debug ...`: tools the fault battery uses to check results from outside the
//! processes under test. Compiled only with the `failpoints` feature.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use pixmill_actors::pipeline::OutputSpec;
use pixmill_actors::transform::render_all;
use pixmill_actors::{JobSpec, Pipeline, Rendition, Step, VariantName};
use sha2::{Digest, Sha256};

use crate::backends::rabbitmq::{drain_dead_letters, RabbitConfig};
use crate::config::Config;

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Render FILE with STEPS (the engine's step JSON, which for `resize`, `crop` and
    /// `grayscale` is the API's) exactly as a worker would, and print the SHA-256 of the
    /// result.
    Render {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        steps: String,
    },
    /// Take every message off the dead-letter queue (`<queue>.dead`) of the configured
    /// broker and print one image id per line.
    DeadLetters,
}

pub async fn run(config: &Config, command: DebugCommand) -> Result<ExitCode, String> {
    match command {
        DebugCommand::Render { file, steps } => render(config, &file, &steps),
        DebugCommand::DeadLetters => dead_letters(config).await,
    }
}

fn render(config: &Config, file: &PathBuf, steps: &str) -> Result<ExitCode, String> {
    let input = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let steps: Vec<Step> = serde_json::from_str(steps).map_err(|e| format!("steps: {e}"))?;
    let pipeline = Pipeline::new(steps).map_err(|e| format!("steps: {e}"))?;
    let spec = JobSpec {
        renditions: vec![Rendition {
            name: VariantName::main(),
            pipeline,
            output: OutputSpec::default(),
        }],
    };
    let rendered = render_all(&input, &spec, &config.limits).map_err(|e| e.to_string())?;
    for output in rendered {
        println!("{}", hex::encode(Sha256::digest(&output.bytes)));
    }
    Ok(ExitCode::SUCCESS)
}

async fn dead_letters(config: &Config) -> Result<ExitCode, String> {
    let url = config
        .queue
        .url
        .as_ref()
        .ok_or("no queue URL configured (PIXMILL_QUEUE__URL)")?;
    let mut rabbit = RabbitConfig::new(url.expose());
    rabbit.queue = config.queue.name.clone();
    let ids = drain_dead_letters(&rabbit)
        .await
        .map_err(|e| e.to_string())?;
    for id in ids {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}
