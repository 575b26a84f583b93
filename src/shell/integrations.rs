//! Starting the integration layer around the engine: the event hub (log + outbox), the
//! control socket and the HTTP API, all wired to one command channel into the run loop.
//!
//! ```text
//!   HTTP API ─┐                                  ┌─► hub thread ─► SQLite, broadcast, outbox
//!   socket   ─┴─► Controller ─EngineRequest─► run loop (owns Core) ─Event─┘
//! ```

use tokio::sync::mpsc;

use ringside_config::{Config, EventFilter, HttpMethod};

use super::StartError;
use crate::integration::control::{Controller, EngineRequest};
use crate::integration::dial::DialPolicy;
use crate::integration::hub::{self, ActionTarget, HubClient, HubSettings};
use crate::integration::outbox::{self, EndpointSettings, OutboxHandle, OutboxSettings};
use crate::integration::state::InstanceInfo;
use crate::integration::{api, socket};

/// Commands queued from front ends to the run loop.
const ENGINE_REQUEST_CAPACITY: usize = 64;

/// What the run loop keeps of the integration layer.
#[derive(Debug)]
pub(super) struct Integrations {
    pub hub: HubClient,
    pub requests: mpsc::Receiver<EngineRequest>,
    /// Removed at a clean exit (a stale one is replaced at the next start anyway).
    pub socket_path: Option<std::path::PathBuf>,
    /// The action-URL delivery tasks (they stop when this is dropped).
    pub outbox: Option<OutboxHandle>,
}

/// Opens the event log, closes calls a crash left open, starts the outbox, the control socket
/// and the API. Any failure is a start error the user can act on.
pub(super) async fn start(
    config: &Config,
    listen: Vec<String>,
    echo_media: Option<std::net::SocketAddr>,
) -> Result<Integrations, StartError> {
    let integration = |reason: String| StartError::Integration { reason };
    // Bind first: a busy port or a second instance is a start error before anything else runs.
    let socket = if config.api.socket {
        Some(
            socket::bind(&config.api.socket_path)
                .await
                .map_err(|error| integration(error.to_string()))?,
        )
    } else {
        None
    };
    let api = if config.api.enabled {
        let token = api::load_or_create_token(&config.api.token_file)
            .map_err(|error| integration(error.to_string()))?;
        let listener = api::bind(config.api.listen)
            .await
            .map_err(|error| integration(error.to_string()))?;
        Some((listener, token))
    } else {
        None
    };
    let api_addr = api
        .as_ref()
        .and_then(|(listener, _)| listener.local_addr().ok());
    let outbox = if config.action_urls.is_empty() {
        None
    } else {
        let settings = OutboxSettings {
            db_path: config.events.database.clone(),
            endpoints: config
                .action_urls
                .iter()
                .map(|action| EndpointSettings {
                    name: action.name.clone(),
                    timeout_ms: action.timeout_ms,
                    secrets: action
                        .secrets
                        .iter()
                        .map(|secret| secret.expose().to_vec())
                        .collect(),
                    retry_horizon_secs: action.retry_horizon_secs,
                    backoff_initial_ms: action.backoff_initial_ms,
                    backoff_max_secs: action.backoff_max_secs,
                })
                .collect(),
        };
        Some(
            outbox::spawn_outbox(settings)
                .map_err(|error| integration(format!("action URLs: {error}")))?,
        )
    };
    let settings = HubSettings {
        database: config.events.database.clone(),
        retain_events: config.events.retain_events,
        accounts: config.accounts.iter().map(|a| a.name.clone()).collect(),
        action_urls: config
            .action_urls
            .iter()
            .map(|action| ActionTarget {
                name: action.name.clone(),
                on: match &action.on {
                    EventFilter::All => Vec::new(),
                    EventFilter::Only(types) => types.clone(),
                },
                url: action.url.clone(),
                post: action.method == HttpMethod::Post,
                headers: action
                    .headers
                    .iter()
                    .map(|header| (header.name.clone(), header.value.expose().to_owned()))
                    .collect(),
            })
            .collect(),
        instance: InstanceInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            started_at: hub::rfc3339_ms(crate::integration::wall_clock()),
            listen,
            echo_media: echo_media.map(|addr| addr.to_string()),
            api: api_addr.map(|addr| addr.to_string()),
        },
    };
    let (hub, _thread) = hub::start(settings, outbox.as_ref().map(OutboxHandle::waker))
        .map_err(|error| integration(error.to_string()))?;
    let (engine_tx, requests) = mpsc::channel(ENGINE_REQUEST_CAPACITY);
    let policy = DialPolicy::new(&config.dial_policy);
    let controller = Controller::new(
        engine_tx,
        hub.clone(),
        policy,
        config.api.rate_limit_per_minute,
    );
    if let Some((listener, uid)) = socket {
        tracing::info!(path = %config.api.socket_path.display(), "control socket ready");
        tokio::spawn(socket::serve(listener, uid, controller.clone()));
    }
    if let Some((listener, token)) = api {
        if let Some(addr) = api_addr {
            tracing::info!(%addr, token_file = %config.api.token_file.display(), "HTTP API ready");
        }
        tokio::spawn(api::serve(
            listener,
            controller,
            token,
            config.api.allowed_origins.clone(),
            outbox.as_ref().map(OutboxHandle::status),
        ));
    }
    Ok(Integrations {
        hub,
        requests,
        socket_path: config.api.socket.then(|| config.api.socket_path.clone()),
        outbox,
    })
}
