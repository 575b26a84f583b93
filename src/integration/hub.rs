//! The hub: the one place where an engine event becomes a published, persisted envelope.
//!
//! Why one owner: `seq` must be gap-free and never reused, every transport must see the same
//! bytes in the same order, and an action-URL delivery must be stored in the same transaction as
//! its event (a crash between the two would lose it). So a single thread owns the SQLite
//! connection, stamps each event (`seq`, `id`, `ts`, call times), encodes it once, stores it
//! with the deliveries it triggers, and only then publishes it. SQLite is blocking, so the hub is
//! a plain thread: the engine hands it events with a non-blocking `try_send` and never waits on
//! the disk.
//!
//! ```text
//!   engine ──Event──► hub thread ──append (event + deliveries, one transaction)──► SQLite
//!                        │  ├──► broadcast<Published> ──► WebSocket / Unix socket / long-poll
//!                        │  ├──► watch<Snapshot>      ──► GET /v1/state, new subscribers
//!                        │  └──► outbox.wake()        ──► action-URL delivery tasks
//!   clients ──Replay{after}──► hub ──► events from the log (resync after a disconnect)
//! ```

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::outbox::{OutboxWaker, redacted_url};
use super::state::{InstanceInfo, Snapshot, StateModel, interrupted};
use super::store::{DeadLetter, NewDelivery, NewEvent, Store, StoreError};
use super::template;
use crate::events::{self, CallInfo, Envelope, Event};

/// Queue depth between the engine and the hub (events are tens per call, so this is slack for
/// a disk stall, not a steady state).
const REQUEST_CAPACITY: usize = 4096;
/// Live events buffered per subscriber; a client further behind is dropped with a reason and
/// resumes with `after`.
const BROADCAST_CAPACITY: usize = 1024;
/// How often (in events) the log is pruned to `retain_events`.
const PRUNE_EVERY: u64 = 1000;
/// How often (in events) the checkpoint thread is nudged. An event with a delivery adds about
/// 8 WAL pages, so this keeps the WAL well under SQLite's automatic checkpoint (1000 pages),
/// which would otherwise run, with its fsync, inside some append on the hub's thread.
const CHECKPOINT_EVERY: u64 = 32;

/// An event as sent to clients: its `seq` and its one JSON encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub seq: u64,
    pub event_type: String,
    pub json: String,
}

/// One action-URL endpoint, as the hub needs it to queue deliveries.
#[derive(Debug, Clone)]
pub struct ActionTarget {
    pub name: String,
    /// Event types it wants; empty means every event.
    pub on: Vec<String>,
    pub url: ringside_config::UrlTemplate,
    /// POST the JSON event (else GET with an empty body).
    pub post: bool,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct HubSettings {
    pub database: PathBuf,
    pub retain_events: u64,
    pub accounts: Vec<String>,
    pub action_urls: Vec<ActionTarget>,
    pub instance: InstanceInfo,
}

/// Why the hub could not start (the user's to fix).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("event log {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("cannot start the event hub thread: {0}")]
    Thread(std::io::Error),
}

/// What a client asks the hub for.
#[derive(Debug)]
pub enum HubRequest {
    /// Publish an engine event (boxed: events are large and rare, replies small and frequent).
    Event(Box<Event>),
    /// Events after `after` from the log (at most `limit`).
    Replay {
        after: u64,
        limit: usize,
        reply: oneshot::Sender<Result<ReplayBatch, String>>,
    },
    /// Answered once every request before it is done (used at shutdown).
    Flush { reply: oneshot::Sender<()> },
    /// The newest dead letters (deliveries given up on).
    DeadLetters {
        limit: usize,
        reply: oneshot::Sender<Result<Vec<DeadLetterView>, String>>,
    },
}

