//! The outbox: delivers queued action-URL requests, at least once, in order per call.
//!
//! Why it looks like this:
//! - Every delivery is in the store before its first attempt (the hub appends it with its
//!   event), and only the store says what is left to do. A crash, `kill -9` or restart loses
//!   nothing: the next outbox finds the same pending rows. An attempt cut short is simply
//!   made again, so receivers see each `webhook-id` at least once and dedupe on it.
//! - One task per endpoint, each with at most [`MAX_IN_FLIGHT`] requests: a slow or dead
//!   endpoint only ever holds up itself. The engine is never held up at all: [`OutboxWaker::wake`]
//!   only stores a permit in a `Notify`.
//! - SQLite calls block, so they run on one store thread that owns the outbox's own
//!   connection, and tasks talk to it over a channel. Nothing here waits on a lock, and a
//!   disk that stalls does not stall the runtime the engine shares.
//! - Order: a delivery is eligible only when no older pending delivery with the same call key
//!   exists for its endpoint ([`Store::eligible_deliveries`]), so one call's events reach an
//!   endpoint in order even across retries and restarts, while different calls go in parallel.
//!
//! ```text
//!   hub ── append ──► SQLite (WAL) ◄──── store thread (own Store) ──► watch<OutboxStatus>
//!    │                                        ▲ requests / replies
//!    └── wake(endpoint) ─► Notify ─► endpoint task ─┬─ attempt ─► HTTP ─► endpoint A
//!                                    (one each)     └─ attempt ─► ...     (≤ 4 at once)
//! ```
//!
//! Outcome of one attempt:
//!
//! | response | what happens |
//! |---|---|
//! | 2xx | delivered |
//! | 410 Gone | the endpoint is disabled; its pending deliveries become dead letters |
//! | other 4xx except 408, 409, 425, 429 | dead letter at once: retrying will not fix it |
//! | 3xx (not followed), 408, 409, 425, 429, 5xx, network error, timeout | retry |
//!
//! Retries back off exponentially (`backoff_initial_ms * 2^(attempts-1)`, capped at
//! `backoff_max_secs`, each delay drawn in [50 %, 100 %] of that: full jitter on the upper
//! half). A `Retry-After` (seconds or HTTP date) on a retried response replaces the backoff.
//! No attempt is scheduled past `created_at + retry_horizon_secs`; one that fails at or after
//! that point makes the delivery a dead letter ("gave up after N attempts over S s: ...").
//!
//! Requests are signed per [`crate::integration::signing`]. Logs and status name an endpoint's
//! URL by scheme, host and path only (query strings can carry tokens) and never show header
//! values, secrets or bodies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::signing;
use super::store::{AttemptOutcome, Delivery, Store, StoreError};

/// Requests in flight at once per endpoint (each for a different call).
pub const MAX_IN_FLIGHT: usize = 4;

/// How long an endpoint task waits before asking the store again after a store error.
const STORE_RETRY_MS: u64 = 1_000;
/// Longest sleep between looks at the store, so a wall-clock jump is corrected in time.
const MAX_IDLE_MS: u64 = 60_000;
/// Response bodies are read (so the connection can be reused) up to this size, then dropped.
const MAX_RESPONSE_BODY_BYTES: usize = 64 * 1024;

/// What the outbox needs: the store file and the configured endpoints.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    pub db_path: PathBuf,
    pub endpoints: Vec<EndpointSettings>,
}

/// One action-URL endpoint: the unit of ordering, concurrency and disabling.
#[derive(Clone)]
pub struct EndpointSettings {
    /// The name deliveries are queued under ([`super::store::NewDelivery::endpoint`]).
    pub name: String,
    /// Limit for one whole request, connect to last response byte.
    pub timeout_ms: u64,
    /// HMAC keys; each signs every request (several while a secret is being rotated).
    pub secrets: Vec<Vec<u8>>,
    /// How long after queueing a delivery is still retried.
    pub retry_horizon_secs: u64,
    /// Delay before the first retry (before jitter).
    pub backoff_initial_ms: u64,
    /// Longest delay between retries (before jitter).
    pub backoff_max_secs: u64,
}

