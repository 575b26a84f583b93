//! `ringside-audio`: the real-time audio pipeline (codecs, jitter buffer, devices).
//!
//! Empty on purpose in this release: registration and signalling come first, and the media
//! path lands with calls. The crate exists now so the workspace layout and its dependency rule
//! are fixed from the start: `audio` never depends on the root `ringside` package, so it can be
//! tested and benchmarked on its own.
//!
//! ```text
//!   device (cpal / file / null) ─ring─► capture ─► encoder ─► RTP (shell)
//!   RTP (shell) ─► jitter buffer ─► decoder ─► playback ─ring─► device
//! ```
