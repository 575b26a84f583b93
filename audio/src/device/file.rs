//! WAV files as devices: capture loops a file read into memory at open; playback records a
//! mono 16-bit WAV whose header is rewritten every second so a killed process leaves a valid file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

use super::{CaptureSource, DeviceError, DeviceStats, PlaybackSink};
use crate::resample::Resampler;

/// Largest WAV file [`FileCapture`] accepts (50 MiB, about 9 minutes of 48 kHz stereo 16-bit).
pub const MAX_CAPTURE_FILE_BYTES: u64 = 50 * 1024 * 1024;

/// Input samples of wrap-around context fed to the resampler on each side of the file, so the
/// loop point is filtered as if the file continued (and the filter delay is compensated).
const LOOP_CONTEXT_SAMPLES: usize = 4096;

/// Capture from a WAV file (any PCM integer or 32-bit float format, any channel count, any
/// rate the resampler supports), mixed to mono, resampled to the rate asked for and looped
/// forever. Not clocked: `read` returns at once.
#[derive(Debug, Clone)]
pub struct FileCapture {
    path: PathBuf,
    rate_hz: u32,
    pcm: Vec<i16>,
    pos: usize,
    samples: u64,
    file_rate_hz: u32,
    file_channels: u16,
}

impl FileCapture {
    /// Reads, mixes and resamples the whole file. Refuses files larger than
    /// [`MAX_CAPTURE_FILE_BYTES`] and files without samples.
    pub fn open(path: &Path, rate_hz: u32) -> Result<Self, DeviceError> {
        let io_err = |source| DeviceError::Io {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io_err)?.len();
        if size > MAX_CAPTURE_FILE_BYTES {
            return Err(DeviceError::Unsupported(format!(
                "{}: file is {size} bytes, capture files are limited to {MAX_CAPTURE_FILE_BYTES} \
                 bytes (50 MiB)",
                path.display()
            )));
        }
        let reader = WavReader::open(path).map_err(|e| hound_error(path, e))?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels);
        if channels == 0 {
            return Err(DeviceError::Unsupported(format!(
                "{}: WAV header declares 0 channels",
                path.display()
            )));
        }
        // Decode to f32 in i16 scale.
        let interleaved: Vec<f32> = match spec.sample_format {
            SampleFormat::Int => {
                if !(1..=32).contains(&spec.bits_per_sample) {
                    return Err(DeviceError::Unsupported(format!(
                        "{}: {}-bit integer PCM",
                        path.display(),
                        spec.bits_per_sample
                    )));
                }
                let scale = 32768.0 / (1u64 << (spec.bits_per_sample - 1)) as f64;
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                    .collect::<Result<_, _>>()
                    .map_err(|e| hound_error(path, e))?
            }
            SampleFormat::Float => reader
                .into_samples::<f32>()
                .map(|s| s.map(|v| v * 32768.0))
                .collect::<Result<_, _>>()
                .map_err(|e| hound_error(path, e))?,
        };
        let mono: Vec<f32> = interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect();
        if mono.is_empty() {
            return Err(DeviceError::Unsupported(format!(
                "{}: WAV file has no samples",
                path.display()
            )));
        }
        let pcm = if spec.sample_rate == rate_hz {
            mono.iter()
                .map(|&v| crate::resample::Sample::from_f32(v))
                .collect()
        } else {
            resample_loop(&mono, spec.sample_rate, rate_hz)
                .map_err(|e| DeviceError::Unsupported(format!("{}: {e}", path.display())))?
        };
        if pcm.is_empty() {
            return Err(DeviceError::Unsupported(format!(
                "{}: WAV file too short to resample",
                path.display()
            )));
        }
        Ok(FileCapture {
            path: path.to_owned(),
            rate_hz,
            pcm,
            pos: 0,
            samples: 0,
            file_rate_hz: spec.sample_rate,
            file_channels: spec.channels,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of one loop, in samples at `rate_hz`.
    pub fn loop_len(&self) -> usize {
        self.pcm.len()
    }

    /// Rate and channel count stored in the file.
    pub fn file_format(&self) -> (u32, u16) {
        (self.file_rate_hz, self.file_channels)
    }
}

impl CaptureSource for FileCapture {
    fn read(&mut self, out: &mut [i16]) -> usize {
        let mut filled = 0;
        while filled < out.len() {
            let n = (out.len() - filled).min(self.pcm.len() - self.pos);
            out[filled..filled + n].copy_from_slice(&self.pcm[self.pos..self.pos + n]);
            filled += n;
            self.pos = (self.pos + n) % self.pcm.len();
        }
        self.samples += out.len() as u64;
        out.len()
    }

    fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    fn stats(&self) -> DeviceStats {
        DeviceStats {
            rate_hz: self.rate_hz,
            device_channels: 1,
            samples: self.samples,
            ..DeviceStats::default()
        }
    }
}

/// Resamples one loop of `mono` as if it repeated forever: the resampler is primed with the
/// file's tail and fed its head afterwards, and the output is shifted by the filter delay.
fn resample_loop(
    mono: &[f32],
    from_hz: u32,
    to_hz: u32,
) -> Result<Vec<i16>, crate::resample::ResampleError> {
    let mut r = Resampler::new(from_hz, to_hz)?;
    let len = mono.len();
    let ctx = LOOP_CONTEXT_SAMPLES;
    // The `ctx` samples before the loop start and after its end, wrapping around the file.
    let tail_start = len - ctx % len;
    let pre: Vec<f32> = (0..ctx).map(|i| mono[(tail_start + i) % len]).collect();
    let post: Vec<f32> = (0..ctx).map(|i| mono[i % len]).collect();

    let mut scratch = vec![0.0f32; r.max_output_len(ctx)];
    r.process(&pre, &mut scratch)?;
    let mut out = vec![0.0f32; r.max_output_len(len) + r.max_output_len(ctx)];
    let n_file = r.process(mono, &mut out)?;
    let n_post = r.process(&post, &mut out[n_file..])?;
    let delay = r.delay_output_samples().round() as usize;
    let start = delay.min(n_post);
    Ok(out[start..start + n_file]
        .iter()
        .map(|&v| crate::resample::Sample::from_f32(v))
        .collect())
}

fn hound_error(path: &Path, e: hound::Error) -> DeviceError {
    match e {
        hound::Error::IoError(source) => DeviceError::Io {
            path: path.to_owned(),
            source,
        },
        other => DeviceError::Unsupported(format!("{}: {other}", path.display())),
    }
}

fn hound_to_io(e: hound::Error) -> std::io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => std::io::Error::other(other),
    }
}