impl EndpointSettings {
    /// An endpoint with the defaults: 10 s timeout, retries for 24 h, 1 s doubling up to 1 h.
    pub fn new(name: impl Into<String>) -> EndpointSettings {
        EndpointSettings {
            name: name.into(),
            timeout_ms: 10_000,
            secrets: Vec::new(),
            retry_horizon_secs: 24 * 60 * 60,
            backoff_initial_ms: 1_000,
            backoff_max_secs: 60 * 60,
        }
    }
}

impl fmt::Debug for EndpointSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointSettings")
            .field("name", &self.name)
            .field("timeout_ms", &self.timeout_ms)
            .field("secrets", &format_args!("{} (hidden)", self.secrets.len()))
            .field("retry_horizon_secs", &self.retry_horizon_secs)
            .field("backoff_initial_ms", &self.backoff_initial_ms)
            .field("backoff_max_secs", &self.backoff_max_secs)
            .finish()
    }
}

/// Why the outbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("action URLs: TLS set-up: {0}")]
    Tls(String),
    #[error("action URLs: HTTP client: {0}")]
    HttpClient(String),
    #[error("action URLs: endpoint {0:?} is configured twice")]
    DuplicateEndpoint(String),
    #[error("action URLs: cannot start the store thread: {0}")]
    Thread(std::io::Error),
}

/// What the outbox is doing, per configured endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxStatus {
    pub endpoints: BTreeMap<String, EndpointStatus>,
}

/// One endpoint's state. Errors name no URL query, header value or secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndpointStatus {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    /// `Some(reason)` once the endpoint answered 410 Gone.
    pub disabled: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at_ms: Option<u64>,
}

/// Wakes endpoint tasks after the hub appended deliveries. Cheap to clone; never blocks.
#[derive(Debug, Clone)]
pub struct OutboxWaker {
    endpoints: Arc<HashMap<String, Arc<Notify>>>,
}

impl OutboxWaker {
    /// Tells `endpoint`'s task to look for new deliveries (no-op for unknown names).
    pub fn wake(&self, endpoint: &str) {
        if let Some(notify) = self.endpoints.get(endpoint) {
            notify.notify_one();
        }
    }

    /// Tells every endpoint task to look for new deliveries.
    pub fn wake_all(&self) {
        self.endpoints
            .values()
            .for_each(|notify| notify.notify_one());
    }
}

/// The running outbox. Dropping it stops every endpoint task; requests cut short stay
/// pending and are made again by the next outbox.
#[derive(Debug)]
pub struct OutboxHandle {
    waker: OutboxWaker,
    status: watch::Receiver<OutboxStatus>,
    tasks: Vec<JoinHandle<()>>,
}

impl OutboxHandle {
    /// See [`OutboxWaker::wake`].
    pub fn wake(&self, endpoint: &str) {
        self.waker.wake(endpoint);
    }

    /// See [`OutboxWaker::wake_all`].
    pub fn wake_all(&self) {
        self.waker.wake_all();
    }

    /// A waker to hand to the hub.
    pub fn waker(&self) -> OutboxWaker {
        self.waker.clone()
    }

    /// Follows [`OutboxStatus`]; it changes after every recorded attempt.
    pub fn status(&self) -> watch::Receiver<OutboxStatus> {
        self.status.clone()
    }

    /// Stops every endpoint task and waits until they are gone.
    pub async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks.drain(..) {
            // Cancelled is the expected result: nothing to report.
            let _ = task.await;
        }
    }
}