/// A dead letter as the API shows it: no header values, body or URL query (they may hold
/// tokens).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetterView {
    pub endpoint: String,
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    pub method: String,
    /// `scheme://host[:port]/path` only.
    pub url: String,
    pub attempts: u32,
    pub reason: String,
    pub dead_at: String,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(dead: DeadLetter) -> Self {
        Self {
            endpoint: dead.delivery.endpoint,
            event_id: dead.delivery.event_id,
            call: dead.delivery.call_key,
            method: dead.delivery.method,
            url: redacted_url(&dead.delivery.url),
            attempts: dead.delivery.attempts,
            reason: dead.reason,
            dead_at: rfc3339_ms(UNIX_EPOCH + std::time::Duration::from_millis(dead.dead_at_ms)),
        }
    }
}

/// An answer to [`HubRequest::Replay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayBatch {
    pub events: Vec<Published>,
    /// The log no longer holds every event after `after` (pruned, or `after` is from another
    /// log): the client must start over from a snapshot.
    pub gap: bool,
    /// The highest `seq` published so far.
    pub last_seq: u64,
}

/// How front ends reach the hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HubClient {
    requests: mpsc::Sender<HubRequest>,
    published: broadcast::Sender<Arc<Published>>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
}

impl HubClient {
    /// Live events from now on (subscribe before asking for a snapshot or a replay, then skip
    /// what has `seq` at or below what those gave).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.published.subscribe()
    }

    /// The current state.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.borrow())
    }

    /// A receiver that changes with every event (for long-polls that wait for news).
    pub fn snapshot_watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// Events after `after` from the persisted log.
    pub async fn replay(&self, after: u64, limit: usize) -> Result<ReplayBatch, String> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(HubRequest::Replay {
                after,
                limit,
                reply,
            })
            .await
            .map_err(|_| "the event hub has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the event hub has stopped".to_owned())?
    }

    /// The newest dead letters.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterView>, String> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(HubRequest::DeadLetters { limit, reply })
            .await
            .map_err(|_| "the event hub has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the event hub has stopped".to_owned())?
    }

    /// Waits until the hub has stored and published everything handed to it so far.
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .requests
            .send(HubRequest::Flush { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Hands an engine event to the hub without waiting. Gives the event back when the queue
    /// is full, so the caller can keep it and retry (nothing is dropped).
    pub fn try_publish(&self, event: Box<Event>) -> Result<(), Box<Event>> {
        match self.requests.try_send(HubRequest::Event(event)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(HubRequest::Event(event)))
            | Err(mpsc::error::TrySendError::Closed(HubRequest::Event(event))) => Err(event),
            Err(_) => Ok(()),
        }
    }
}

/// Opens the log, closes the calls a previous run left open (`call.ended`, `interrupted`), and
/// starts the hub thread. Returns when the interrupted calls are published.
pub fn start(
    settings: HubSettings,
    outbox: Option<OutboxWaker>,
) -> Result<(HubClient, std::thread::JoinHandle<()>), HubError> {
    let store_error = |source| HubError::Store {
        path: settings.database.display().to_string(),
        source,
    };
    let store = Store::open(&settings.database).map_err(store_error)?;
    // Checkpoints (which sync the database file) run on their own thread, never in an append:
    // publishing an event waits for nothing but its commit.
    store
        .set_automatic_checkpoints(false)
        .map_err(store_error)?;
    let checkpoints = start_checkpoints(&settings.database).map_err(store_error)?;
    let last_seq = store.last_seq().map_err(store_error)?;
    let left_open = store.open_calls().map_err(store_error)?;
    let (requests, receiver) = mpsc::channel(REQUEST_CAPACITY);
    let (published, _) = broadcast::channel(BROADCAST_CAPACITY);
    // The state includes every logged event: a snapshot at seq 0 after a restart would send
    // clients back to replay the whole log on top of it.
    let model = StateModel::new(settings.instance, settings.accounts.iter().cloned())
        .resumed_after(last_seq);
    let (snapshot_tx, snapshot) = watch::channel(Arc::new(model.snapshot()));
    let mut hub = Hub {
        store,
        last_seq,
        model,
        published: published.clone(),
        snapshot: snapshot_tx,
        outbox,
        action_urls: settings.action_urls,
        retain_events: settings.retain_events,
        rng: StdRng::from_seed(seed()),
        checkpoints,
    };
    for stored in left_open {
        match serde_json::from_str::<serde_json::Value>(&stored.json)
            .ok()
            .and_then(|json| serde_json::from_value::<CallInfo>(json["call"].clone()).ok())
        {
            Some(call) => {
                tracing::warn!(call = %call.id, "call left open by the previous run: ending it as interrupted");
                hub.publish(interrupted(call));
            }
            None => tracing::warn!(
                seq = stored.seq,
                "unreadable open call in the event log: skipped"
            ),
        }
    }
    let thread = std::thread::Builder::new()
        .name("ringside-hub".into())
        .spawn(move || hub.run(receiver))
        .map_err(HubError::Thread)?;
    Ok((
        HubClient {
            requests,
            published,
            snapshot,
        },
        thread,
    ))
}

