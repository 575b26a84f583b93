//! The durable event log and the outbox of action-URL deliveries, in one SQLite file.
//!
//! Why one file and one transaction: an event and the deliveries it triggers must exist
//! together or not at all. If the process dies between "event logged" and "deliveries queued",
//! a CRM would silently miss a call; with one transaction it either never happened (the hub
//! retries nothing, the engine moves on) or every delivery is queued before the first attempt.
//!
//! ```text
//!   hub ── append(event, deliveries) ──►┌──────────── ringside.db (WAL) ────────────┐
//!        (its own Store, one txn)       │ events      seq, id, type, call_id, json  │
//!                                       │ deliveries  pending → delivered | dead    │
//!   outbox ── eligible / record ───────►│ endpoint_counts (kept by triggers)        │
//!        (its own Store)                │ disabled_endpoints, meta.last_seq         │
//!                                       └───────────────────────────────────────────┘
//! ```
//!
//! - One [`Store`] per connection; the hub and the outbox each open their own on the same
//!   file. WAL lets the outbox read and write while the hub appends (writers take turns,
//!   waiting up to `busy_timeout`).
//! - `seq` is assigned by the hub; the highest one ever stored is kept in `meta` so that
//!   pruning old events can never let a sequence number be handed out twice (clients resume
//!   a stream by seq).
//! - Deliveries carry their own copy of the rendered request, so pruning an event never
//!   touches a delivery that is still pending.
//! - Per-endpoint counts are maintained by triggers in the same transactions, so status reads
//!   are O(endpoints), not O(rows).
//! - The file can hold header values that are credentials: the directory is created 0700 and
//!   the file kept 0600 (SQLite gives its `-wal`/`-shm` files the database file's mode).
//!   [`Delivery`]'s `Debug` shows header names only, never values or the body.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

/// The schema this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('last_seq', 0);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    call_id TEXT,
    json TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_call ON events (call_id, seq) WHERE call_id IS NOT NULL;

-- state: 0 pending, 1 delivered, 2 dead letter.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    call_key TEXT,
    event_seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    method TEXT NOT NULL CHECK (method <> ''),
    url TEXT NOT NULL CHECK (url <> ''),
    headers TEXT NOT NULL,
    body TEXT,
    state INTEGER NOT NULL CHECK (state IN (0, 1, 2)),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    next_attempt_at_ms INTEGER NOT NULL,
    last_error TEXT,
    finished_at_ms INTEGER,
    dead_reason TEXT
) STRICT;
CREATE INDEX deliveries_due ON deliveries (endpoint, next_attempt_at_ms, id) WHERE state = 0;
CREATE INDEX deliveries_pending_by_call ON deliveries (endpoint, call_key, id)
    WHERE state = 0 AND call_key IS NOT NULL;
CREATE INDEX deliveries_by_event ON deliveries (event_seq);
CREATE INDEX deliveries_dead ON deliveries (finished_at_ms, id) WHERE state = 2;

CREATE TABLE endpoint_counts (
    endpoint TEXT PRIMARY KEY,
    pending INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    dead INTEGER NOT NULL
) STRICT;
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries BEGIN
    INSERT INTO endpoint_counts (endpoint, pending, delivered, dead)
        VALUES (NEW.endpoint, 0, 0, 0) ON CONFLICT (endpoint) DO NOTHING;
    UPDATE endpoint_counts SET
        pending = pending + (NEW.state = 0),
        delivered = delivered + (NEW.state = 1),
        dead = dead + (NEW.state = 2)
    WHERE endpoint = NEW.endpoint;
END;
CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
WHEN OLD.state <> NEW.state BEGIN
    UPDATE endpoint_counts SET
        pending = pending + (NEW.state = 0) - (OLD.state = 0),
        delivered = delivered + (NEW.state = 1) - (OLD.state = 1),
        dead = dead + (NEW.state = 2) - (OLD.state = 2)
    WHERE endpoint = NEW.endpoint;
END;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
    UPDATE endpoint_counts SET
        pending = pending - (OLD.state = 0),
        delivered = delivered - (OLD.state = 1),
        dead = dead - (OLD.state = 2)
    WHERE endpoint = OLD.endpoint;
END;

CREATE TABLE disabled_endpoints (
    endpoint TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    disabled_at_ms INTEGER NOT NULL
) STRICT;
";