impl Drop for OutboxHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the outbox on the current tokio runtime: opens its own connection to the store,
/// then one task per endpoint resumes whatever is pending.
pub fn spawn_outbox(settings: OutboxSettings) -> Result<OutboxHandle, OutboxError> {
    let mut names = HashSet::new();
    for endpoint in &settings.endpoints {
        if !names.insert(endpoint.name.as_str()) {
            return Err(OutboxError::DuplicateEndpoint(endpoint.name.clone()));
        }
    }
    let client = http_client()?;
    let store = Store::open(&settings.db_path)?;

    let disabled: HashMap<String, String> = store.disabled_endpoints()?.into_iter().collect();
    let mut status = OutboxStatus::default();
    for endpoint in &settings.endpoints {
        let counts = store.endpoint_counts(&endpoint.name)?;
        status.endpoints.insert(
            endpoint.name.clone(),
            EndpointStatus {
                pending: counts.pending,
                delivered: counts.delivered,
                dead: counts.dead,
                disabled: disabled.get(&endpoint.name).cloned(),
                ..EndpointStatus::default()
            },
        );
    }
    let (status_tx, status_rx) = watch::channel(status);
    let (requests_tx, requests_rx) = mpsc::channel(64);
    // A thread, not a task: SQLite blocks, and the runtime is shared with the engine.
    std::thread::Builder::new()
        .name("outbox-store".to_owned())
        .spawn(move || run_store(store, requests_rx, status_tx))
        .map_err(OutboxError::Thread)?;

    let seed = entropy();
    let mut notifies = HashMap::new();
    let mut tasks = Vec::new();
    for endpoint in settings.endpoints {
        let notify = Arc::new(Notify::new());
        notifies.insert(endpoint.name.clone(), Arc::clone(&notify));
        let store = StoreClient {
            requests: requests_tx.clone(),
        };
        if let Some(reason) = disabled.get(&endpoint.name) {
            // Its deliveries are dead-lettered as they are appended: nothing to send, only
            // counts to keep current.
            tracing::info!(endpoint = %endpoint.name, %reason, "action URLs: endpoint is disabled");
            tasks.push(tokio::spawn(keep_counts(endpoint.name, store, notify)));
            continue;
        }
        let rng = StdRng::seed_from_u64(seed ^ hash_name(&endpoint.name));
        let worker = EndpointWorker {
            secrets: endpoint.secrets.clone().into(),
            settings: endpoint,
            client: client.clone(),
            store,
            wake: notify,
            rng,
        };
        tasks.push(tokio::spawn(worker.run()));
    }
    Ok(OutboxHandle {
        waker: OutboxWaker {
            endpoints: Arc::new(notifies),
        },
        status: status_rx,
        tasks,
    })
}

/// Wall-clock milliseconds since the Unix epoch: persisted times must survive a restart.
pub fn wall_clock_ms() -> u64 {
    super::wall_clock()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The HTTP client: rustls with the project's ring provider and the system roots, HTTP/1.1,
/// redirects not followed (a 3xx is a failed attempt).
fn http_client() -> Result<reqwest::Client, OutboxError> {
    let tls = crate::shell::tls::client_config(&ringside_config::TlsSettings::default())
        .map_err(OutboxError::Tls)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Ringside/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OutboxError::HttpClient(e.without_url().to_string()))
}

// ---------------------------------------------------------------------------------------------
// The store thread

