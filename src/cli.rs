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
    /// Show the running instance's registrations and calls
    Status {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Call a number or SIP URI through the running instance (dial policy applies)
    Dial {
        /// A number (visual separators allowed) or a sip:/sips: URI
        target: String,
        /// The account to call through [default: the first]
        #[arg(long)]
        account: Option<String>,
    },
    /// Answer a ringing call [default: the only one ringing]
    Answer { call: Option<String> },
    /// Refuse a ringing call [default: the only one ringing]
    Reject {
        call: Option<String>,
        /// SIP status: 486 (busy, default) or 603 (decline)
        #[arg(long)]
        code: Option<u16>,
    },
    /// Hang up a call [default: the only one in progress]
    Hangup { call: Option<String> },
    /// Put a call on hold [default: the only one established]
    Hold { call: Option<String> },
    /// Take a call off hold [default: the only one established]
    Resume { call: Option<String> },
    /// Stop sending audio on a call [default: the only one established]
    Mute { call: Option<String> },
    /// Send audio again [default: the only one established]
    Unmute { call: Option<String> },
    /// Send DTMF digits on a call
    Dtmf {
        /// Digits: 0-9 * # A-D
        digits: String,
        /// The call [default: the only one established]
        #[arg(long)]
        call: Option<String>,
    },
    /// Print the event stream as JSON lines (a snapshot first, unless --after is given)
    Events {
        /// Replay from the log every event after this seq, then follow
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
    },
    /// Dial a tel:, sip:, sips: or callto: URL through the running instance (URL handler)
    OpenUrl { url: String },
    /// Register Ringside as the desktop's handler for tel:, sip:, sips: and callto: links
    InstallUrlHandlers,
}

/// URL schemes `ringside URL` accepts without a subcommand (as a desktop URL handler calls it).
pub const URL_SCHEMES: [&str; 4] = ["tel:", "sip:", "sips:", "callto:"];

/// `ringside tel:+331234` means `ringside open-url tel:+331234`, also after global options
/// (`ringside --config office.toml tel:+331234`).
pub fn rewrite_url_argument(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let command = <Cli as clap::CommandFactory>::command();
    // Skip the leading global options (and their values) to reach the first positional.
    let mut position = 1;
    while let Some(arg) = args.get(position).and_then(|arg| arg.to_str()) {
        let Some(option) = arg.strip_prefix("--") else {
            break;
        };
        let (name, inline_value) = match option.split_once('=') {
            Some((name, _)) => (name, true),
            None => (option, false),
        };
        let Some(takes_value) = command
            .get_arguments()
            .find(|a| a.is_global_set() && a.get_long() == Some(name))
            .map(|a| a.get_action().takes_values())
        else {
            break;
        };
        position += if takes_value && !inline_value { 2 } else { 1 };
    }
    let is_url = args
        .get(position)
        .and_then(|arg| arg.to_str())
        .is_some_and(|arg| {
            URL_SCHEMES.iter().any(|scheme| {
                arg.len() >= scheme.len()
                    && arg.is_char_boundary(scheme.len())
                    && arg[..scheme.len()].eq_ignore_ascii_case(scheme)
            })
        });
    if is_url {
        args.insert(position, "open-url".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_url_argument_becomes_open_url() {
        let args = |list: &[&str]| {
            list.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            rewrite_url_argument(args(&["ringside", "TEL:+331234"])),
            args(&["ringside", "open-url", "TEL:+331234"])
        );
        assert_eq!(
            rewrite_url_argument(args(&["ringside", "status"])),
            args(&["ringside", "status"])
        );
        let cli =
            Cli::try_parse_from(rewrite_url_argument(args(&["ringside", "callto:+1555"]))).unwrap();
        assert!(matches!(cli.command, Some(CliCommand::OpenUrl { url }) if url == "callto:+1555"));
        assert_eq!(
            rewrite_url_argument(args(&["ringside", "--config", "a.toml", "tel:+1"])),
            args(&["ringside", "--config", "a.toml", "open-url", "tel:+1"])
        );
        assert_eq!(
            rewrite_url_argument(args(&["ringside", "--log=debug", "--sip-trace", "sip:a@b"])),
            args(&[
                "ringside",
                "--log=debug",
                "--sip-trace",
                "open-url",
                "sip:a@b"
            ])
        );
        // A URL-looking option value is not the URL argument.
        assert_eq!(
            rewrite_url_argument(args(&["ringside", "--config", "tel:x", "status"])),
            args(&["ringside", "--config", "tel:x", "status"])
        );
        assert_eq!(
            rewrite_url_argument(args(&["ringside", "--json", "tel:+1"])),
            args(&["ringside", "--json", "tel:+1"])
        );
        assert_eq!(
            rewrite_url_argument(args(&["ringside", "abc\u{e9}"])),
            args(&["ringside", "abc\u{e9}"])
        );
    }
}
