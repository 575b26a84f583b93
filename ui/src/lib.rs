//! `ringside-ui`: the egui interface. It renders a snapshot of the engine's state and emits
//! intents; it knows nothing of SIP.
//!
//! Empty on purpose in this release (the engine runs headless first). The crate exists now so
//! the dependency rule is fixed from the start: `ui` never depends on the root `ringside`
//! package, only on the shared snapshot and intent types.