enum StoreRequest {
    Eligible {
        endpoint: String,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<Delivery>, StoreError>>,
    },
    Record {
        endpoint: String,
        id: i64,
        outcome: AttemptOutcome,
        now_ms: u64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Disable {
        endpoint: String,
        reason: String,
        /// The delivery that was answered 410.
        attempted: i64,
        now_ms: u64,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Re-read an endpoint's counts into the status (deliveries to a disabled endpoint are
    /// dead-lettered as the hub appends them, which the store thread does not see).
    Refresh { endpoint: String },
}

/// Serves requests until every endpoint task is gone, publishing status as it goes.
fn run_store(
    mut store: Store,
    mut requests: mpsc::Receiver<StoreRequest>,
    status: watch::Sender<OutboxStatus>,
) {
    while let Some(request) = requests.blocking_recv() {
        // A dropped reply means the task was stopped meanwhile: nothing to tell it.
        let (endpoint, error) = match request {
            StoreRequest::Eligible {
                endpoint,
                limit,
                reply,
            } => {
                let _ = reply.send(store.eligible_deliveries(&endpoint, limit));
                (endpoint, None)
            }
            StoreRequest::Record {
                endpoint,
                id,
                outcome,
                now_ms,
                reply,
            } => {
                let result = store.record_attempt(id, &outcome, now_ms);
                let error = match (&result, outcome) {
                    (Ok(()), AttemptOutcome::Retry { error, .. }) => Some((error, now_ms)),
                    (Ok(()), AttemptOutcome::Dead { reason }) => Some((reason, now_ms)),
                    _ => None,
                };
                let _ = reply.send(result);
                (endpoint, error)
            }
            StoreRequest::Disable {
                endpoint,
                reason,
                attempted,
                now_ms,
                reply,
            } => {
                let result = store.disable_endpoint(&endpoint, &reason, Some(attempted), now_ms);
                if result.is_ok() {
                    status.send_modify(|status| {
                        status
                            .endpoints
                            .entry(endpoint.clone())
                            .or_default()
                            .disabled = Some(reason.clone());
                    });
                }
                let _ = reply.send(result);
                (endpoint, Some((reason, now_ms)))
            }
            StoreRequest::Refresh { endpoint } => (endpoint, None),
        };
        let counts = match store.endpoint_counts(&endpoint) {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(%endpoint, %error, "action URLs: reading delivery counts");
                continue;
            }
        };
        status.send_if_modified(|status| {
            let entry = status.endpoints.entry(endpoint).or_default();
            let before = entry.clone();
            entry.pending = counts.pending;
            entry.delivered = counts.delivered;
            entry.dead = counts.dead;
            if let Some((error, at_ms)) = error {
                entry.last_error = Some(error);
                entry.last_error_at_ms = Some(at_ms);
            }
            *entry != before
        });
    }
}

/// An endpoint task's side of the store thread.
#[derive(Clone)]
struct StoreClient {
    requests: mpsc::Sender<StoreRequest>,
}

/// The store thread is gone (it only ends when the outbox does, or panicked).
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the outbox store thread has stopped")]
    Stopped,
}

