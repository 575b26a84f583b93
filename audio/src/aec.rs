//! Acoustic echo cancellation: removes from the microphone signal what the loudspeaker played.
//!
//! Why: on a laptop or desk phone without a headset the far end hears itself back, delayed by the
//! round trip through our playback buffers, the room and our capture buffers. The canceller
//! models that echo path from the signal we played (the *far end*, or render signal) and
//! subtracts/suppresses it in the captured signal (the *near end*).
//!
//! Implementation: the pure-Rust port of WebRTC's AEC3 (crate `aec3`). It was chosen over the
//! `webrtc-audio-processing` bindings because it builds with `cargo` alone (no autoconf, libtool
//! or libclang on developer machines and CI) and cancels a synthetic echo equally well
//! (see `audio/tests/aec.rs`). AEC3 estimates the echo delay itself (up to several hundred
//! milliseconds), so the caller needs no delay measurement; it only has to hand over the far end
//! no later than the near end that contains its echo.
//!
//! AEC3 works on 10 ms frames at 16, 32 or 48 kHz (the higher rates split into 16 kHz bands);
//! [`EchoCanceller::process`] takes any whole number of 10 ms frames (the engine's 20 ms tick is
//! two) and converts between `i16` and AEC3's float-in-`i16`-scale buffers in preallocated
//! storage. Our code does not allocate per frame; AEC3 itself may allocate small temporaries
//! internally. Nothing here reads a clock: time is counted in frames.

use std::fmt;

use aec3::api::config::EchoCanceller3Config;
use aec3::api::control::EchoControl;
use aec3::audio_processing::aec3::echo_canceller3::EchoCanceller3;
use aec3::audio_processing::audio_buffer::AudioBuffer;
use thiserror::Error;

/// Rates AEC3 supports (full-band rates that split into 16 kHz bands).
pub const SUPPORTED_RATES_HZ: [u32; 3] = [16_000, 32_000, 48_000];

/// Frame length the canceller works on internally.
pub const FRAME_MS: u32 = 10;

/// Why a canceller could not be built or a call to it was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AecError {
    /// The rate is not one of [`SUPPORTED_RATES_HZ`].
    #[error("echo cancellation does not support {0} Hz (supported: 16000, 32000, 48000)")]
    UnsupportedRate(u32),
    /// The near end is not a whole number of 10 ms frames, or the far end has a different length.
    #[error(
        "echo canceller needs equal far/near lengths in whole {frame}-sample frames \
         (got far {far}, near {near})"
    )]
    FrameLength {
        /// Samples per 10 ms frame at the canceller's rate.
        frame: usize,
        /// Far-end samples given.
        far: usize,
        /// Near-end samples given.
        near: usize,
    },
}

/// Counters and the canceller's own estimates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AecStats {
    /// 10 ms frames processed.
    pub frames: u64,
    /// AEC3's echo return loss estimate, dB (how much the room attenuates the echo).
    pub echo_return_loss_db: f64,
    /// AEC3's echo return loss enhancement estimate, dB (how much the canceller removes).
    pub erle_db: f64,
    /// AEC3's estimate of the echo path delay, ms.
    pub delay_ms: i32,
}

/// A mono echo canceller at one rate.
pub struct EchoCanceller {
    rate_hz: u32,
    frame: usize,
    aec: EchoCanceller3,
    render: AudioBuffer,
    capture: AudioBuffer,
    frames: u64,
}

