//! `count --op OP FILE` and `count --floor OP FILE`: one op (or its floor, the decode alone)
//! run once for an instruction counter to read (`benches/regression.sh` runs this under
//! callgrind, which counts only inside [`counted_run`]).
//!
//! The op runs once before that, uncounted, so one-time set-up (libjpeg-turbo's CPU
//! detection, lazily built tables) is not charged to it.

use crate::ops::{Job, Op};
use crate::{flag, positional, BoxError};

pub fn run(args: &[String]) -> Result<(), BoxError> {
    let (name, floor) = match (flag(args, "--op"), flag(args, "--floor")) {
        (Some(op), None) => (op, false),
        (None, Some(op)) => (op, true),
        _ => return Err("give one of --op OP or --floor OP".into()),
    };
    let job = Op::parse(name)?.job()?;
    let file = *positional(args).first().ok_or("no input file")?;
    let input = std::fs::read(file).map_err(|e| format!("reading {file}: {e}"))?;
    let warm_up = work(&job, &input, floor)?;
    let counted = counted_run(&job, &input, floor)?;
    if warm_up != counted {
        return Err(format!("two runs gave different sizes: {warm_up:?} and {counted:?}").into());
    }
    println!("{{\"width\":{},\"height\":{}}}", counted.0, counted.1);
    Ok(())
}

/// The counted run: [`work`] under a name of its own, never inlined, so callgrind's
/// `--toggle-collect` finds it.
#[inline(never)]
fn counted_run(job: &Job, input: &[u8], floor: bool) -> Result<(u32, u32), BoxError> {
    work(job, input, floor)
}

/// The op, or its floor; returns the output's size (the decoded size for a floor).
fn work(job: &Job, input: &[u8], floor: bool) -> Result<(u32, u32), BoxError> {
    if floor {
        job.decode(input)
    } else {
        job.run(input).map(|output| (output.width, output.height))
    }
}