const STATE_PENDING: i64 = 0;
const STATE_DELIVERED: i64 = 1;
const STATE_DEAD: i64 = 2;

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint, d.call_key, d.event_id, d.method, d.url, \
     d.headers, d.body, d.attempts, d.created_at_ms, d.next_attempt_at_ms, d.last_error";

/// What can go wrong with the store. Messages name the file and the problem, never a stored
/// value (header values and bodies can hold credentials).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Creating the directory or the file, or setting its permissions, failed.
    #[error("event store {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// SQLite refused an operation (disk full, corrupt file, constraint).
    #[error("event store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer Ringside.
    #[error(
        "event store {}: schema version {found} is newer than this Ringside understands ({supported})",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// The hub tried to append an event whose seq is not above every seq ever stored.
    #[error("event seq {seq} is not after the last assigned seq {last_seq}")]
    SeqReused { seq: u64, last_seq: u64 },
    /// A stored delivery's header list could not be decoded.
    #[error("event store: delivery {id} has unreadable headers")]
    BadHeaders { id: i64 },
}

/// An event as the hub hands it over: its envelope fields plus the encoded JSON.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub seq: u64,
    pub id: &'a str,
    pub ts: &'a str,
    pub event_type: &'a str,
    /// Ringside's call id, for events about a call.
    pub call_id: Option<&'a str>,
    pub json: &'a str,
}

/// A rendered action-URL request to queue with its event.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The configured endpoint's name (the unit of ordering, concurrency and disabling).
    pub endpoint: String,
    /// Deliveries with the same key reach their endpoint in order; `None` = independent.
    pub call_key: Option<String>,
    pub event_id: String,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// An event read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub json: String,
}

/// A queued delivery, as the outbox sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub endpoint: String,
    pub call_key: Option<String>,
    pub event_id: String,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at_ms: u64,
    pub next_attempt_at_ms: u64,
    pub last_error: Option<String>,
}

/// A delivery given up on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub delivery: Delivery,
    pub reason: String,
    pub dead_at_ms: u64,
}

/// How one attempt ended, as [`Store::record_attempt`] stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Retry {
        next_attempt_at_ms: u64,
        error: String,
    },
    Dead {
        reason: String,
    },
}

/// Deliveries per state for one endpoint (rows currently stored: pruning removes finished ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndpointCounts {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
}

