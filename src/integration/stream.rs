//! Following the event stream, the same way on every transport (WebSocket, Unix socket).
//!
//! Why this order: subscribe to live events first, then catch up (replay from the log, or a
//! snapshot), then forward live events skipping what the catch-up already covered. Anything
//! published between the two steps is in the live queue, so there is no gap and no duplicate.
//!
//! ```text
//!   subscribe ─► after given?  ─yes─► replay pages from the log ─┐ (gap too old → snapshot)
//!                     └─no──► snapshot (seq = S) ────────────────┤
//!                                                               ▼
//!                               live events with seq > last sent, until the client goes
//! ```

use tokio::sync::broadcast;

use super::hub::HubClient;

/// Events replayed per round trip to the log.
const REPLAY_PAGE: usize = 500;

/// Where stream lines go. `false` means the client is gone.
pub(crate) trait LineSink {
    async fn send_line(&mut self, line: &str) -> bool;

    /// A keep-alive when nothing happened for a while (a WebSocket ping); `false`: client gone.
    async fn heartbeat(&mut self) -> bool {
        true
    }
}

/// Quiet time after which a heartbeat goes out.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// Streams to `sink` until the client goes, the hub stops, or the client falls too far behind
/// (then a `stream.closed` line says why and where to resume).
pub(crate) async fn follow(sink: &mut impl LineSink, hub: &HubClient, after: Option<u64>) {
    let mut live = hub.subscribe();
    let Some(mut sent) = catch_up(sink, hub, after).await else {
        return;
    };
    loop {
        let received = match tokio::time::timeout(HEARTBEAT, live.recv()).await {
            Ok(received) => received,
            Err(_) => {
                if sink.heartbeat().await {
                    continue;
                }
                return;
            }
        };
        match received {
            Ok(event) if event.seq <= sent => {}
            Ok(event) => {
                if !sink.send_line(&event.json).await {
                    return;
                }
                sent = event.seq;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let closed = serde_json::json!({
                    "type": "stream.closed",
                    "reason": format!("client too slow: {missed} events behind; reconnect with after={sent}"),
                    "resume_after": sent,
                });
                sink.send_line(&closed.to_string()).await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends what a client needs to be current: the events after `after` from the log, or a
/// snapshot when it gave no `after` or the log no longer covers it. Returns the last seq sent.
pub(crate) async fn catch_up(
    sink: &mut impl LineSink,
    hub: &HubClient,
    after: Option<u64>,
) -> Option<u64> {
    let Some(mut cursor) = after else {
        return send_snapshot(sink, hub).await;
    };
    loop {
        let batch = match hub.replay(cursor, REPLAY_PAGE).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "event stream: replay failed; sending a snapshot");
                return send_snapshot(sink, hub).await;
            }
        };
        if batch.gap {
            return send_snapshot(sink, hub).await;
        }
        let done = batch.events.len() < REPLAY_PAGE;
        for event in &batch.events {
            if !sink.send_line(&event.json).await {
                return None;
            }
            cursor = event.seq;
        }
        if done {
            return Some(cursor);
        }
    }
}

async fn send_snapshot(sink: &mut impl LineSink, hub: &HubClient) -> Option<u64> {
    let snapshot = hub.snapshot();
    sink.send_line(&snapshot.to_json())
        .await
        .then_some(snapshot.seq)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::Value;
    use tokio::sync::{mpsc, oneshot};

    use super::*;
    use crate::events::Event;
    use crate::integration::hub::{self, HubSettings};
    use crate::integration::state::InstanceInfo;

    /// A client: every line it is sent goes to `lines`. It can stall before its `n`th line
    /// until released (a client that stops reading), or hang up after `n` lines.
    struct FakeClient {
        lines: mpsc::UnboundedSender<String>,
        sent: usize,
        stall_before: Option<(usize, oneshot::Receiver<()>)>,
        hang_up_after: Option<usize>,
    }

    impl FakeClient {
        fn new() -> (Self, mpsc::UnboundedReceiver<String>) {
            let (lines, received) = mpsc::unbounded_channel();
            let client = Self {
                lines,
                sent: 0,
                stall_before: None,
                hang_up_after: None,
            };
            (client, received)
        }
    }

    impl LineSink for FakeClient {
        async fn send_line(&mut self, line: &str) -> bool {
            if self.hang_up_after.is_some_and(|n| self.sent >= n) {
                return false;
            }
            if self
                .stall_before
                .as_ref()
                .is_some_and(|(n, _)| *n == self.sent)
                && let Some((_, release)) = self.stall_before.take()
            {
                let _ = release.await;
            }
            self.sent += 1;
            self.lines.send(line.to_owned()).is_ok()
        }
    }

    fn start_hub(
        database: &std::path::Path,
        accounts: usize,
    ) -> (HubClient, std::thread::JoinHandle<()>) {
        let settings = HubSettings {
            database: database.to_owned(),
            retain_events: 100_000,
            accounts: (0..accounts).map(|i| format!("account-{i}")).collect(),
            action_urls: Vec::new(),
            instance: InstanceInfo {
                started_at: hub::rfc3339_ms(crate::integration::wall_clock()),
                ..InstanceInfo::default()
            },
        };
        hub::start(settings, None).unwrap()
    }

    fn event(i: u64) -> Event {
        Event::RegistrationRegistering {
            account: "office".into(),
            registrar: format!("sip:registrar-{i}.test"),
        }
    }

    /// Hands `event` to the hub, retrying while its queue is full.
    fn publish(hub: &HubClient, event: Event) {
        let mut event = Box::new(event);
        while let Err(back) = hub.try_publish(event) {
            event = back;
            std::thread::yield_now();
        }
    }

    fn json(line: &str) -> Value {
        serde_json::from_str(line).unwrap()
    }

    async fn next(lines: &mut mpsc::UnboundedReceiver<String>) -> Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.recv())
            .await
            .expect("no line in time")
            .expect("the stream ended");
        json(&line)
    }

    #[tokio::test]
    async fn a_client_too_far_behind_gets_stream_closed_and_resumes_without_loss_while_others_continue()
     {
        let dir = tempfile::tempdir().unwrap();
        let (hub, _thread) = start_hub(&dir.path().join("events.db"), 0);

        let (mut fast, mut fast_lines) = FakeClient::new();
        let (mut slow, mut slow_lines) = FakeClient::new();
        let (release, stalled) = oneshot::channel();
        // The slow client takes the snapshot, then stops reading at its first event.
        slow.stall_before = Some((1, stalled));
        let fast_task = {
            let hub = hub.clone();
            tokio::spawn(async move { follow(&mut fast, &hub, None).await })
        };
        let slow_task = {
            let hub = hub.clone();
            tokio::spawn(async move { follow(&mut slow, &hub, None).await })
        };
        assert_eq!(next(&mut fast_lines).await["type"], "state.snapshot");
        assert_eq!(next(&mut slow_lines).await["type"], "state.snapshot");

        // More than the 1024 live events a client may fall behind, in batches the fast client
        // keeps up with.
        let total = 1500u64;
        for batch in 0..total / 100 {
            for i in 1..=100 {
                publish(&hub, event(batch * 100 + i));
            }
            for i in 1..=100 {
                assert_eq!(next(&mut fast_lines).await["seq"], batch * 100 + i);
            }
        }
        // The fast client got everything while the slow one was stalled: nobody waited for it.
        assert!(!slow_task.is_finished());

        release.send(()).unwrap();
        slow_task.await.unwrap();
        let delivered = next(&mut slow_lines).await;
        assert_eq!(delivered["seq"], 1, "the event it was stuck on");
        let closed = next(&mut slow_lines).await;
        assert_eq!(closed["type"], "stream.closed", "{closed}");
        assert_eq!(closed["resume_after"], 1, "{closed}");
        assert!(
            closed["reason"]
                .as_str()
                .is_some_and(|r| r.contains("too slow") && r.contains("after=1")),
            "{closed}"
        );
        assert!(
            slow_lines.recv().await.is_none(),
            "nothing after stream.closed"
        );

        // Reconnecting with `after=resume_after` loses nothing and repeats nothing.
        let (mut resumed, mut resumed_lines) = FakeClient::new();
        let resumed_task = {
            let hub = hub.clone();
            tokio::spawn(async move { follow(&mut resumed, &hub, Some(1)).await })
        };
        for seq in 2..=total {
            assert_eq!(next(&mut resumed_lines).await["seq"], seq);
        }
        publish(&hub, event(total + 1));
        assert_eq!(next(&mut resumed_lines).await["seq"], total + 1);
        assert_eq!(next(&mut fast_lines).await["seq"], total + 1);
        assert!(!fast_task.is_finished() && !resumed_task.is_finished());
        fast_task.abort();
        resumed_task.abort();
    }

    /// A client that takes the snapshot while events are being published must get, as its
    /// first live event, the one right after the snapshot's `seq`. Many accounts make the
    /// snapshot costlier to build, which widens any window between publishing an event and
    /// updating the snapshot.
    #[tokio::test]
    async fn a_snapshot_taken_while_events_flow_is_followed_by_the_very_next_event() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, _thread) = start_hub(&dir.path().join("events.db"), 300);
        let stop = Arc::new(AtomicBool::new(false));
        // A publisher on its own thread, as the engine is (the test runtime has one thread).
        #[allow(clippy::disallowed_methods)]
        let publisher = {
            let hub = hub.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    publish(&hub, event(i));
                }
            })
        };
        const CLIENTS: usize = 500;
        let mut failures = Vec::new();
        for _ in 0..CLIENTS {
            let (mut client, mut lines) = FakeClient::new();
            client.hang_up_after = Some(2);
            follow(&mut client, &hub, None).await;
            let snapshot = next(&mut lines).await;
            let first = next(&mut lines).await;
            let (snapshot_seq, first_seq) = (
                snapshot["seq"].as_u64().unwrap(),
                first["seq"].as_u64().unwrap(),
            );
            if first_seq != snapshot_seq + 1 {
                failures.push((snapshot_seq, first_seq));
            }
        }
        stop.store(true, Ordering::Relaxed);
        publisher.join().unwrap();
        assert!(
            failures.is_empty(),
            "{} of {CLIENTS} clients lost events between the snapshot and the live stream; \
             (snapshot seq, first event seq) of the first: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
    }

    #[tokio::test]
    async fn after_a_restart_the_snapshot_and_the_next_event_continue_the_logged_seq() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("events.db");
        let (hub, thread) = start_hub(&database, 1);
        for i in 1..=5 {
            publish(&hub, event(i));
        }
        hub.flush().await;
        drop(hub);
        thread.join().unwrap();

        let (hub, _thread) = start_hub(&database, 1);
        let snapshot = hub.snapshot();
        assert_eq!(snapshot.seq, 5, "the snapshot includes the logged events");
        let (mut client, mut lines) = FakeClient::new();
        let task = {
            let hub = hub.clone();
            tokio::spawn(async move { follow(&mut client, &hub, None).await })
        };
        let first = next(&mut lines).await;
        assert_eq!(first["type"], "state.snapshot");
        assert_eq!(first["seq"], 5);
        assert!(
            time::OffsetDateTime::parse(
                first["ts"].as_str().unwrap_or_default(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok(),
            "snapshot ts: {first}"
        );
        publish(&hub, event(6));
        assert_eq!(next(&mut lines).await["seq"], 6);
        task.abort();
    }
}
