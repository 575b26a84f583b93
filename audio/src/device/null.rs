//! The null device: capture yields silence, playback discards (and counts).

use super::{CaptureSource, DeviceStats, PlaybackSink};

/// Capture that always has data: silence. Not clocked (the engine's tick paces it).
#[derive(Debug, Clone)]
pub struct NullCapture {
    rate_hz: u32,
    samples: u64,
}

impl NullCapture {
    /// A silent source at `rate_hz`.
    pub fn new(rate_hz: u32) -> Self {
        NullCapture {
            rate_hz,
            samples: 0,
        }
    }
}

impl CaptureSource for NullCapture {
    fn read(&mut self, out: &mut [i16]) -> usize {
        out.fill(0);
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

/// Playback that discards everything and counts the samples.
#[derive(Debug, Clone)]
pub struct NullPlayback {
    rate_hz: u32,
    samples: u64,
}

impl NullPlayback {
    /// A sink at `rate_hz`.
    pub fn new(rate_hz: u32) -> Self {
        NullPlayback {
            rate_hz,
            samples: 0,
        }
    }

    /// Samples written so far.
    pub fn samples_written(&self) -> u64 {
        self.samples
    }
}

impl PlaybackSink for NullPlayback {
    fn write(&mut self, pcm: &[i16]) {
        self.samples += pcm.len() as u64;
    }

    fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
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
