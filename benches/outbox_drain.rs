//! Outbox drain rate: 10 000 queued deliveries to a loopback receiver answering 204.
//!
//! Each iteration queues 10 000 events (one POST each, spread over 100 calls, so up to four
//! requests are in flight) into a fresh store, then times a new outbox from start until the
//! last delivery is recorded as delivered. The receiver (axum) runs on its own thread and
//! runtime, the outbox on a current-thread runtime as in the app. A second benchmark times the
//! hub's side: appending the same 10 000 events, one transaction each.
//!
//! Run: `cargo bench --bench outbox_drain -- --sample-size 10`; criterion reports elements/s,
//! one element = one delivery (or one appended event).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ringside::integration::outbox::{
    EndpointSettings, OutboxSettings, spawn_outbox, wall_clock_ms,
};
use ringside::integration::store::{NewDelivery, NewEvent, Store};

const EVENTS: u64 = 10_000;
const CALLS: u64 = 100;

/// A receiver answering 204 to everything, on its own thread.
fn start_receiver() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let router = Router::new().fallback(|| async { StatusCode::NO_CONTENT });
            axum::serve(listener, router).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn queue(db: &Path, url: &str) -> Store {
    let mut store = Store::open(db).unwrap();
    for seq in 1..=EVENTS {
        let id = format!("evt-{seq:06}");
        let call = format!("call-{}", seq % CALLS);
        let body = format!(
            r#"{{"v":1,"seq":{seq},"id":"{id}","type":"call.dtmf","call":{{"id":"{call}"}}}}"#
        );
        let delivery = NewDelivery {
            endpoint: "crm".to_owned(),
            call_key: Some(call.clone()),
            event_id: id.clone(),
            method: "POST".to_owned(),
            url: url.to_owned(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: Some(body.clone()),
        };
        store
            .append(
                &NewEvent {
                    seq,
                    id: &id,
                    ts: "2026-01-01T00:00:00Z",
                    event_type: "call.dtmf",
                    call_id: Some(&call),
                    json: &body,
                },
                &[delivery],
                wall_clock_ms(),
            )
            .unwrap();
    }
    store
}

fn settings() -> EndpointSettings {
    EndpointSettings {
        secrets: vec![b"bench secret".to_vec()],
        ..EndpointSettings::new("crm")
    }
}

fn bench(c: &mut Criterion) {
    let addr = start_receiver();
    let url = format!("http://{addr}/hook");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("outbox");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(EVENTS));
    group.measurement_time(Duration::from_secs(20));

    group.bench_function("drain_10k_deliveries_to_204", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let dir = tempfile::tempdir().unwrap();
                let db = dir.path().join("ringside.db");
                drop(queue(&db, &url));
                total += runtime.block_on(async {
                    let started = Instant::now();
                    let outbox = spawn_outbox(OutboxSettings {
                        db_path: db.clone(),
                        endpoints: vec![settings()],
                    })
                    .unwrap();
                    let mut status = outbox.status();
                    loop {
                        if status.borrow_and_update().endpoints["crm"].delivered == EVENTS {
                            break;
                        }
                        status.changed().await.unwrap();
                    }
                    let elapsed = started.elapsed();
                    outbox.shutdown().await;
                    elapsed
                });
            }
            total
        });
    });

    group.bench_function("append_10k_events", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let dir = tempfile::tempdir().unwrap();
                let db = dir.path().join("ringside.db");
                let started = Instant::now();
                drop(queue(&db, &url));
                total += started.elapsed();
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