/// One connection to the event store.
pub struct Store {
    conn: Connection,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.conn.path())
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        prepare_file(path)?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL: readers never block the writer, so the outbox works while the hub appends.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "event store: WAL refused; concurrent access will block more");
        }
        // In WAL mode, NORMAL syncs at checkpoints but not at each commit. A committed
        // transaction is already in the WAL file (handed to the OS) when COMMIT returns, so a
        // `kill -9` of this process loses nothing; only an OS crash or power cut can lose the
        // last commits. That is the failure this store is asked to survive, at a fraction of
        // FULL's cost (one fsync per append).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&mut conn, path)?;
        Ok(Store { conn })
    }

    /// Whether a commit on this connection may run a WAL checkpoint (SQLite's automatic one,
    /// after the WAL passes 1000 pages). A checkpoint syncs the database file: on a writer
    /// whose commits are on someone's critical path, leave it to [`Store::checkpoint`] on
    /// another connection instead.
    pub fn set_automatic_checkpoints(&self, on: bool) -> Result<(), StoreError> {
        let pages = if on { 1000 } else { 0 };
        self.conn.pragma_update(None, "wal_autocheckpoint", pages)?;
        Ok(())
    }

    /// Copies what it can of the WAL into the database file, without waiting for or blocking
    /// readers and writers (`PRAGMA wal_checkpoint(PASSIVE)`).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// The highest seq ever stored (pruning does not lower it); 0 for a new store.
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(read_last_seq(&self.conn)?)
    }

    /// Stores `event` and its `deliveries` in one transaction. `event.seq` must be above
    /// [`Store::last_seq`]. Deliveries to a disabled endpoint are stored as dead letters.
    pub fn append(
        &mut self,
        event: &NewEvent<'_>,
        deliveries: &[NewDelivery],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last_seq = read_last_seq(&tx)?;
        if event.seq <= last_seq {
            return Err(StoreError::SeqReused {
                seq: event.seq,
                last_seq,
            });
        }
        tx.prepare_cached(
            "INSERT INTO events (seq, id, ts, type, call_id, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            event.seq,
            event.id,
            event.ts,
            event.event_type,
            event.call_id,
            event.json
        ])?;
        tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'last_seq'")?
            .execute(params![event.seq])?;
        for delivery in deliveries {
            let disabled: Option<String> = tx
                .prepare_cached("SELECT reason FROM disabled_endpoints WHERE endpoint = ?1")?
                .query_row(params![delivery.endpoint], |row| row.get(0))
                .optional()?;
            let (state, dead_reason, finished_at_ms) = match disabled {
                Some(reason) => (STATE_DEAD, Some(gone_reason(&reason)), Some(now_ms)),
                None => (STATE_PENDING, None, None),
            };
            let headers = encode_headers(&delivery.headers);
            tx.prepare_cached(
                "INSERT INTO deliveries (endpoint, call_key, event_seq, event_id, method, url, \
                 headers, body, state, created_at_ms, next_attempt_at_ms, finished_at_ms, \
                 dead_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12)",
            )?
            .execute(params![
                delivery.endpoint,
                delivery.call_key,
                event.seq,
                delivery.event_id,
                delivery.method,
                delivery.url,
                headers,
                delivery.body,
                state,
                now_ms,
                finished_at_ms,
                dead_reason
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` events with seq above `after_seq`, oldest first.
    pub fn events_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT seq, json FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = statement.query_map(params![after_seq, limit], stored_event)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The oldest seq still stored; `None` when the log is empty.
    pub fn oldest_seq(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT MIN(seq) FROM events", [], |row| row.get(0))?)
    }

    /// For each call whose latest stored event is not `call.ended`: that latest event, oldest
    /// call first. What a client needs to rebuild the calls in progress.
    pub fn open_calls(&self) -> Result<Vec<StoredEvent>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT e.seq, e.json FROM events e \
             JOIN (SELECT call_id, MAX(seq) AS seq FROM events WHERE call_id IS NOT NULL \
                   GROUP BY call_id) latest ON e.seq = latest.seq \
             WHERE e.type <> 'call.ended' ORDER BY e.seq",
        )?;
        let rows = statement.query_map([], stored_event)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the oldest events beyond the newest `keep_events`, with their finished
    /// (delivered or dead) deliveries; pending deliveries stay. Returns the events deleted.
    pub fn prune(&mut self, keep_events: u64) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let cutoff: Option<u64> = tx
            .query_row(
                "SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?1",
                params![keep_events],
                |row| row.get(0),
            )
            .optional()?;
        let Some(cutoff) = cutoff else {
            return Ok(0);
        };
        tx.execute(
            "DELETE FROM deliveries WHERE event_seq <= ?1 AND state <> ?2",
            params![cutoff, STATE_PENDING],
        )?;
        let deleted = tx.execute("DELETE FROM events WHERE seq <= ?1", params![cutoff])?;
        tx.commit()?;
        Ok(deleted as u64)
    }

    /// Up to `limit` pending deliveries for `endpoint`, oldest first.
    pub fn pending_deliveries(
        &self,
        endpoint: &str,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.endpoint = ?1 AND d.state = 0 \
             ORDER BY d.id LIMIT ?2"
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows = statement.query_map(params![endpoint, limit], delivery_row)?;
        collect_deliveries(rows)
    }

    /// Up to `limit` pending deliveries for `endpoint` that may be attempted without breaking
    /// per-call order: those with no call key, and the oldest pending one of each call key.
    /// Soonest `next_attempt_at_ms` first (some may not be due yet).
    pub fn eligible_deliveries(
        &self,
        endpoint: &str,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.endpoint = ?1 AND d.state = 0 \
             AND (d.call_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries o \
                  WHERE o.endpoint = d.endpoint AND o.state = 0 AND o.call_key = d.call_key \
                  AND o.id < d.id)) \
             ORDER BY d.next_attempt_at_ms, d.id LIMIT ?2"
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows = statement.query_map(params![endpoint, limit], delivery_row)?;
        collect_deliveries(rows)
    }

    /// Records how an attempt at delivery `id` ended. A delivery that is no longer pending
    /// (its endpoint was disabled meanwhile) is left as it is.
    pub fn record_attempt(
        &mut self,
        id: i64,
        outcome: &AttemptOutcome,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        match outcome {
            AttemptOutcome::Delivered => self.conn.prepare_cached(
                "UPDATE deliveries SET state = ?3, attempts = attempts + 1, finished_at_ms = ?2 \
                 WHERE id = ?1 AND state = 0",
            )?
            .execute(params![id, now_ms, STATE_DELIVERED])?,
            AttemptOutcome::Retry {
                next_attempt_at_ms,
                error,
            } => self.conn.prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at_ms = ?2, \
                 last_error = ?3 WHERE id = ?1 AND state = 0",
            )?
            .execute(params![id, next_attempt_at_ms, error])?,
            AttemptOutcome::Dead { reason } => self.conn.prepare_cached(
                "UPDATE deliveries SET state = ?4, attempts = attempts + 1, finished_at_ms = ?2, \
                 dead_reason = ?3 WHERE id = ?1 AND state = 0",
            )?
            .execute(params![id, now_ms, reason, STATE_DEAD])?,
        };
        Ok(())
    }

    /// Marks `endpoint` gone: its pending deliveries, and any appended later, become dead
    /// letters ("endpoint gone (reason)"). `attempted` is the delivery whose answer said so: it
    /// counts one more attempt. Returns how many were dead-lettered now.
    pub fn disable_endpoint(
        &mut self,
        endpoint: &str,
        reason: &str,
        attempted: Option<i64>,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(id) = attempted {
            tx.execute(
                "UPDATE deliveries SET attempts = attempts + 1 WHERE id = ?1 AND state = 0",
                params![id],
            )?;
        }
        tx.execute(
            "INSERT INTO disabled_endpoints (endpoint, reason, disabled_at_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (endpoint) DO UPDATE SET reason = excluded.reason, \
             disabled_at_ms = excluded.disabled_at_ms",
            params![endpoint, reason, now_ms],
        )?;
        let dead = tx.execute(
            "UPDATE deliveries SET state = ?4, finished_at_ms = ?2, dead_reason = ?3 \
             WHERE endpoint = ?1 AND state = 0",
            params![endpoint, now_ms, gone_reason(reason), STATE_DEAD],
        )?;
        tx.commit()?;
        Ok(dead as u64)
    }

    /// Lets `endpoint` take deliveries again (after its configuration was fixed).
    /// Dead letters stay dead.
    pub fn enable_endpoint(&mut self, endpoint: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM disabled_endpoints WHERE endpoint = ?1",
            params![endpoint],
        )?;
        Ok(())
    }

    /// Disabled endpoints and why: `(endpoint, reason)`, by name.
    pub fn disabled_endpoints(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT endpoint, reason FROM disabled_endpoints ORDER BY endpoint")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` dead letters, most recent first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS}, d.dead_reason, d.finished_at_ms FROM deliveries d \
             WHERE d.state = 2 ORDER BY d.finished_at_ms DESC, d.id DESC LIMIT ?1"
        );
        let mut statement = self.conn.prepare_cached(&sql)?;
        let rows = statement.query_map(params![limit], |row| {
            Ok((
                delivery_row(row)?,
                row.get::<_, Option<String>>(12)?,
                row.get::<_, Option<u64>>(13)?,
            ))
        })?;
        let mut letters = Vec::new();
        for row in rows {
            let (delivery, reason, dead_at_ms) = row?;
            letters.push(DeadLetter {
                delivery: delivery.decode()?,
                reason: reason.unwrap_or_default(),
                dead_at_ms: dead_at_ms.unwrap_or_default(),
            });
        }
        Ok(letters)
    }

    /// Pending / delivered / dead counts for one endpoint (zeros if it never had any).
    pub fn endpoint_counts(&self, endpoint: &str) -> Result<EndpointCounts, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT pending, delivered, dead FROM endpoint_counts WHERE endpoint = ?1",
            )?
            .query_row(params![endpoint], counts_row)
            .optional()?
            .unwrap_or_default())
    }

    /// Pending / delivered / dead counts for every endpoint that has deliveries stored.
    pub fn outbox_counts(&self) -> Result<BTreeMap<String, EndpointCounts>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT endpoint, pending, delivered, dead FROM endpoint_counts")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                EndpointCounts {
                    pending: row.get(1)?,
                    delivered: row.get(2)?,
                    dead: row.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The dead-letter reason for deliveries to a disabled endpoint.
