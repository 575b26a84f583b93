//! The sans-IO core.
pub mod sip;
pub mod transaction;
pub mod transport;