impl StoreClient {
    async fn call<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> StoreRequest,
    ) -> Result<T, CallError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .await
            .map_err(|_| CallError::Stopped)?;
        Ok(answer.await.map_err(|_| CallError::Stopped)??)
    }

    async fn eligible(&self, endpoint: &str, limit: usize) -> Result<Vec<Delivery>, CallError> {
        self.call(|reply| StoreRequest::Eligible {
            endpoint: endpoint.to_owned(),
            limit,
            reply,
        })
        .await
    }

    async fn record(
        &self,
        endpoint: &str,
        id: i64,
        outcome: AttemptOutcome,
        now_ms: u64,
    ) -> Result<(), CallError> {
        self.call(|reply| StoreRequest::Record {
            endpoint: endpoint.to_owned(),
            id,
            outcome,
            now_ms,
            reply,
        })
        .await
    }

    async fn refresh(&self, endpoint: &str) -> Result<(), CallError> {
        self.requests
            .send(StoreRequest::Refresh {
                endpoint: endpoint.to_owned(),
            })
            .await
            .map_err(|_| CallError::Stopped)
    }

    async fn disable(
        &self,
        endpoint: &str,
        reason: &str,
        attempted: i64,
        now_ms: u64,
    ) -> Result<u64, CallError> {
        self.call(|reply| StoreRequest::Disable {
            endpoint: endpoint.to_owned(),
            reason: reason.to_owned(),
            attempted,
            now_ms,
            reply,
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoint tasks

/// A disabled endpoint's task: sends nothing, but each wake-up (the hub appended deliveries,
/// dead on arrival) refreshes its counts, so the status does not go stale.
async fn keep_counts(name: String, store: StoreClient, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        if store.refresh(&name).await.is_err() {
            return;
        }
    }
}

struct EndpointWorker {
    settings: EndpointSettings,
    secrets: Arc<[Vec<u8>]>,
    client: reqwest::Client,
    store: StoreClient,
    wake: Arc<Notify>,
    rng: StdRng,
}

/// What one attempt came to, before backoff is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Delivered,
    Retry {
        error: String,
        retry_after_ms: Option<u64>,
    },
    Dead(String),
    /// 410: disable the endpoint.
    Gone(String),
}

impl EndpointWorker {
    async fn run(mut self) {
        let name = self.settings.name.clone();
        let mut in_flight: JoinSet<(Delivery, Verdict)> = JoinSet::new();
        let mut in_flight_ids: HashSet<i64> = HashSet::new();
        loop {
            let mut sleep_ms = MAX_IDLE_MS;
            if in_flight.len() < MAX_IN_FLIGHT {
                let limit = in_flight_ids.len() + MAX_IN_FLIGHT + 1;
                match self.store.eligible(&name, limit).await {
                    Ok(deliveries) => {
                        let now_ms = wall_clock_ms();
                        for delivery in deliveries {
                            if in_flight_ids.contains(&delivery.id) {
                                continue;
                            }
                            if delivery.next_attempt_at_ms > now_ms {
                                // Soonest first: the rest are not due either.
                                sleep_ms = sleep_ms.min(delivery.next_attempt_at_ms - now_ms);
                                break;
                            }
                            if in_flight.len() >= MAX_IN_FLIGHT {
                                break;
                            }
                            in_flight_ids.insert(delivery.id);
                            in_flight.spawn(attempt(
                                self.client.clone(),
                                Arc::clone(&self.secrets),
                                self.settings.timeout_ms,
                                delivery,
                            ));
                        }
                    }
                    Err(CallError::Stopped) => return,
                    Err(error) => {
                        tracing::error!(endpoint = %name, %error, "action URLs: reading the outbox");
                        sleep_ms = STORE_RETRY_MS;
                    }
                }
            }
            tokio::select! {
                Some(joined) = in_flight.join_next() => {
                    let Ok((delivery, verdict)) = joined else {
                        // An attempt task panicked: the delivery stays pending; forget it
                        // here so it is tried again.
                        in_flight_ids.clear();
                        in_flight.abort_all();
                        continue;
                    };
                    in_flight_ids.remove(&delivery.id);
                    match self.finish(delivery, verdict).await {
                        Ok(true) => {}
                        Ok(false) => {
                            in_flight.abort_all();
                            keep_counts(name, self.store, self.wake).await;
                            return;
                        }
                        Err(CallError::Stopped) => return,
                        Err(error) => {
                            tracing::error!(endpoint = %name, %error, "action URLs: recording an attempt");
                            tokio::time::sleep(Duration::from_millis(STORE_RETRY_MS)).await;
                        }
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            }
        }
    }

    /// Stores the outcome of an attempt. `Ok(false)`: the endpoint is now disabled.
    async fn finish(&mut self, delivery: Delivery, verdict: Verdict) -> Result<bool, CallError> {
        let now_ms = wall_clock_ms();
        let name = &self.settings.name;
        let target = redacted_url(&delivery.url);
        let outcome = match verdict {
            Verdict::Delivered => {
                tracing::debug!(endpoint = %name, %target, event_id = %delivery.event_id, "action URL delivered");
                AttemptOutcome::Delivered
            }
            Verdict::Gone(reason) => {
                let dead = self
                    .store
                    .disable(name, &reason, delivery.id, now_ms)
                    .await?;
                tracing::warn!(
                    endpoint = %name, %target, %reason, dead_letters = dead,
                    "action URLs: endpoint is gone; disabled, its pending deliveries are dead letters"
                );
                return Ok(false);
            }
            Verdict::Dead(reason) => {
                tracing::warn!(endpoint = %name, %target, event_id = %delivery.event_id, %reason, "action URL dead-lettered");
                AttemptOutcome::Dead { reason }
            }
            Verdict::Retry {
                error,
                retry_after_ms,
            } => {
                let jitter_permille = self.rng.random_range(500..=1000);
                let outcome = retry_outcome(
                    &self.settings,
                    &delivery,
                    now_ms,
                    error,
                    retry_after_ms,
                    jitter_permille,
                );
                match &outcome {
                    AttemptOutcome::Retry {
                        next_attempt_at_ms,
                        error,
                    } => tracing::debug!(
                        endpoint = %name, %target, event_id = %delivery.event_id, %error,
                        retry_in_ms = next_attempt_at_ms.saturating_sub(now_ms),
                        "action URL attempt failed"
                    ),
                    _ => {
                        tracing::warn!(endpoint = %name, %target, event_id = %delivery.event_id, "action URL given up")
                    }
                }
                outcome
            }
        };
        self.store
            .record(name, delivery.id, outcome, now_ms)
            .await?;
        Ok(true)
    }
}

/// One HTTP attempt. Never fails: every problem is a [`Verdict`].
async fn attempt(
    client: reqwest::Client,
    secrets: Arc<[Vec<u8>]>,
    timeout_ms: u64,
    delivery: Delivery,
) -> (Delivery, Verdict) {
    let verdict = match build_request(&client, &secrets, timeout_ms, &delivery) {
        Ok(request) => send(request, timeout_ms).await,
        Err(reason) => Verdict::Dead(reason),
    };
    (delivery, verdict)
}

/// The signed request, or why this delivery can never be sent (a dead letter's reason).
fn build_request(
    client: &reqwest::Client,
    secrets: &[Vec<u8>],
    timeout_ms: u64,
    delivery: &Delivery,
) -> Result<reqwest::RequestBuilder, String> {
    let method = Method::from_bytes(delivery.method.as_bytes())
        .map_err(|_| format!("invalid HTTP method {:?}", delivery.method))?;
    let url = Url::parse(&delivery.url).map_err(|e| format!("invalid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme {:?}", url.scheme()));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &delivery.headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        // The value may be a credential: never quote it.
        let header_value =
            HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
        headers.append(header_name, header_value);
    }
    let body = if method == Method::GET {
        Vec::new()
    } else {
        delivery.body.clone().unwrap_or_default().into_bytes()
    };
    let timestamp_secs = wall_clock_ms() / 1000;
    let signed = [
        (signing::ID_HEADER, delivery.event_id.clone()),
        (signing::TIMESTAMP_HEADER, timestamp_secs.to_string()),
        (
            signing::SIGNATURE_HEADER,
            signing::sign(secrets, &delivery.event_id, timestamp_secs, &body),
        ),
    ];
    for (name, value) in signed {
        if name == signing::SIGNATURE_HEADER && secrets.is_empty() {
            continue;
        }
        let value = HeaderValue::from_str(&value).map_err(|_| {
            format!(
                "event id {:?} is not a valid header value",
                delivery.event_id
            )
        })?;
        headers.insert(HeaderName::from_static(name), value);
    }
    let mut request = client
        .request(method.clone(), url)
        .headers(headers)
        .timeout(Duration::from_millis(timeout_ms));
    if method != Method::GET {
        request = request.body(body);
    }
    Ok(request)
}

async fn send(request: reqwest::RequestBuilder, timeout_ms: u64) -> Verdict {
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            return Verdict::Retry {
                error: describe_error(error, timeout_ms),
                retry_after_ms: None,
            };
        }
    };
    let status = response.status();
    let retry_after_ms = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after_ms(value, wall_clock_ms()));
    // Read (a bounded amount of) the body so the connection can be reused.
    let mut read = 0;
    while read < MAX_RESPONSE_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) => break,
            // A 2xx whose body broke off still counts: the status line is the receipt.
            Err(_) => break,
        }
    }
    classify(status, retry_after_ms)
}

