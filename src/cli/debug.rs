//! `pixmill debug ...`: tools the fault battery uses to check results from outside the
//! processes under test. Compiled only with the `failpoints` feature.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use pixmill_actors::pipeline::OutputSpec;
use pixmill_actors::transform::render_all;
use pixmill_actors::{JobSpec, Pipeline, Rendition, Step, VariantName};
use serde::Deserialize;
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
    /// Like `render`, for many jobs in one process: reads one JSON object per line from
    /// standard input, `{"file": PATH, "steps": [...]}`, and prints one SHA-256 per line,
    /// in order.
    RenderBatch,
    /// Take every message off the dead-letter queue (`<queue>.dead`) of the configured
    /// broker and print one image id per line.
    DeadLetters,
}

pub async fn run(config: &Config, command: DebugCommand) -> Result<ExitCode, String> {
    match command {
        DebugCommand::Render { file, steps } => {
            println!("{}", render_one(config, &file, &steps)?);
            Ok(ExitCode::SUCCESS)
        }
        DebugCommand::RenderBatch => render_batch(config),
        DebugCommand::DeadLetters => dead_letters(config).await,
    }
}

/// One line of `render-batch`'s input.
#[derive(Deserialize)]
struct BatchJob {
    file: PathBuf,
    steps: serde_json::Value,
}

fn render_batch(config: &Config) -> Result<ExitCode, String> {
    for line in std::io::stdin().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let job: BatchJob = serde_json::from_str(&line).map_err(|e| format!("{line}: {e}"))?;
        println!("{}", render_one(config, &job.file, &job.steps.to_string())?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Renders FILE with STEPS as a worker would; returns the result's SHA-256 in hex.
fn render_one(config: &Config, file: &Path, steps: &str) -> Result<String, String> {
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
    let output = rendered
        .first()
        .ok_or_else(|| format!("{}: nothing rendered", file.display()))?;
    Ok(hex::encode(Sha256::digest(&output.bytes)))
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
