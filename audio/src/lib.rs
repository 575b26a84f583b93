//! `ringside-audio`: the real-time audio pipeline (codecs, jitter buffer, devices).
//!
//! Dependency rule: `audio` never depends on the root `ringside` package, so it can be tested
//! and benchmarked on its own.
//!
//! - [`codec`]: `Encoder`/`Decoder` traits, the codec factory and error taxonomy;
//!   [`g711`] (PCMU/PCMA with G.711 Appendix I concealment) and [`opus_codec`] (libopus).
//! - [`resample`]: polyphase resampling between codec rates (8/16/48 kHz) and device rates.
//!
//! Real-time rule for everything here: allocate at setup, never per frame.
//!
//! ```text
//!   device (cpal / file / null) ─ring─► capture ─► encoder ─► RTP (shell)
//!   RTP (shell) ─► jitter buffer ─► decoder ─► playback ─ring─► device
//! ```

pub mod jitter;

pub mod aec;

pub mod codec;
pub mod device;
pub mod g711;
pub mod opus_codec;
pub mod resample;
pub mod session;
pub mod tones;