struct Hub {
    store: Store,
    last_seq: u64,
    model: StateModel,
    published: broadcast::Sender<Arc<Published>>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    outbox: Option<OutboxWaker>,
    action_urls: Vec<ActionTarget>,
    retain_events: u64,
    rng: StdRng,
    /// Nudges the checkpoint thread (see [`start_checkpoints`]).
    checkpoints: std::sync::mpsc::SyncSender<()>,
}

/// The thread that checkpoints the WAL, on its own connection, when the hub nudges it. It ends
/// when the hub is gone.
fn start_checkpoints(
    database: &std::path::Path,
) -> Result<std::sync::mpsc::SyncSender<()>, StoreError> {
    let store = Store::open(database)?;
    let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("ringside-checkpoint".into())
        .spawn(move || {
            while nudged.recv().is_ok() {
                if let Err(error) = store.checkpoint() {
                    tracing::warn!(%error, "event log: checkpoint failed");
                }
            }
        })
        .map_err(|error| StoreError::Io {
            path: database.to_owned(),
            source: error,
        })?;
    Ok(nudge)
}

impl Hub {
    fn run(mut self, mut receiver: mpsc::Receiver<HubRequest>) {
        while let Some(request) = receiver.blocking_recv() {
            match request {
                HubRequest::Event(event) => self.publish(*event),
                HubRequest::Replay {
                    after,
                    limit,
                    reply,
                } => {
                    let _ = reply.send(self.replay(after, limit));
                }
                HubRequest::Flush { reply } => {
                    let _ = reply.send(());
                }
                HubRequest::DeadLetters { limit, reply } => {
                    let dead = self
                        .store
                        .dead_letters(limit)
                        .map(|letters| letters.into_iter().map(DeadLetterView::from).collect())
                        .map_err(|error| format!("event log: {error}"));
                    let _ = reply.send(dead);
                }
            }
        }
    }

