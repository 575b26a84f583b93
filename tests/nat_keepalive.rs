//! NAT keep-alive (RFC 5626 §3.5.1 CRLF) and re-registration when the registrar sees a new
//! source address (RFC 3581 received/rport) (virtual time).
mod common;

use std::time::Duration;

use common::*;
use ringside::core::transport::TransportKind;

#[test]
fn sends_double_crlf_keepalives_while_registered() {
    let mut config = core_config(vec![account(&[REGISTRAR_ADDR], TransportKind::Udp)]);
    config.keepalive = Some(Duration::from_secs(25));
    let registrar = TestRegistrar::new(addr(REGISTRAR_ADDR), RegistrarBehaviour::default());
    let mut scenario = Scenario::new(config, vec![registrar]);
    scenario.run_for(Duration::from_secs(101));

    let pings: Vec<u64> = scenario
        .sent
        .iter()
        .filter(|(_, t)| t.payload == b"\r\n\r\n")
        .map(|(at, t)| {
            assert_eq!(t.destination.addr, addr(REGISTRAR_ADDR));
            (*at - scenario.start).as_secs()
        })
        .collect();
    assert_eq!(pings, [25, 50, 75, 100]);
}

#[test]
fn no_keepalive_when_disabled_or_unregistered() {
    let behaviour = RegistrarBehaviour {
        password: "wrong".into(),
        ..Default::default()
    };
    let mut config = core_config(vec![account(&[REGISTRAR_ADDR], TransportKind::Udp)]);
    config.keepalive = Some(Duration::from_secs(25));
    let mut scenario = Scenario::new(
        config,
        vec![TestRegistrar::new(addr(REGISTRAR_ADDR), behaviour)],
    );
    scenario.run_for(Duration::from_secs(100));
    assert!(!scenario.sent.iter().any(|(_, t)| t.payload == b"\r\n\r\n"));
}

#[test]
fn re_registers_with_the_address_the_registrar_reports() {
    let behaviour = RegistrarBehaviour {
        observed_source: Some(addr("203.0.113.7:40000")),
        ..Default::default()
    };
    let mut scenario = Scenario::with_registrar(behaviour);
    scenario.run_for(Duration::from_secs(1));

    let registers = scenario.sent_registers();
    let last = &registers.last().unwrap().1;
    assert!(
        header_of(last, "Contact")
            .unwrap()
            .contains("sip:1001@203.0.113.7:40000"),
        "{:?}",
        header_of(last, "Contact")
    );
    match &scenario.events.last().unwrap().1 {
        ringside::events::Event::RegistrationRegistered { contact, .. } => {
            assert_eq!(contact, "sip:1001@203.0.113.7:40000");
        }
        other => panic!("unexpected {other:?}"),
    }
    // The NAT mapping changes later: the next refresh learns it and registers it at once.
    scenario.registrars[0].behaviour.observed_source = Some(addr("203.0.113.7:40001"));
    scenario.run_for(Duration::from_secs(600));
    let bindings: Vec<&String> = scenario.registrars[0].bindings.keys().collect();
    assert!(
        bindings.iter().any(|b| b.contains("203.0.113.7:40001")),
        "{bindings:?}"
    );
}
