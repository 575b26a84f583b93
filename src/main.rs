//! `ringside`: see `ringside --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringside::cli::{Cli, CliCommand};
use ringside::shell::{self, RunOptions};
use ringside_config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Some(CliCommand::Status { json }) => status(json),
        Some(CliCommand::Devices) => devices(),
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
    if let Some(path) = explicit {
        return ringside_config::load(&path).map_err(|errors| errors.to_string());
    }
    match ringside_config::default_config_path() {
        Some(path) if path.exists() => {
            ringside_config::load(&path).map_err(|errors| errors.to_string())
        }
        other => {
            let looked = other
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(no $HOME)".into());
            tracing::info!(
                "no configuration file at {looked}: running on the embedded default (no account, echo test extension)"
            );
            Ok(ringside_config::embedded_default())
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

fn status(json: bool) -> ExitCode {
    let report = match shell::read_status() {
        Ok(report) => report,
        Err(error) => {
            eprintln!("ringside: {error}");
            return ExitCode::from(1);
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("ringside: {error}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "Ringside {} (pid {}) listening on {}",
        report.version,
        report.pid,
        report.listen.join(", ")
    );
    if report.accounts.is_empty() {
        println!(
            "no accounts (embedded default: call sip:echo@<listen address> for the echo test)"
        );
    }
    for account in &report.accounts {
        let field = |name: &str| {
            account
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let mut line = format!(
            "{:<16} {:<13} {}",
            field("name"),
            field("state"),
            field("registrar")
        );
        if let Some(expires) = account
            .get("expires_secs")
            .and_then(serde_json::Value::as_u64)
        {
            line.push_str(&format!(" (expires {expires} s)"));
        }
        if let Some(code) = account
            .get("status_code")
            .and_then(serde_json::Value::as_u64)
        {
            line.push_str(&format!(" {code}"));
        }
        let reason = field("reason");
        if !reason.is_empty() {
            line.push_str(&format!(" {reason}"));
        }
        println!("{line}");
    }
    for call in &report.calls {
        let text = |value: &serde_json::Value| value.as_str().unwrap_or("").to_owned();
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