impl fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EchoCanceller")
            .field("rate_hz", &self.rate_hz)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl EchoCanceller {
    /// A canceller for mono PCM at `rate_hz` (16000, 32000 or 48000).
    pub fn new(rate_hz: u32) -> Result<Self, AecError> {
        if !SUPPORTED_RATES_HZ.contains(&rate_hz) {
            return Err(AecError::UnsupportedRate(rate_hz));
        }
        let rate = rate_hz as usize;
        let rate_i32 = i32::try_from(rate_hz).map_err(|_| AecError::UnsupportedRate(rate_hz))?;
        Ok(Self {
            rate_hz,
            frame: rate * FRAME_MS as usize / 1000,
            aec: EchoCanceller3::new(EchoCanceller3Config::default(), rate_i32, 1, 1),
            render: AudioBuffer::from_sample_rates(rate, 1, rate, 1, rate),
            capture: AudioBuffer::from_sample_rates(rate, 1, rate, 1, rate),
            frames: 0,
        })
    }

    /// The canceller's rate.
    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    /// Samples in one 10 ms frame.
    pub fn frame_len(&self) -> usize {
        self.frame
    }

    /// Removes the echo of `far_end` (what was played, aligned with or earlier than the capture)
    /// from `near_end` (what was captured), in place.
    ///
    /// Both slices must have the same length, a whole number of 10 ms frames; otherwise
    /// `near_end` is left unchanged and [`AecError::FrameLength`] is returned.
    pub fn process(&mut self, far_end: &[i16], near_end: &mut [i16]) -> Result<(), AecError> {
        if far_end.len() != near_end.len() || !near_end.len().is_multiple_of(self.frame) {
            return Err(AecError::FrameLength {
                frame: self.frame,
                far: far_end.len(),
                near: near_end.len(),
            });
        }
        for (far, near) in far_end
            .chunks_exact(self.frame)
            .zip(near_end.chunks_exact_mut(self.frame))
        {
            self.process_frame(far, near);
        }
        Ok(())
    }

    fn process_frame(&mut self, far: &[i16], near: &mut [i16]) {
        // AEC3's buffers hold floats in i16 scale ("FloatS16").
        for (dst, src) in self.render.channel_mut(0).iter_mut().zip(far) {
            *dst = f32::from(*src);
        }
        self.render.split_into_frequency_bands();
        self.aec.analyze_render(&mut self.render);

        for (dst, src) in self.capture.channel_mut(0).iter_mut().zip(near.iter()) {
            *dst = f32::from(*src);
        }
        self.aec.analyze_capture(&mut self.capture);
        self.capture.split_into_frequency_bands();
        self.aec.process_capture(&mut self.capture, false);
        self.capture.merge_frequency_bands();
        for (dst, src) in near.iter_mut().zip(self.capture.channel(0)) {
            *dst = src.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
        }
        self.frames += 1;
    }

    /// Counters and AEC3's current estimates.
    pub fn stats(&self) -> AecStats {
        let metrics = self.aec.metrics();
        AecStats {
            frames: self.frames,
            echo_return_loss_db: metrics.echo_return_loss,
            erle_db: metrics.echo_return_loss_enhancement,
            delay_ms: metrics.delay_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsupported_rates() {
        assert_eq!(
            EchoCanceller::new(8_000).err(),
            Some(AecError::UnsupportedRate(8_000))
        );
        assert_eq!(
            EchoCanceller::new(44_100).err(),
            Some(AecError::UnsupportedRate(44_100))
        );
        for rate in SUPPORTED_RATES_HZ {
            let aec = EchoCanceller::new(rate).expect("supported rate");
            assert_eq!(aec.frame_len(), rate as usize / 100);
        }
    }

    #[test]
    fn rejects_partial_frames_and_leaves_near_end_alone() {
        let mut aec = EchoCanceller::new(48_000).expect("48 kHz");
        let far = vec![0i16; 700];
        let mut near = vec![123i16; 700];
        assert!(matches!(
            aec.process(&far, &mut near),
            Err(AecError::FrameLength { frame: 480, .. })
        ));
        assert!(near.iter().all(|&s| s == 123));
        let mut near = vec![0i16; 960];
        assert!(aec.process(&far, &mut near).is_err());
    }

    #[test]
    fn processes_twenty_ms_ticks() {
        let mut aec = EchoCanceller::new(48_000).expect("48 kHz");
        let far = vec![0i16; 960];
        let mut near = vec![0i16; 960];
        for _ in 0..10 {
            aec.process(&far, &mut near).expect("whole frames");
        }
        assert_eq!(aec.stats().frames, 20);
        assert!(near.iter().all(|&s| s.abs() < 4));
    }
}
