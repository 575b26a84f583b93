//! Integration layer: how the outside world (CRM, browser, desktop) asks Ringside to call.
pub mod dial;
pub mod url_handler;
