//! `ringside`: see `ringside --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringside::cli::{Cli, CliCommand};
use ringside::integration::client::ControlClient;
use ringside::shell::{self, RunOptions};
use ringside_config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse_from(ringside::cli::rewrite_url_argument(
        std::env::args_os().collect(),
    ));
    init_logging(&cli.log);
    match cli.command {
        // Until the GUI exists, `ringside` alone runs headless.
        None | Some(CliCommand::Run) => run(
            cli.config,
            RunOptions {
                sip_trace: cli.sip_trace,
            },
        ),
        Some(CliCommand::CheckConfig { path }) => check_config(path.or(cli.config)),
        Some(CliCommand::Status { json }) => status(cli.config, json),
        Some(CliCommand::Devices) => devices(),
        Some(CliCommand::Events { after }) => events(cli.config, after),
        Some(CliCommand::OpenUrl { url }) => open_url(cli.config, &url),
        Some(CliCommand::InstallUrlHandlers) => install_url_handlers(),
        Some(command) => match call_command(command) {
            Some(request) => control(cli.config, &request),
            None => ExitCode::from(2),
        },
    }
}

/// The socket request for a call-control subcommand.
fn call_command(command: CliCommand) -> Option<serde_json::Value> {
    use ringside::integration::control::CallCommand;
    let command = match command {
        CliCommand::Dial { target, account } => CallCommand::Dial {
            to: target,
            account,
        },
        CliCommand::Answer { call } => CallCommand::Answer { call },
        CliCommand::Reject { call, code } => CallCommand::Reject { call, code },
        CliCommand::Hangup { call } => CallCommand::Hangup { call },
        CliCommand::Hold { call } => CallCommand::Hold { call },
        CliCommand::Resume { call } => CallCommand::Resume { call },
        CliCommand::Mute { call } => CallCommand::Mute { call },
        CliCommand::Unmute { call } => CallCommand::Unmute { call },
        CliCommand::Dtmf { digits, call } => CallCommand::Dtmf { call, digits },
        _ => return None,
    };
    let mut request = serde_json::to_value(command).ok()?;
    request["origin"] = "manual".into();
    Some(request)
}

/// The control socket of the instance the configuration describes.
fn socket_path(config_path: Option<PathBuf>) -> Result<PathBuf, String> {
    load_config_quietly(config_path).map(|(config, _)| config.api.socket_path)
}

fn connect(config_path: Option<PathBuf>) -> Result<ControlClient, ExitCode> {
    let path = socket_path(config_path).map_err(|errors| {
        eprint!("{errors}");
        ExitCode::from(1)
    })?;
    ControlClient::connect(&path).map_err(|error| {
        eprintln!("ringside: {error}");
        ExitCode::from(1)
    })
}

