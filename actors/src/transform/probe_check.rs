//! What every answer of [`probe`] must satisfy, whatever bytes it is given. Shared by the
//! fuzz target (`fuzz/fuzz_targets/probe.rs`) and the regression test that replays what
//! the fuzzer found (`actors/tests/fuzz_regressions/`), so both hold the same contract.

use super::probe::PARSER_PANICKED;
use super::sniff::sniff;
use super::{probe, InputError, InputLimits, Probe};

/// Probes `bytes` under `limits` and names the first broken invariant, if any. A panic
/// escaping `probe` is not caught here: under the fuzzer it is the crash to report.
pub fn probe_violation(bytes: &[u8], limits: &InputLimits) -> Option<String> {
    let first = probe(bytes, limits);
    if probe(bytes, limits) != first {
        return Some("two probes of the same bytes disagree".into());
    }
    match first {
        Ok(probed) => accepted_violation(bytes, limits, &probed),
        Err(error) => refused_violation(bytes, &error),
    }
}

/// An accepted file is of an allowed format its magic bytes name, within every limit.
fn accepted_violation(bytes: &[u8], limits: &InputLimits, p: &Probe) -> Option<String> {
    let pixels = u64::from(p.width) * u64::from(p.height);
    let broken = if bytes.len() as u64 > limits.max_bytes {
        "accepted a file over max_bytes"
    } else if sniff(bytes) != Some(p.format) {
        "the format is not the one the magic bytes name"
    } else if !limits.allowed_formats.contains(&p.format) {
        "accepted a format that is not allowed"
    } else if p.width == 0 || p.height == 0 {
        "accepted a zero-sized image"
    } else if p.width > limits.max_width || p.height > limits.max_height {
        "accepted a side over the limit"
    } else if pixels > limits.max_pixels {
        "accepted more pixels than max_pixels"
    } else if p.frames == 0 || p.frames > limits.max_frames {
        "accepted a frame count outside 1..=max_frames"
    } else if p.frames > 1 && u64::from(p.frames) * pixels > limits.max_animation_pixels {
        "accepted an animation over max_animation_pixels"
    } else {
        return None;
    };
    Some(format!("{broken}: {p:?}"))
}

/// A refusal is empty exactly for empty input, and never a header parser's panic: a panic
/// is contained in production, but it is a bug this contract wants to see.
fn refused_violation(bytes: &[u8], error: &InputError) -> Option<String> {
    let broken = if (*error == InputError::Empty) != bytes.is_empty() {
        "empty_upload for a non-empty file, or another code for an empty one"
    } else if matches!(error, InputError::Corrupt(m) if m.starts_with(PARSER_PANICKED)) {
        "a header parser panicked"
    } else if error.to_string().is_empty() {
        "a refusal without a message"
    } else {
        return None;
    };
    Some(format!("{broken}: {} ({error})", error.code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the fuzzer ever crashed on, and the seeds it starts from, stay checked.
    #[test]
    fn every_fuzz_regression_holds_the_contract() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_regressions");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("the regression folder")
            .map(|entry| entry.expect("an entry").path())
            .filter(|path| path.is_file() && path.extension().is_none_or(|e| e != "md"))
            .collect();
        files.sort();
        assert!(files.len() >= 5, "the seeds are missing from {dir}");
        for path in files {
            let bytes = std::fs::read(&path).expect("a regression file");
            let violation = probe_violation(&bytes, &InputLimits::default());
            assert_eq!(violation, None, "{}", path.display());
        }
    }

    #[test]
    fn broken_answers_are_named() {
        let limits = InputLimits::default();
        let huge = Probe {
            format: crate::format::ImageFormat::Png,
            width: limits.max_width + 1,
            height: 1,
            frames: 1,
            turned: false,
        };
        let png = b"\x89PNG\r\n\x1a\n";
        assert!(accepted_violation(png, &limits, &huge).is_some());
        let panicked = InputError::Corrupt(format!("{PARSER_PANICKED}: boom"));
        assert!(refused_violation(b"x", &panicked).is_some());
        assert!(refused_violation(b"x", &InputError::Empty).is_some());
        assert_eq!(refused_violation(b"", &InputError::Empty), None);
    }
}
