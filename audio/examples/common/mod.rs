//! What the Opus measurement examples share: 48 kHz WAV input in whole 20 ms frames, the 16 kHz
//! copies PESQ-WB scores, and WAV output. Included with `#[path]` (not an example itself).

use std::path::Path;

use ringside_audio::device::{CaptureSource, FileCapture};
use ringside_audio::resample::Resampler;

/// The rate the examples encode at, and one 20 ms frame of it.
pub const RATE: usize = 48_000;
pub const FRAME: usize = 960;

/// A WAV file at 48 kHz mono, cut to whole frames.
pub fn load(path: &Path) -> Vec<i16> {
    let mut capture = FileCapture::open(path, RATE as u32).expect("readable WAV");
    let mut pcm = vec![0; capture.loop_len() / FRAME * FRAME];
    capture.read(&mut pcm);
    pcm
}

/// `pcm` resampled to 16 kHz (what PESQ-WB scores).
pub fn to_16k(pcm: &[i16]) -> Vec<i16> {
    let mut r = Resampler::new(RATE as u32, 16_000).expect("48k -> 16k");
    let mut out = vec![0i16; r.max_output_len(pcm.len())];
    let n = r.process(pcm, &mut out).expect("resample");
    out.truncate(n);
    out
}

/// Writes mono 16-bit PCM as a WAV file.
pub fn write_wav(path: &Path, rate: u32, pcm: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create WAV");
    for &s in pcm {
        w.write_sample(s).expect("write WAV");
    }
    w.finalize().expect("finish WAV");
}