/// Sends one call command; prints the call id it acted on.
fn control(config_path: Option<PathBuf>, request: &serde_json::Value) -> ExitCode {
    let mut client = match connect(config_path) {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.request(request) {
        Ok(reply) => {
            if let Some(call) = reply["call"].as_str().filter(|c| !c.is_empty()) {
                println!("{call}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ringside: {error}");
            ExitCode::from(1)
        }
    }
}

/// Prints the stream. When the instance drops this client for falling behind (its output is a
/// slow pipe), it reconnects from where it was, so nothing is lost or printed twice.
fn events(config_path: Option<PathBuf>, mut after: Option<u64>) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    loop {
        let mut client = match connect(config_path.clone()) {
            Ok(client) => client,
            Err(code) => return code,
        };
        let mut resume_after = None;
        let result = client.follow(after, |line| {
            use std::io::Write;
            let closed = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .filter(|v| v["type"] == "stream.closed");
            if let Some(closed) = closed {
                resume_after = closed["resume_after"].as_u64();
                eprintln!(
                    "ringside: {}; resuming",
                    closed["reason"].as_str().unwrap_or("stream closed")
                );
                return false;
            }
            writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .is_ok()
        });
        if let Err(error) = result {
            eprintln!("ringside: {error}");
            return ExitCode::from(1);
        }
        match resume_after {
            Some(seq) => after = Some(seq),
            None => return ExitCode::SUCCESS,
        }
    }
}

fn open_url(config_path: Option<PathBuf>, url: &str) -> ExitCode {
    let target = match ringside::integration::url_handler::parse_call_url(url) {
        Ok(call_url) => call_url.target.to_dial_string(),
        Err(error) => {
            eprintln!("ringside: cannot dial {url:?}: {error}");
            return ExitCode::from(1);
        }
    };
    let request = serde_json::json!({"command": "dial", "to": target, "origin": "url_handler"});
    control(config_path, &request)
}

fn install_url_handlers() -> ExitCode {
    let exec = match std::env::current_exe() {
        Ok(exec) => exec,
        Err(error) => {
            eprintln!("ringside: cannot find this program's path: {error}");
            return ExitCode::from(1);
        }
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let xdg = |var: &str, fallback: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home.as_ref().map(|h| h.join(fallback)))
    };
    let (Some(data_home), Some(config_home)) = (
        xdg("XDG_DATA_HOME", ".local/share"),
        xdg("XDG_CONFIG_HOME", ".config"),
    ) else {
        eprintln!("ringside: no $HOME: cannot tell where desktop entries go");
        return ExitCode::from(1);
    };
    match ringside::integration::url_handler::install_url_handlers(&exec, &data_home, &config_home)
    {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ringside: cannot install the URL handlers: {error}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|error| {
        eprintln!("ringside: bad --log {level:?} ({error}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    // Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

/// The configuration to run with: the given file (which must exist), else the default path if
/// present, else the embedded default.
fn load_config(explicit: Option<PathBuf>) -> Result<Config, String> {
    load_config_quietly(explicit).map(|(config, embedded_because)| {
        if let Some(looked) = embedded_because {
            tracing::info!(
                "no configuration file at {looked}: running on the embedded default (no account, echo test extension)"
            );
        }
        config
    })
}

/// The configuration, and where a file was looked for when the embedded default is used.
fn load_config_quietly(explicit: Option<PathBuf>) -> Result<(Config, Option<String>), String> {
    let load = |path: &PathBuf| {
        ringside_config::load(path)
            .map(|config| (config, None))
            .map_err(|errors| errors.to_string())
    };
    if let Some(path) = explicit {
        return load(&path);
    }
    match ringside_config::default_config_path() {
        Some(path) if path.exists() => load(&path),
        other => {
            let looked = other
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(no $HOME)".into());
            Ok((ringside_config::embedded_default(), Some(looked)))
        }
    }
}

fn run(config_path: Option<PathBuf>, options: RunOptions) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{errors}");
            if !errors.ends_with('\n') {
                eprintln!();
            }
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ringside: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(shell::run(config, options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringside: {error}");
            ExitCode::from(1)
        }
    }
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    let Some(path) = path.or_else(ringside_config::default_config_path) else {
        eprintln!(
            "ringside: no configuration path given and no default ($XDG_CONFIG_HOME or $HOME)"
        );
        return ExitCode::from(1);
    };
    match ringside_config::load(&path) {
        Ok(config) => {
            println!(
                "{}: OK ({} account(s))",
                path.display(),
                config.accounts.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            if !errors.to_string().ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(1)
        }
    }
}

fn status(config_path: Option<PathBuf>, json: bool) -> ExitCode {
    let mut client = match connect(config_path) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let state = match client.request(&serde_json::json!({"command": "state"})) {
        Ok(reply) => reply["state"].clone(),
        Err(error) => {
            eprintln!("ringside: {error}");
            return ExitCode::from(1);
        }
    };
    if json {
        println!("{state:#}");
        return ExitCode::SUCCESS;
    }
    let text = |value: &serde_json::Value| value.as_str().unwrap_or("").to_owned();
    println!(
        "Ringside {} (pid {}) listening on {}; agent {}; events up to seq {}",
        text(&state["instance"]["version"]),
        state["instance"]["pid"],
        state["instance"]["listen"]
            .as_array()
            .map(|l| l.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        text(&state["agent"]["state"]),
        state["seq"]
    );
    let registrations = state["registrations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if registrations.is_empty() {
        println!(
            "no accounts (embedded default: call sip:echo@<listen address> for the echo test)"
        );
    }
    for account in &registrations {
        let mut line = format!(
            "{:<16} {:<13} {}",
            text(&account["account"]),
            text(&account["state"]),
            text(&account["registrar"])
        );
        if let Some(expires) = account["expires_secs"].as_u64() {
            line.push_str(&format!(" (expires {expires} s)"));
        }
        if let Some(code) = account["status_code"].as_u64() {
            line.push_str(&format!(" {code}"));
        }
        let reason = text(&account["reason_phrase"]);
        if !reason.is_empty() {
            line.push_str(&format!(" {reason}"));
        }
        println!("{line}");
    }
    for call in state["calls"].as_array().into_iter().flatten() {
        let remote = call["remote"]["display_name"]
            .as_str()
            .map(|name| format!("{name} <{}>", text(&call["remote"]["uri"])))
            .unwrap_or_else(|| text(&call["remote"]["uri"]));
        println!(
            "call {:<14} {:<9} {:<12} {remote}",
            text(&call["id"]),
            text(&call["direction"]),
            text(&call["state"])
        );
    }
    ExitCode::SUCCESS
}

fn devices() -> ExitCode {
    match ringside_audio::device::list_devices() {
        Ok(devices) if devices.is_empty() => {
            println!("no audio devices found (use \"null\" or \"file:PATH.wav\" in [audio])");
            ExitCode::SUCCESS
        }
        Ok(devices) => {
            for device in devices {
                let mut roles = Vec::new();
                if device.input {
                    roles.push(if device.default_input {
                        "input (default)"
                    } else {
                        "input"
                    });
                }
                if device.output {
                    roles.push(if device.default_output {
                        "output (default)"
                    } else {
                        "output"
                    });
                }
                let rates: Vec<String> =
                    device.sample_rates_hz.iter().map(u32::to_string).collect();
                println!(
                    "{:<32} {:<32} {} Hz",
                    device.name,
                    roles.join(", "),
                    rates.join("/")
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ringside: cannot list audio devices: {error}");
            ExitCode::from(1)
        }
    }
}