/// The verdict on a response status (see the table in the module docs).
fn classify(status: StatusCode, retry_after_ms: Option<u64>) -> Verdict {
    let described = describe_status(status);
    match status.as_u16() {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone(described),
        408 | 409 | 425 | 429 => Verdict::Retry {
            error: described,
            retry_after_ms,
        },
        400..=499 => Verdict::Dead(format!(
            "{described}: a client error, which retrying will not fix"
        )),
        300..=399 => Verdict::Retry {
            error: format!("{described} (redirects are not followed)"),
            retry_after_ms,
        },
        _ => Verdict::Retry {
            error: described,
            retry_after_ms,
        },
    }
}

fn describe_status(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// A transport error in words, without the URL (its query can carry a token).
fn describe_error(error: reqwest::Error, timeout_ms: u64) -> String {
    let error = error.without_url();
    if error.is_timeout() {
        return format!("timed out after {timeout_ms} ms");
    }
    let kind = if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut innermost: &dyn std::error::Error = &error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    format!("{kind}: {innermost}")
}

/// `Retry-After` as a delay from `now_ms`: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
fn parse_retry_after_ms(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(at_ms.saturating_sub(now_ms))
}

/// Backoff before retry number `attempts` (1 = first retry), with `jitter_permille` in
/// 500..=1000 applied to the capped exponential delay.
fn backoff_ms(settings: &EndpointSettings, attempts: u32, jitter_permille: u64) -> u64 {
    let factor = 1u64
        .checked_shl(attempts.saturating_sub(1))
        .unwrap_or(u64::MAX);
    let capped = settings
        .backoff_initial_ms
        .saturating_mul(factor)
        .min(settings.backoff_max_secs.saturating_mul(1000));
    capped.saturating_mul(jitter_permille) / 1000
}

/// Retry or give up, after a failed attempt at `now_ms`.
fn retry_outcome(
    settings: &EndpointSettings,
    delivery: &Delivery,
    now_ms: u64,
    error: String,
    retry_after_ms: Option<u64>,
    jitter_permille: u64,
) -> AttemptOutcome {
    let attempts = delivery.attempts.saturating_add(1);
    let deadline_ms = delivery
        .created_at_ms
        .saturating_add(settings.retry_horizon_secs.saturating_mul(1000));
    if now_ms >= deadline_ms {
        let over_secs = now_ms.saturating_sub(delivery.created_at_ms) / 1000;
        return AttemptOutcome::Dead {
            reason: format!("gave up after {attempts} attempts over {over_secs} s: {error}"),
        };
    }
    let delay_ms =
        retry_after_ms.unwrap_or_else(|| backoff_ms(settings, attempts, jitter_permille));
    AttemptOutcome::Retry {
        next_attempt_at_ms: now_ms.saturating_add(delay_ms).min(deadline_ms),
        error,
    }
}

/// `scheme://host[:port]/path` of a URL: what logs and status may show.
pub(crate) fn redacted_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(url) => {
            let host = url.host_str().unwrap_or("");
            match url.port() {
                Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
                None => format!("{}://{host}{}", url.scheme(), url.path()),
            }
        }
        Err(_) => "(invalid URL)".to_owned(),
    }
}