fn gone_reason(reason: &str) -> String {
    format!("endpoint gone ({reason})")
}

/// Creates the parent directory (0700) and the file (0600) before SQLite opens it.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    // An existing file keeps its mode on open: tighten it, it can hold credentials.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA_V1)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        SCHEMA_VERSION => {}
        found => {
            return Err(StoreError::SchemaTooNew {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    tx.commit()?;
    Ok(())
}

fn read_last_seq(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = 'last_seq'")?
        .query_row([], |row| row.get(0))
}

fn stored_event(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: row.get(0)?,
        json: row.get(1)?,
    })
}

fn counts_row(row: &Row<'_>) -> rusqlite::Result<EndpointCounts> {
    Ok(EndpointCounts {
        pending: row.get(0)?,
        delivered: row.get(1)?,
        dead: row.get(2)?,
    })
}

/// A delivery row with its headers still JSON (decoded outside rusqlite's closure so the
/// error is ours).
struct RawDelivery {
    delivery: Delivery,
    headers_json: String,
}

impl RawDelivery {
    fn decode(mut self) -> Result<Delivery, StoreError> {
        self.delivery.headers =
            serde_json::from_str(&self.headers_json).map_err(|_| StoreError::BadHeaders {
                id: self.delivery.id,
            })?;
        Ok(self.delivery)
    }
}

