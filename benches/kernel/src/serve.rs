//! The JSON-lines protocol the driver speaks: one request per line on stdin, one answer per
//! line on stdout, in order. The input is read into memory before the clock starts; each
//! rep is timed alone, from encoded bytes in memory to encoded bytes in memory.

use std::io::{BufRead, Write};

use serde::Deserialize;
use serde_json::json;

use crate::floor;
use crate::ops::Op;
use crate::{cpu, BoxError};

/// Most reps one request may ask for, so a typo cannot hang the driver for hours.
const MAX_REPS: u32 = 1_000;

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Run the kernel's op.
    Kernel,
    /// Run the op's floor (the decode alone).
    Floor,
}

#[derive(Deserialize)]
struct Request {
    op: String,
    file: String,
    #[serde(default = "one")]
    reps: u32,
    /// Where to save the output of the first rep (kernel mode only).
    write: Option<String>,
}

fn one() -> u32 {
    1
}

/// Answers requests until stdin closes. A bad request gets an `{"error":..}` line and the
/// loop goes on; only a broken stdin or stdout ends it with an error.
pub fn run(mode: Mode) -> Result<(), BoxError> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = answer(mode, &line).unwrap_or_else(|e| json!({ "error": e.to_string() }));
        writeln!(stdout, "{answer}")?;
        stdout.flush()?;
    }
    Ok(())
}

fn answer(mode: Mode, line: &str) -> Result<serde_json::Value, BoxError> {
    let request: Request = serde_json::from_str(line)?;
    let op = Op::parse(&request.op)?;
    if request.reps == 0 || request.reps > MAX_REPS {
        return Err(format!("reps must be 1 to {MAX_REPS}").into());
    }
    let input =
        std::fs::read(&request.file).map_err(|e| format!("reading {}: {e}", request.file))?;
    match mode {
        Mode::Kernel => kernel(op, &input, &request),
        Mode::Floor => floor(op, &input, request.reps),
    }
}

fn kernel(op: Op, input: &[u8], request: &Request) -> Result<serde_json::Value, BoxError> {
    let job = op.job()?;
    let mut seconds = Vec::new();
    let mut last = None;
    for _ in 0..request.reps {
        let (output, s) = cpu::timed(|| job.run(input))?;
        seconds.push(s);
        last = Some(output);
    }
    let output = last.ok_or("no rep ran")?;
    if let Some(path) = &request.write {
        std::fs::write(path, &output.bytes).map_err(|e| format!("writing {path}: {e}"))?;
    }
    Ok(json!({
        "cpu_s": seconds,
        "bytes": output.bytes.len(),
        "width": output.width,
        "height": output.height,
    }))
}

fn floor(op: Op, input: &[u8], reps: u32) -> Result<serde_json::Value, BoxError> {
    let job = op.job()?;
    let mut seconds = Vec::new();
    let mut size = None;
    for _ in 0..reps {
        let (decoded, s) = floor::measure(&job, input)?;
        seconds.push(s);
        size = Some(decoded);
    }
    let (width, height) = size.ok_or("no rep ran")?;
    Ok(json!({
        "cpu_s": seconds,
        "width": width,
        "height": height,
    }))
}