/// Process-unique entropy from the OS-seeded std hasher (no extra crate needed).
fn entropy() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

fn hash_name(name: &str) -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(name.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EndpointSettings {
        EndpointSettings {
            backoff_initial_ms: 1_000,
            backoff_max_secs: 60,
            retry_horizon_secs: 3_600,
            ..EndpointSettings::new("crm")
        }
    }

    fn delivery(attempts: u32, created_at_ms: u64) -> Delivery {
        Delivery {
            id: 1,
            endpoint: "crm".to_owned(),
            call_key: None,
            event_id: "evt-1".to_owned(),
            method: "POST".to_owned(),
            url: "http://127.0.0.1/hook".to_owned(),
            headers: Vec::new(),
            body: None,
            attempts,
            created_at_ms,
            next_attempt_at_ms: created_at_ms,
            last_error: None,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let s = settings();
        assert_eq!(backoff_ms(&s, 1, 1000), 1_000);
        assert_eq!(backoff_ms(&s, 2, 1000), 2_000);
        assert_eq!(backoff_ms(&s, 3, 500), 2_000);
        assert_eq!(backoff_ms(&s, 7, 1000), 60_000);
        assert_eq!(backoff_ms(&s, 200, 1000), 60_000);
        assert_eq!(backoff_ms(&s, 200, 500), 30_000);
    }

    #[test]
    fn retry_after_replaces_backoff_and_the_horizon_caps_everything() {
        let s = settings();
        let d = delivery(0, 1_000_000);
        let outcome = retry_outcome(&s, &d, 1_000_000, "HTTP 503".into(), Some(7_000), 1000);
        assert_eq!(
            outcome,
            AttemptOutcome::Retry {
                next_attempt_at_ms: 1_007_000,
                error: "HTTP 503".into()
            }
        );
        let outcome = retry_outcome(&s, &d, 1_000_000, "HTTP 503".into(), Some(99_999_000), 1000);
        assert_eq!(
            outcome,
            AttemptOutcome::Retry {
                next_attempt_at_ms: 1_000_000 + 3_600_000,
                error: "HTTP 503".into()
            }
        );
        let late = delivery(11, 1_000_000);
        let outcome = retry_outcome(
            &s,
            &late,
            1_000_000 + 3_600_000,
            "HTTP 502 Bad Gateway".into(),
            None,
            700,
        );
        assert_eq!(
            outcome,
            AttemptOutcome::Dead {
                reason: "gave up after 12 attempts over 3600 s: HTTP 502 Bad Gateway".into()
            }
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now_ms = 1_700_000_000_000;
        assert_eq!(parse_retry_after_ms("120", now_ms), Some(120_000));
        assert_eq!(parse_retry_after_ms(" 0 ", now_ms), Some(0));
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_090));
        assert_eq!(parse_retry_after_ms(&date, now_ms), Some(90_000));
        let past = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_600_000_000));
        assert_eq!(parse_retry_after_ms(&past, now_ms), Some(0));
        assert_eq!(parse_retry_after_ms("soon", now_ms), None);
        assert_eq!(parse_retry_after_ms("-5", now_ms), None);
    }

    #[test]
    fn statuses_are_classified() {
        let code = |c: u16| StatusCode::from_u16(c).unwrap();
        assert_eq!(classify(code(200), None), Verdict::Delivered);
        assert_eq!(classify(code(204), None), Verdict::Delivered);
        assert_eq!(
            classify(code(410), None),
            Verdict::Gone("HTTP 410 Gone".into())
        );
        assert_eq!(
            classify(code(404), Some(5)),
            Verdict::Dead("HTTP 404 Not Found: a client error, which retrying will not fix".into())
        );
        for retried in [408, 409, 425, 429, 500, 502, 503] {
            assert!(
                matches!(
                    classify(code(retried), Some(5)),
                    Verdict::Retry {
                        retry_after_ms: Some(5),
                        ..
                    }
                ),
                "{retried}"
            );
        }
        assert_eq!(
            classify(code(302), None),
            Verdict::Retry {
                error: "HTTP 302 Found (redirects are not followed)".into(),
                retry_after_ms: None
            }
        );
    }

    #[test]
    fn urls_are_shown_without_query_or_credentials() {
        assert_eq!(
            redacted_url("https://user:pw@crm.example:8443/hooks/call?token=abc#x"),
            "https://crm.example:8443/hooks/call"
        );
        assert_eq!(redacted_url("http://127.0.0.1/a?b=c"), "http://127.0.0.1/a");
        assert_eq!(redacted_url("not a url ?token=abc"), "(invalid URL)");
    }

    #[test]
    fn bad_requests_are_dead_letters_that_do_not_quote_header_values() {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(
                crate::shell::tls::client_config(&ringside_config::TlsSettings::default()).unwrap(),
            )
            .build()
            .unwrap();
        let mut d = delivery(0, 0);
        d.headers = vec![("authorization".into(), "Bearer sec\nret".into())];
        let reason = build_request(&client, &[], 1_000, &d)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(reason, "invalid value for header authorization");
        let mut d = delivery(0, 0);
        d.url = "ftp://127.0.0.1/x".into();
        assert!(build_request(&client, &[], 1_000, &d).is_err());
        let mut d = delivery(0, 0);
        d.method = "BAD METHOD".into();
        assert!(build_request(&client, &[], 1_000, &d).is_err());
    }
}
