//! Clean shutdown removes the binding with Expires: 0 (virtual time).
mod common;

use std::time::Duration;

use common::*;
use ringside::core::{Command, CommandError};

#[test]
fn shutdown_unregisters_and_then_reports_done() {
    let mut scenario = Scenario::with_registrar(RegistrarBehaviour::default());
    scenario.run_for(Duration::from_secs(1));
    assert_eq!(scenario.registrars[0].bindings.len(), 1);

    scenario
        .core
        .handle_command(scenario.now, Command::Shutdown)
        .unwrap();
    assert!(!scenario.core.is_shut_down(), "waits for the registrar");
    scenario.exchange();

    assert!(scenario.core.is_shut_down());
    assert!(scenario.registrars[0].bindings.is_empty());
    let last = scenario.sent_registers().pop().unwrap().1;
    assert_eq!(header_of(&last, "Expires"), Some("0"));
    assert!(header_of(&last, "Contact").unwrap().ends_with(";expires=0"));
    assert!(
        header_of(&last, "Authorization").is_some(),
        "credentials reused: no extra round trip"
    );
    assert_eq!(
        scenario.event_types().last(),
        Some(&"registration.unregistered")
    );
    assert_eq!(
        scenario.core.handle_command(
            scenario.now,
            Command::Register {
                account: "office".into()
            }
        ),
        Err(CommandError::ShuttingDown)
    );
}

#[test]
fn shutdown_completes_even_if_the_registrar_went_silent() {
    let mut scenario = Scenario::with_registrar(RegistrarBehaviour::default());
    scenario.run_for(Duration::from_secs(1));
    scenario.registrars[0].behaviour.silent = true;
    scenario
        .core
        .handle_command(scenario.now, Command::Shutdown)
        .unwrap();
    scenario.run_for(Duration::from_secs(33));
    assert!(scenario.core.is_shut_down());
}

#[test]
fn shutdown_with_nothing_registered_is_immediate() {
    let behaviour = RegistrarBehaviour {
        password: "wrong".into(),
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));
    let sent_before = scenario.sent.len();
    scenario
        .core
        .handle_command(scenario.now, Command::Shutdown)
        .unwrap();
    scenario.exchange();
    assert!(scenario.core.is_shut_down());
    assert_eq!(
        scenario.sent.len(),
        sent_before,
        "nothing to remove, nothing sent"
    );
}

#[test]
fn unknown_account_is_a_caller_error() {
    let mut scenario = Scenario::with_registrar(RegistrarBehaviour::default());
    let result = scenario.core.handle_command(
        scenario.now,
        Command::Unregister {
            account: "nope".into(),
        },
    );
    assert_eq!(result, Err(CommandError::UnknownAccount("nope".into())));
}