fn delivery_row(row: &Row<'_>) -> rusqlite::Result<RawDelivery> {
    Ok(RawDelivery {
        delivery: Delivery {
            id: row.get(0)?,
            endpoint: row.get(1)?,
            call_key: row.get(2)?,
            event_id: row.get(3)?,
            method: row.get(4)?,
            url: row.get(5)?,
            headers: Vec::new(),
            body: row.get(7)?,
            attempts: row.get(8)?,
            created_at_ms: row.get(9)?,
            next_attempt_at_ms: row.get(10)?,
            last_error: row.get(11)?,
        },
        headers_json: row.get(6)?,
    })
}

fn collect_deliveries(
    rows: impl Iterator<Item = rusqlite::Result<RawDelivery>>,
) -> Result<Vec<Delivery>, StoreError> {
    rows.map(|row| row?.decode()).collect()
}

/// `[["name", "value"], ...]`: order and repeated names are kept.
fn encode_headers(headers: &[(String, String)]) -> String {
    serde_json::Value::Array(
        headers
            .iter()
            .map(|(name, value)| serde_json::json!([name, value]))
            .collect(),
    )
    .to_string()
}

/// Header names only: values (tokens, `Authorization`) and bodies never reach a log.
fn redacted_headers(headers: &[(String, String)]) -> Vec<&str> {
    headers.iter().map(|(name, _)| name.as_str()).collect()
}