/// Playback into a mono 16-bit PCM WAV at `rate_hz`. The header is rewritten (hound `flush`)
/// after every second of audio, so the file is valid up to the last full second if the process
/// dies; [`PlaybackSink::finish`] (also run on drop) writes the final header.
///
/// `write` does file I/O: fine on the engine thread, never call it from an audio callback.
pub struct FilePlayback {
    path: PathBuf,
    rate_hz: u32,
    writer: Option<WavWriter<BufWriter<File>>>,
    since_flush: usize,
    flush_every: usize,
    samples: u64,
    dropped: u64,
    error: Option<std::io::Error>,
    last_error: Option<String>,
}

impl FilePlayback {
    /// Creates (truncates) `path` and writes a WAV header for mono 16-bit at `rate_hz`.
    pub fn create(path: &Path, rate_hz: u32) -> Result<Self, DeviceError> {
        let spec = WavSpec {
            channels: 1,
            sample_rate: rate_hz,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        // The buffer holds a second of audio and then some, so the file sees one `write` per
        // second (at the header rewrite) instead of one per 8 KiB: each buffered write on ext4
        // also updates the inode's times through the journal, and that was 7 % of a PCMU
        // call's CPU samples (docs/performance.md). Margin: an eighth of a second, more than
        // one 20 ms engine tick.
        let flush_every = rate_hz as usize;
        let capacity = (flush_every + flush_every / 8) * std::mem::size_of::<i16>();
        let file = File::create(path).map_err(|source| DeviceError::Io {
            path: path.to_owned(),
            source,
        })?;
        let writer = WavWriter::new(BufWriter::with_capacity(capacity, file), spec)
            .map_err(|e| hound_error(path, e))?;
        Ok(FilePlayback {
            path: path.to_owned(),
            rate_hz,
            writer: Some(writer),
            since_flush: 0,
            flush_every,
            samples: 0,
            dropped: 0,
            error: None,
            last_error: None,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the header for everything written so far and flushes the file buffer (done
    /// automatically every second of audio).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.since_flush = 0;
        match self.writer.as_mut() {
            Some(w) => w.flush().map_err(hound_to_io),
            None => Ok(()),
        }
    }

    fn record_error(&mut self, e: std::io::Error) {
        self.last_error = Some(e.to_string());
        // The writer is unusable after an I/O error: stop writing, keep the first error for
        // `finish` to report.
        self.writer = None;
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

impl PlaybackSink for FilePlayback {
    fn write(&mut self, pcm: &[i16]) {
        let Some(writer) = self.writer.as_mut() else {
            self.dropped += pcm.len() as u64;
            return;
        };
        let mut result = Ok(());
        {
            let mut w = writer.get_i16_writer(pcm.len() as u32);
            for &s in pcm {
                w.write_sample(s);
            }
            if let Err(e) = w.flush() {
                result = Err(hound_to_io(e));
            }
        }
        if let Err(e) = result {
            self.dropped += pcm.len() as u64;
            self.record_error(e);
            return;
        }
        self.samples += pcm.len() as u64;
        self.since_flush += pcm.len();
        if self.since_flush >= self.flush_every
            && let Err(e) = self.flush()
        {
            self.record_error(e);
        }
    }

    fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(writer) = self.writer.take() {
            writer.finalize().map_err(hound_to_io)?;
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn stats(&self) -> DeviceStats {
        DeviceStats {
            rate_hz: self.rate_hz,
            device_channels: 1,
            samples: self.samples,
            dropped_samples: self.dropped,
            last_error: self.last_error.clone(),
            ..DeviceStats::default()
        }
    }
}

impl std::fmt::Debug for FilePlayback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePlayback")
            .field("path", &self.path)
            .field("rate_hz", &self.rate_hz)
            .field("open", &self.writer.is_some())
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl Drop for FilePlayback {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; call `finish` to see them.
        let _ = self.finish();
    }
}
