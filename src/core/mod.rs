//! The sans-IO core.
pub mod sip;
