//! The command line. Subcommand and flag names are a contract integrators rely on.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ringside",
    version,
    about = "A SIP softphone for CRM integration"
)]
pub struct Cli {
    /// Configuration file [default: $XDG_CONFIG_HOME/ringside/config.toml]
    #[arg(long, global = true, env = "RINGSIDE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as `ringside=debug`)
    #[arg(long, global = true, value_name = "LEVEL", default_value = "info")]
    pub log: String,
    /// Print every SIP message sent and received (credentials masked)
    #[arg(long, global = true)]
    pub sip_trace: bool,
    #[command(subcommand)]
    pub command: Option<CliCommand>,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the engine without GUI (headless / desk-phone replacement)
    Run,
    /// Validate a configuration file; prints each error as file:line:col: message
    CheckConfig {
        /// The file to check [default: --config, else the default path]
        path: Option<PathBuf>,
    },
    /// List the audio devices (names to use in `[audio] capture` / `playback`)
    Devices,
    /// Show the running instance's registration state
    Status {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}