impl fmt::Debug for NewDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDelivery")
            .field("endpoint", &self.endpoint)
            .field("call_key", &self.call_key)
            .field("event_id", &self.event_id)
            .field("method", &self.method)
            .field("header_names", &redacted_headers(&self.headers))
            .field("body_bytes", &self.body.as_ref().map(String::len))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("call_key", &self.call_key)
            .field("event_id", &self.event_id)
            .field("method", &self.method)
            .field("header_names", &redacted_headers(&self.headers))
            .field("body_bytes", &self.body.as_ref().map(String::len))
            .field("attempts", &self.attempts)
            .field("created_at_ms", &self.created_at_ms)
            .field("next_attempt_at_ms", &self.next_attempt_at_ms)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_json(seq: u64, event_type: &str, call_id: Option<&str>) -> String {
        serde_json::json!({ "seq": seq, "type": event_type, "call": { "id": call_id } }).to_string()
    }

    fn append_event(
        store: &mut Store,
        seq: u64,
        event_type: &str,
        call_id: Option<&str>,
        deliveries: &[NewDelivery],
    ) -> Result<(), StoreError> {
        let id = format!("evt-{seq}");
        let json = event_json(seq, event_type, call_id);
        store.append(
            &NewEvent {
                seq,
                id: &id,
                ts: "2026-01-01T00:00:00Z",
                event_type,
                call_id,
                json: &json,
            },
            deliveries,
            1_000 + seq,
        )
    }

    fn delivery(endpoint: &str, call_key: Option<&str>, event_id: &str) -> NewDelivery {
        NewDelivery {
            endpoint: endpoint.to_owned(),
            call_key: call_key.map(str::to_owned),
            event_id: event_id.to_owned(),
            method: "POST".to_owned(),
            url: "http://127.0.0.1:9/hook?token=secret-token".to_owned(),
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("authorization".to_owned(), "Bearer secret-token".to_owned()),
            ],
            body: Some(format!("{{\"id\":\"{event_id}\"}}")),
        }
    }

    fn temp_store() -> (tempfile::TempDir, PathBuf, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("ringside.db");
        let store = Store::open(&path).unwrap();
        (dir, path, store)
    }

    #[test]
    fn creates_a_private_directory_and_file() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, path, _store) = temp_store();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn seq_is_never_reused_after_prune_and_reopen() {
        let (_dir, path, mut store) = temp_store();
        assert_eq!(store.last_seq().unwrap(), 0);
        for seq in 1..=10 {
            append_event(&mut store, seq, "call.dtmf", Some("c1"), &[]).unwrap();
        }
        assert_eq!(store.prune(0).unwrap(), 10);
        assert_eq!(store.oldest_seq().unwrap(), None);
        assert_eq!(store.last_seq().unwrap(), 10);
        drop(store);

        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.last_seq().unwrap(), 10);
        let reused = append_event(&mut store, 10, "call.dtmf", Some("c1"), &[]);
        assert!(
            matches!(
                reused,
                Err(StoreError::SeqReused {
                    seq: 10,
                    last_seq: 10
                })
            ),
            "{reused:?}"
        );
        append_event(&mut store, 11, "call.dtmf", Some("c1"), &[]).unwrap();
        assert_eq!(store.oldest_seq().unwrap(), Some(11));
    }

    #[test]
    fn append_is_atomic() {
        let (_dir, _path, mut store) = temp_store();
        let mut bad = delivery("crm", Some("c1"), "evt-1");
        bad.url = String::new(); // violates the CHECK constraint: the second insert fails
        let result = append_event(
            &mut store,
            1,
            "call.incoming",
            Some("c1"),
            &[delivery("crm", Some("c1"), "evt-1"), bad],
        );
        assert!(matches!(result, Err(StoreError::Sqlite(_))), "{result:?}");
        assert_eq!(store.last_seq().unwrap(), 0);
        assert!(store.events_after(0, 10).unwrap().is_empty());
        assert!(store.pending_deliveries("crm", 10).unwrap().is_empty());
        assert_eq!(
            store.endpoint_counts("crm").unwrap(),
            EndpointCounts::default()
        );
        // And the same seq is still free.
        append_event(&mut store, 1, "call.incoming", Some("c1"), &[]).unwrap();
    }

    #[test]
    fn open_calls_are_the_latest_event_of_calls_not_ended() {
        let (_dir, _path, mut store) = temp_store();
        append_event(&mut store, 1, "call.incoming", Some("a"), &[]).unwrap();
        append_event(&mut store, 2, "call.dialing", Some("b"), &[]).unwrap();
        append_event(&mut store, 3, "registration.registered", None, &[]).unwrap();
        append_event(&mut store, 4, "call.established", Some("a"), &[]).unwrap();
        append_event(&mut store, 5, "call.ended", Some("b"), &[]).unwrap();
        append_event(&mut store, 6, "call.dialing", Some("c"), &[]).unwrap();
        let open: Vec<u64> = store.open_calls().unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(open, vec![4, 6]);
        assert_eq!(
            store.open_calls().unwrap()[0].json,
            event_json(4, "call.established", Some("a"))
        );
    }

    #[test]
    fn events_after_pages_in_order() {
        let (_dir, _path, mut store) = temp_store();
        for seq in (2..=50).step_by(2) {
            append_event(&mut store, seq, "call.dtmf", Some("c"), &[]).unwrap();
        }
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let page = store.events_after(after, 7).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 7);
            after = page.last().unwrap().seq;
            seen.extend(page.iter().map(|e| e.seq));
        }
        assert_eq!(seen, (2..=50).step_by(2).collect::<Vec<_>>());
        assert_eq!(store.events_after(49, 10).unwrap().len(), 1);
    }

    #[test]
    fn reopen_keeps_events_and_deliveries() {
        let (_dir, path, mut store) = temp_store();
        append_event(
            &mut store,
            1,
            "call.incoming",
            Some("c1"),
            &[
                delivery("crm", Some("c1"), "evt-1"),
                delivery("log", None, "evt-1"),
            ],
        )
        .unwrap();
        let before = store.pending_deliveries("crm", 10).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.last_seq().unwrap(), 1);
        assert_eq!(store.events_after(0, 10).unwrap().len(), 1);
        let after = store.pending_deliveries("crm", 10).unwrap();
        assert_eq!(after, before);
        assert_eq!(after[0].headers, delivery("crm", None, "x").headers);
        assert_eq!(after[0].created_at_ms, 1_001);
        assert_eq!(after[0].next_attempt_at_ms, 1_001);
        assert_eq!(after[0].attempts, 0);
        assert_eq!(store.pending_deliveries("log", 10).unwrap().len(), 1);
    }

    #[test]
    fn eligible_deliveries_keep_per_call_order() {
        let (_dir, _path, mut store) = temp_store();
        append_event(
            &mut store,
            1,
            "call.incoming",
            Some("a"),
            &[delivery("crm", Some("a"), "evt-1")],
        )
        .unwrap();
        append_event(
            &mut store,
            2,
            "call.incoming",
            Some("b"),
            &[delivery("crm", Some("b"), "evt-2")],
        )
        .unwrap();
        append_event(
            &mut store,
            3,
            "call.ended",
            Some("a"),
            &[delivery("crm", Some("a"), "evt-3")],
        )
        .unwrap();
        append_event(
            &mut store,
            4,
            "registration.registered",
            None,
            &[delivery("crm", None, "evt-4")],
        )
        .unwrap();
        let eligible = |store: &Store| -> Vec<String> {
            store
                .eligible_deliveries("crm", 10)
                .unwrap()
                .into_iter()
                .map(|d| d.event_id)
                .collect()
        };
        assert_eq!(eligible(&store), ["evt-1", "evt-2", "evt-4"]);

        // A retried head keeps its call's later deliveries back, however late it is due.
        let head = store.pending_deliveries("crm", 1).unwrap()[0].id;
        let retry = AttemptOutcome::Retry {
            next_attempt_at_ms: 99_999,
            error: "HTTP 503".to_owned(),
        };
        store.record_attempt(head, &retry, 2_000).unwrap();
        assert_eq!(eligible(&store), ["evt-2", "evt-4", "evt-1"]);
        let retried = &store.eligible_deliveries("crm", 10).unwrap()[2];
        assert_eq!(retried.attempts, 1);
        assert_eq!(retried.last_error.as_deref(), Some("HTTP 503"));

        store
            .record_attempt(head, &AttemptOutcome::Delivered, 3_000)
            .unwrap();
        assert_eq!(eligible(&store), ["evt-2", "evt-3", "evt-4"]);
        let counts = store.endpoint_counts("crm").unwrap();
        assert_eq!(
            counts,
            EndpointCounts {
                pending: 3,
                delivered: 1,
                dead: 0
            }
        );
    }

    #[test]
    fn disabling_an_endpoint_dead_letters_its_pending_and_later_deliveries() {
        let (_dir, _path, mut store) = temp_store();
        append_event(
            &mut store,
            1,
            "call.incoming",
            Some("a"),
            &[
                delivery("crm", Some("a"), "evt-1"),
                delivery("other", Some("a"), "evt-1"),
            ],
        )
        .unwrap();
        append_event(
            &mut store,
            2,
            "call.ended",
            Some("a"),
            &[delivery("crm", Some("a"), "evt-2")],
        )
        .unwrap();
        let first = store.pending_deliveries("crm", 1).unwrap()[0].id;
        store
            .record_attempt(first, &AttemptOutcome::Delivered, 1_500)
            .unwrap();

        // evt-2's attempt is the one answered 410.
        let second = store.pending_deliveries("crm", 1).unwrap()[0].id;
        assert_eq!(
            store
                .disable_endpoint("crm", "HTTP 410 Gone", Some(second), 2_000)
                .unwrap(),
            1
        );
        append_event(
            &mut store,
            3,
            "call.incoming",
            Some("b"),
            &[delivery("crm", Some("b"), "evt-3")],
        )
        .unwrap();
        assert_eq!(
            store.disabled_endpoints().unwrap(),
            vec![("crm".to_owned(), "HTTP 410 Gone".to_owned())]
        );
        assert!(store.pending_deliveries("crm", 10).unwrap().is_empty());
        let letters = store.dead_letters(10).unwrap();
        let ids: Vec<&str> = letters
            .iter()
            .map(|l| l.delivery.event_id.as_str())
            .collect();
        // Most recent first: evt-3 was dead-lettered on append, at 1 003 ms (see append_event).
        assert_eq!(ids, ["evt-2", "evt-3"]);
        assert!(
            letters
                .iter()
                .all(|l| l.reason == "endpoint gone (HTTP 410 Gone)")
        );
        assert_eq!(letters[0].dead_at_ms, 2_000);
        let attempts: Vec<u32> = letters.iter().map(|l| l.delivery.attempts).collect();
        assert_eq!(attempts, [1, 0]);
        let counts = store.outbox_counts().unwrap();
        assert_eq!(
            counts["crm"],
            EndpointCounts {
                pending: 0,
                delivered: 1,
                dead: 2
            }
        );
        assert_eq!(
            counts["other"],
            EndpointCounts {
                pending: 1,
                delivered: 0,
                dead: 0
            }
        );

        // A late completion does not resurrect a dead letter.
        store
            .record_attempt(letters[0].delivery.id, &AttemptOutcome::Delivered, 2_100)
            .unwrap();
        assert_eq!(store.endpoint_counts("crm").unwrap().dead, 2);

        store.enable_endpoint("crm").unwrap();
        append_event(
            &mut store,
            4,
            "call.ended",
            Some("b"),
            &[delivery("crm", Some("b"), "evt-4")],
        )
        .unwrap();
        assert_eq!(store.pending_deliveries("crm", 10).unwrap().len(), 1);
    }

    #[test]
    fn prune_keeps_pending_deliveries_and_drops_finished_ones() {
        let (_dir, _path, mut store) = temp_store();
        for seq in 1..=4 {
            let id = format!("evt-{seq}");
            append_event(
                &mut store,
                seq,
                "call.dtmf",
                Some("a"),
                &[delivery("crm", None, &id)],
            )
            .unwrap();
        }
        let pending = store.pending_deliveries("crm", 10).unwrap();
        store
            .record_attempt(pending[0].id, &AttemptOutcome::Delivered, 2_000)
            .unwrap();
        store
            .record_attempt(
                pending[2].id,
                &AttemptOutcome::Dead {
                    reason: "HTTP 404".to_owned(),
                },
                2_000,
            )
            .unwrap();
        assert_eq!(store.prune(1).unwrap(), 3);
        assert_eq!(store.oldest_seq().unwrap(), Some(4));
        let left: Vec<String> = store
            .pending_deliveries("crm", 10)
            .unwrap()
            .into_iter()
            .map(|d| d.event_id)
            .collect();
        assert_eq!(left, ["evt-2", "evt-4"]);
        assert_eq!(
            store.endpoint_counts("crm").unwrap(),
            EndpointCounts {
                pending: 2,
                delivered: 0,
                dead: 0
            }
        );
        assert_eq!(store.prune(10).unwrap(), 0);
    }

    #[test]
    fn debug_output_has_no_header_values_or_body() {
        let (_dir, _path, mut store) = temp_store();
        append_event(
            &mut store,
            1,
            "call.incoming",
            Some("a"),
            &[delivery("crm", Some("a"), "evt-1")],
        )
        .unwrap();
        let stored = store.pending_deliveries("crm", 1).unwrap();
        for text in [
            format!("{stored:?}"),
            format!("{:?}", delivery("crm", None, "evt-1")),
        ] {
            assert!(text.contains("authorization"), "{text}");
            assert!(!text.contains("secret-token"), "{text}");
            assert!(!text.contains("\"id\""), "{text}");
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (_dir, path, store) = temp_store();
        store.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(store);
        let error = Store::open(&path).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::SchemaTooNew {
                    found: 99,
                    supported: 1,
                    ..
                }
            ),
            "{error}"
        );
    }
}
