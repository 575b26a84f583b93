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
