//! Transition → first action-URL attempt: from the `send_to` of an INVITE to the moment a local
//! HTTP receiver gets the `call.incoming` request (goal: p99 ≤ 50 ms).
//!
//! The release binary runs with one `[[action_url]]` on `call.incoming` (GET, loopback receiver,
//! default `--log info`, the event log and outbox in SQLite as usual). The bench sends INVITEs
//! from a UDP socket straight to Ringside, one at a time, each with a fresh Call-ID; when the
//! receiver has the request, it CANCELs the call and waits for the 487 (ACKed) before the next.
//! What is timed therefore covers SIP parsing, the call layer, the hub (stamp, encode, one SQLite
//! transaction for the event and its delivery, the log line), the outbox's wake-up and store
//! look-up, and the HTTP request up to the receiver's handler.
//!
//! Run: `cargo bench --bench action_url_latency` (`RINGSIDE_BENCH_CALLS` sets N, default 300,
//! after 20 unmeasured warm-up calls; `RINGSIDE_BENCH_DB` puts the event log elsewhere, e.g. on
//! tmpfs; `RINGSIDE_BENCH_BIN` runs another build of `ringside`, to compare).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use support::ringside::RingsideHome;
use support::sip_caller::SipCaller;

const BIN: &str = env!("CARGO_BIN_EXE_ringside");
const WARM_UP: usize = 20;

/// A receiver that reports `(cid, arrival time)` for every request, on its own thread.
fn start_receiver() -> (SocketAddr, mpsc::Receiver<(String, Instant)>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (hits_tx, hits_rx) = mpsc::channel::<(String, Instant)>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let router = Router::new()
                .fallback(
                    |State(hits): State<mpsc::Sender<(String, Instant)>>,
                     Query(query): Query<std::collections::HashMap<String, String>>| async move {
                        let at = Instant::now();
                        let cid = query.get("cid").cloned().unwrap_or_default();
                        let _ = hits.send((cid, at));
                        StatusCode::NO_CONTENT
                    },
                )
                .with_state(hits_tx);
            axum::serve(listener, router).await.unwrap();
        });
    });
    (addr_rx.recv().unwrap(), hits_rx)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then only check that
    // one call goes through.
    let benching = std::env::args().any(|a| a == "--bench");
    let calls: usize = if benching {
        std::env::var("RINGSIDE_BENCH_CALLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300)
    } else {
        1
    };
    let (receiver, hits) = start_receiver();
    // RINGSIDE_BENCH_DB: where the event log goes (default: the private home's state dir).
    let database = std::env::var("RINGSIDE_BENCH_DB")
        .map(|path| format!("[events]\ndatabase = \"{path}\"\n\n"))
        .unwrap_or_default();
    let home = RingsideHome::new().unwrap();
    std::fs::create_dir_all(home.path().join("config/ringside")).unwrap();
    home.write_file(
        "config/ringside/config.toml",
        &format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n\n[sip]\nlisten = [\"udp:127.0.0.1:0\"]\n\n\
[audio]\ncapture = \"null\"\nplayback = \"null\"\n\n\
{database}[[action_url]]\nname = \"crm\"\non = [\"call.incoming\"]\nurl = \"http://{receiver}/incoming?cid=$call_id\"\n"
        ),
    )
    .unwrap();
    // RINGSIDE_BENCH_BIN: another build to compare (default: this one's release binary).
    let bin = std::env::var("RINGSIDE_BENCH_BIN").unwrap_or_else(|_| BIN.to_owned());
    let ringside = home.spawn(Path::new(&bin), &["run"], &[]).unwrap();
    let sip: SocketAddr =
        support::poll_until(Duration::from_secs(20), Duration::from_millis(20), || {
            let status = ringside.status_json().ok()?;
            status["instance"]["listen"][0]
                .as_str()?
                .strip_prefix("udp:")?
                .parse()
                .ok()
        })
        .expect("ringside is up");
    let caller = SipCaller::new(sip, "agent").unwrap();
    let load_before = support::load_average();

    let mut samples = Vec::with_capacity(calls);
    for i in 0..WARM_UP.min(calls) + calls {
        let call_id = format!("bench-{i}-{}", std::process::id());
        let invite = caller.invite(&call_id, "1002", None, &[]).unwrap();
        let arrived = loop {
            let (cid, at) = hits
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    ringside.dump_output();
                    panic!("no action-URL request for {call_id}")
                });
            if cid == call_id {
                break at;
            }
        };
        if i >= WARM_UP.min(calls) {
            samples.push(arrived.duration_since(invite.sent_at));
        }
        caller.cancel(&invite).unwrap();
        support::poll_until(Duration::from_secs(10), Duration::from_millis(1), || {
            caller.responses(&call_id).contains(&487).then_some(())
        })
        .unwrap_or_else(|| panic!("no 487 for {call_id}"));
    }

    // Where the slow ones fall (periodic outliers point at something periodic, e.g. a WAL
    // checkpoint; scattered ones at scheduling).
    let slow: Vec<String> = samples
        .iter()
        .enumerate()
        .filter(|(_, d)| **d > Duration::from_millis(2))
        .map(|(i, d)| format!("#{i} {}", ms(*d)))
        .collect();
    eprintln!(
        "over 2 ms: {} of {}: {}",
        slow.len(),
        samples.len(),
        slow.join(", ")
    );
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(samples.len()).unwrap();
    eprintln!(
        "INVITE send_to → action-URL request at the receiver (call.incoming, GET, loopback), \
         N = {}: p50 {}, p90 {}, p99 {}, max {}, mean {}; min {}; load average before {load_before}, \
         after {}",
        samples.len(),
        ms(support::percentile(&samples, 50.0)),
        ms(support::percentile(&samples, 90.0)),
        ms(support::percentile(&samples, 99.0)),
        ms(*samples.last().unwrap()),
        ms(mean),
        ms(samples[0]),
        support::load_average(),
    );
}