    fn publish(&mut self, mut event: Event) {
        let now = super::wall_clock();
        let ts = rfc3339_ms(now);
        self.model.stamp(&mut event, &ts);
        let seq = self.last_seq + 1;
        let envelope = Envelope {
            seq,
            id: self.event_id(),
            ts,
            event,
        };
        let json = events::to_json(&envelope);
        let deliveries = self.deliveries(&envelope, &json);
        let record = NewEvent {
            seq,
            id: &envelope.id,
            ts: &envelope.ts,
            event_type: envelope.event.type_name(),
            call_id: envelope.event.call().map(|call| call.id.as_str()),
            json: &json,
        };
        if let Err(error) = self.store.append(&record, &deliveries, unix_ms(now)) {
            // Live clients still get it; the log (replay, action URLs) misses it. Say so loudly.
            tracing::error!(seq, %error, "event log: cannot store an event; replay and action URLs will miss it");
        }
        self.last_seq = seq;
        self.model.apply(&envelope);
        tracing::info!(target: "ringside::event", "{json}");
        // The snapshot first, then the broadcast: a client subscribes, then reads the snapshot.
        // Had it subscribed after this broadcast yet read the snapshot from before it, the
        // event would be in neither (lost between the snapshot and the live stream).
        self.snapshot.send_replace(Arc::new(self.model.snapshot()));
        let _ = self.published.send(Arc::new(Published {
            seq,
            event_type: envelope.event.type_name().to_owned(),
            json,
        }));
        if let Some(outbox) = &self.outbox {
            for delivery in &deliveries {
                outbox.wake(&delivery.endpoint);
            }
        }
        if seq.is_multiple_of(CHECKPOINT_EVERY) {
            // Full: one is still queued, which will cover this too.
            let _ = self.checkpoints.try_send(());
        }
        if seq.is_multiple_of(PRUNE_EVERY)
            && let Err(error) = self.store.prune(self.retain_events)
        {
            tracing::warn!(%error, "event log: pruning failed");
        }
    }

    /// The deliveries an event triggers, rendered now (so a later config change cannot alter
    /// what a queued delivery sends).
    fn deliveries(&self, envelope: &Envelope, json: &str) -> Vec<NewDelivery> {
        let event_type = envelope.event.type_name();
        let wanted: Vec<&ActionTarget> = self
            .action_urls
            .iter()
            .filter(|target| target.on.is_empty() || target.on.iter().any(|t| t == event_type))
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        wanted
            .into_iter()
            .map(|target| {
                let mut headers = target.headers.clone();
                if target.post {
                    headers.push(("Content-Type".into(), "application/json".into()));
                }
                NewDelivery {
                    endpoint: target.name.clone(),
                    call_key: envelope.event.call().map(|call| call.id.clone()),
                    event_id: envelope.id.clone(),
                    method: if target.post { "POST" } else { "GET" }.into(),
                    url: template::render(&target.url, &value),
                    headers,
                    body: target.post.then(|| json.to_owned()),
                }
            })
            .collect()
    }

    fn replay(&self, after: u64, limit: usize) -> Result<ReplayBatch, String> {
        let stored = self
            .store
            .events_after(after, limit)
            .map_err(|error| format!("event log: {error}"))?;
        let oldest = self
            .store
            .oldest_seq()
            .map_err(|error| format!("event log: {error}"))?;
        let gap = after > self.last_seq
            || oldest.is_some_and(|oldest| after.saturating_add(1) < oldest)
            || (oldest.is_none() && after < self.last_seq);
        let events = stored
            .into_iter()
            .map(|stored| {
                let event_type = serde_json::from_str::<serde_json::Value>(&stored.json)
                    .ok()
                    .and_then(|json| json["type"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                Published {
                    seq: stored.seq,
                    event_type,
                    json: stored.json,
                }
            })
            .collect();
        Ok(ReplayBatch {
            events,
            gap,
            last_seq: self.last_seq,
        })
    }

    /// `evt_` and 128 random bits: unique across restarts and machines, so receivers can
    /// deduplicate on it even if the log is deleted and `seq` starts over.
    fn event_id(&mut self) -> String {
        format!("evt_{:032x}", self.rng.random::<u128>())
    }
}

/// A seed from the standard library's per-process random keys (no extra dependency for OS
/// randomness) mixed with the clock and pid.
fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(i);
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            super::wall_clock()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    seed
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// RFC 3339 in UTC with milliseconds (`2026-11-22T06:15:00.123Z`).
pub fn rfc3339_ms(at: SystemTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from(at)
        .format(FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_795_328_100_123);
        assert_eq!(rfc3339_ms(at), "2026-11-22T06:15:00.123Z");
        let parsed = time::OffsetDateTime::parse(
            &rfc3339_ms(at),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(parsed.unix_timestamp(), 1_795_328_100);
    }
}
