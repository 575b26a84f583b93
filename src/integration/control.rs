//! The one command set every front end uses (HTTP API, Unix socket, CLI, URL handler), and the
//! one path by which a command reaches the engine.
//!
//! Why one path: the dial policy, the rate limit, the choice of call when none is named and the
//! audit line must be the same whichever door a command comes through, or the weakest door
//! decides (a URL handler that skips the toll-fraud deny list is a hole).
//!
//! ```text
//!   HTTP / socket / CLI / URL handler ──CallCommand──► Controller::execute
//!        rate limit ─► resolve call ─► parse + dial policy ─► EngineRequest ──► engine
//!        ◄── Ok(CommandOk) / Err(ControlError { code, message }) ◄── reply ◄──┘   (+ audit line)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::dial::{DialPolicy, parse_dial_input};
use super::hub::HubClient;
use crate::core::call::CallError;
use crate::core::{Command, CommandError, CommandReply};
use crate::events::{CallOrigin, CallState};

/// How long a front end waits for the engine's answer before reporting it unavailable.
const ENGINE_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A command for the engine and the channel its answer comes back on.
#[derive(Debug)]
pub struct EngineRequest {
    pub command: Command,
    pub reply: oneshot::Sender<Result<CommandReply, CommandError>>,
}

/// A call-control command, as every front end spells it (`{"command": "dial", "to": "..."}`).
/// A missing `call` means "the only call this applies to" (e.g. the one ringing for `answer`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum CallCommand {
    Dial {
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
    },
    Answer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
    },
    Reject {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
        /// 486 (busy, the default) or 603 (decline).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
    },
    Hangup {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
    },
    Hold {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
    },
    Resume {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
    },
    Mute {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
    },
    Unmute {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
    },
    Dtmf {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
        digits: String,
    },
    Transfer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<String>,
        to: String,
    },
}

impl CallCommand {
    pub fn name(&self) -> &'static str {
        match self {
            CallCommand::Dial { .. } => "dial",
            CallCommand::Answer { .. } => "answer",
            CallCommand::Reject { .. } => "reject",
            CallCommand::Hangup { .. } => "hangup",
            CallCommand::Hold { .. } => "hold",
            CallCommand::Resume { .. } => "resume",
            CallCommand::Mute { .. } => "mute",
            CallCommand::Unmute { .. } => "unmute",
            CallCommand::Dtmf { .. } => "dtmf",
            CallCommand::Transfer { .. } => "transfer",
        }
    }

    /// The command for `action` on `call` (the HTTP routes `/v1/calls/{id}/{action}`).
    pub fn for_call(action: &str, call: String, body: &serde_json::Value) -> Option<Self> {
        let call = Some(call);
        let text = |key: &str| body.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Some(match action {
            "answer" => CallCommand::Answer { call },
            "reject" => CallCommand::Reject {
                call,
                code: body
                    .get("code")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok()),
            },
            "hangup" => CallCommand::Hangup { call },
            "hold" => CallCommand::Hold { call },
            "resume" => CallCommand::Resume { call },
            "mute" => CallCommand::Mute { call },
            "unmute" => CallCommand::Unmute { call },
            "dtmf" => CallCommand::Dtmf {
                call,
                digits: text("digits").unwrap_or_default(),
            },
            "transfer" => CallCommand::Transfer {
                call,
                to: text("to").unwrap_or_default(),
            },
            _ => return None,
        })
    }
}

/// Who sent a command: decides the new call's `origin` and names the sender in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// The HTTP API; `client` is the browser Origin or "token".
    Api { client: String },
    /// A local tool on the Unix socket, which may say it is the agent (CLI) or a URL handler.
    Socket { origin: CallOrigin },
}

impl Requester {
    fn call_origin(&self) -> CallOrigin {
        match self {
            Requester::Api { .. } => CallOrigin::ClickToDial,
            Requester::Socket { origin } => *origin,
        }
    }
}

impl std::fmt::Display for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requester::Api { client } => write!(f, "api:{client}"),
            Requester::Socket { origin } => {
                let via = serde_json::to_value(origin)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                write!(f, "socket:{via}")
            }
        }
    }
}

/// What a successful command returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandOk {
    /// The call the command acted on (the new call for `dial`).
    pub call: String,
}

/// A refused command: a stable machine-readable `code` and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    pub code: ErrorCode,
    pub message: String,
}

/// Stable error codes (part of the API contract; never renamed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnknownCall,
    /// No call id given and no call it could mean.
    NoCall,
    /// No call id given and more than one call it could mean.
    AmbiguousCall,
    InvalidNumber,
    UnknownAccount,
    NotRegistered,
    DeniedByPolicy,
    InvalidState,
    InvalidDigits,
    /// Too many DTMF digits already wait to be sent on the call.
    DtmfQueueFull,
    TooManyCalls,
    NoMediaPort,
    NotSupported,
    RateLimited,
    ShuttingDown,
    EngineUnavailable,
    Unauthorized,
    ForbiddenOrigin,
    MisdirectedRequest,
    NotFound,
}

impl ControlError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<CommandError> for ControlError {
    fn from(error: CommandError) -> Self {
        let code = match &error {
            CommandError::UnknownAccount(_) => ErrorCode::UnknownAccount,
            CommandError::ShuttingDown => ErrorCode::ShuttingDown,
            CommandError::Call(call) => match call {
                CallError::UnknownCall(_) => ErrorCode::UnknownCall,
                CallError::InvalidNumber { .. } => ErrorCode::InvalidNumber,
                CallError::UnknownAccount(_) => ErrorCode::UnknownAccount,
                CallError::NotRegistered(_) => ErrorCode::NotRegistered,
                CallError::InvalidState { .. } => ErrorCode::InvalidState,
                CallError::TooManyCalls => ErrorCode::TooManyCalls,
                CallError::NoMediaPort => ErrorCode::NoMediaPort,
                CallError::InvalidDigits(_) => ErrorCode::InvalidDigits,
                // Too many digits waiting: try again once some are sent (HTTP 429).
                CallError::DtmfQueueFull => ErrorCode::DtmfQueueFull,
            },
        };
        Self::new(code, error.to_string())
    }
}

/// A fixed-window limit on state-changing commands, shared by every front end. Atomics, not a
/// lock: many API tasks check it at once.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u64,
    window_minute: AtomicU64,
    used: AtomicU64,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: u64::from(per_minute.max(1)),
            window_minute: AtomicU64::new(0),
            used: AtomicU64::new(0),
        }
    }

    /// Takes one slot in the minute `now_secs` falls in; false when the minute is used up.
    pub fn try_acquire(&self, now_secs: u64) -> bool {
        let minute = now_secs / 60;
        if self.window_minute.swap(minute, Ordering::AcqRel) != minute {
            self.used.store(0, Ordering::Release);
        }
        self.used.fetch_add(1, Ordering::AcqRel) < self.per_minute
    }
}

/// The shared front door to the engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Controller {
    engine: mpsc::Sender<EngineRequest>,
    hub: HubClient,
    policy: Arc<DialPolicy>,
    limiter: Arc<RateLimiter>,
}

impl Controller {
    pub fn new(
        engine: mpsc::Sender<EngineRequest>,
        hub: HubClient,
        policy: DialPolicy,
        rate_limit_per_minute: u32,
    ) -> Self {
        Self {
            engine,
            hub,
            policy: Arc::new(policy),
            limiter: Arc::new(RateLimiter::new(rate_limit_per_minute)),
        }
    }

    pub fn hub(&self) -> &HubClient {
        &self.hub
    }

    /// Runs one command for `requester`, writing one audit line whatever the outcome.
    pub async fn execute(
        &self,
        command: CallCommand,
        requester: &Requester,
    ) -> Result<CommandOk, ControlError> {
        let name = command.name();
        let result = self.execute_inner(command, requester).await;
        match &result {
            Ok(ok) => {
                tracing::info!(target: "ringside::audit", requester = %requester, command = name, call = %ok.call, "accepted");
            }
            Err(error) => {
                tracing::info!(target: "ringside::audit", requester = %requester, command = name, code = ?error.code, reason = %error.message, "refused");
            }
        }
        result
    }

    async fn execute_inner(
        &self,
        command: CallCommand,
        requester: &Requester,
    ) -> Result<CommandOk, ControlError> {
        if !self.limiter.try_acquire(super::unix_secs()) {
            return Err(ControlError::new(
                ErrorCode::RateLimited,
                "too many commands this minute; try again shortly",
            ));
        }
        let established = [CallState::Established];
        let command = match command {
            CallCommand::Dial { to, account } => {
                let target = parse_dial_input(&to).map_err(|error| {
                    ControlError::new(ErrorCode::InvalidNumber, error.to_string())
                })?;
                self.policy.check(&target).map_err(|denial| {
                    ControlError::new(
                        ErrorCode::DeniedByPolicy,
                        format!("denied by policy: {denial}"),
                    )
                })?;
                Command::Dial {
                    to: target.to_dial_string(),
                    account,
                    origin: requester.call_origin(),
                }
            }
            CallCommand::Answer { call } => Command::Answer {
                call: self.resolve(call, &[CallState::Incoming], "ringing")?,
            },
            CallCommand::Reject { call, code } => {
                if code.is_some_and(|code| !(400..=699).contains(&code)) {
                    return Err(ControlError::new(
                        ErrorCode::BadRequest,
                        "reject code must be a SIP final failure (400-699), e.g. 486 or 603",
                    ));
                }
                Command::Reject {
                    call: self.resolve(call, &[CallState::Incoming], "ringing")?,
                    code,
                }
            }
            CallCommand::Hangup { call } => Command::Hangup {
                call: self.resolve(
                    call,
                    &[
                        CallState::Dialing,
                        CallState::Ringing,
                        CallState::EarlyMedia,
                        CallState::Incoming,
                        CallState::Established,
                    ],
                    "in progress",
                )?,
            },
            CallCommand::Hold { call } => Command::Hold {
                call: self.resolve(call, &established, "established")?,
            },
            CallCommand::Resume { call } => Command::Resume {
                call: self.resolve(call, &established, "established")?,
            },
            CallCommand::Mute { call } => Command::Mute {
                call: self.resolve(call, &established, "established")?,
            },
            CallCommand::Unmute { call } => Command::Unmute {
                call: self.resolve(call, &established, "established")?,
            },
            CallCommand::Dtmf { call, digits } => Command::SendDtmf {
                call: self.resolve(call, &established, "established")?,
                digits,
            },
            CallCommand::Transfer { .. } => {
                return Err(ControlError::new(
                    ErrorCode::NotSupported,
                    "transfer is not available yet",
                ));
            }
        };
        let named_call = match &command {
            Command::Answer { call }
            | Command::Reject { call, .. }
            | Command::Hangup { call }
            | Command::Hold { call }
            | Command::Resume { call }
            | Command::Mute { call }
            | Command::Unmute { call }
            | Command::SendDtmf { call, .. } => Some(call.clone()),
            _ => None,
        };
        let reply = self.send(command).await?;
        match (reply, named_call) {
            (CommandReply::CallCreated { call }, _) | (CommandReply::Done, Some(call)) => {
                Ok(CommandOk { call })
            }
            (CommandReply::Done, None) => Ok(CommandOk {
                call: String::new(),
            }),
        }
    }

    /// The call a command names, or the only one in `states` when it names none.
    fn resolve(
        &self,
        call: Option<String>,
        states: &[CallState],
        what: &str,
    ) -> Result<String, ControlError> {
        if let Some(call) = call {
            return Ok(call);
        }
        let snapshot = self.hub.snapshot();
        match snapshot.only_call_in(states) {
            Ok(call) => Ok(call.id.clone()),
            Err(0) => Err(ControlError::new(
                ErrorCode::NoCall,
                format!("no call {what}: name one"),
            )),
            Err(_) => Err(ControlError::new(
                ErrorCode::AmbiguousCall,
                format!("more than one call {what}: name one"),
            )),
        }
    }

    async fn send(&self, command: Command) -> Result<CommandReply, ControlError> {
        let unavailable = || {
            ControlError::new(
                ErrorCode::EngineUnavailable,
                "the engine is not responding; is it shutting down?",
            )
        };
        let (reply, answer) = oneshot::channel();
        self.engine
            .send_timeout(EngineRequest { command, reply }, ENGINE_REPLY_TIMEOUT)
            .await
            .map_err(|_| unavailable())?;
        match tokio::time::timeout(ENGINE_REPLY_TIMEOUT, answer).await {
            Ok(Ok(result)) => result.map_err(ControlError::from),
            _ => Err(unavailable()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_from_their_wire_form() {
        let dial: CallCommand =
            serde_json::from_str(r#"{"command":"dial","to":"+33 6 12","account":"office"}"#)
                .unwrap();
        assert_eq!(
            dial,
            CallCommand::Dial {
                to: "+33 6 12".into(),
                account: Some("office".into())
            }
        );
        let answer: CallCommand = serde_json::from_str(r#"{"command":"answer"}"#).unwrap();
        assert_eq!(answer, CallCommand::Answer { call: None });
        assert!(serde_json::from_str::<CallCommand>(r#"{"command":"dial"}"#).is_err());
        assert!(
            serde_json::from_str::<CallCommand>(r#"{"command":"dial","to":"1","x":1}"#).is_err()
        );
        assert!(serde_json::from_str::<CallCommand>(r#"{"command":"format_disk"}"#).is_err());
        let back: CallCommand =
            serde_json::from_str(&serde_json::to_string(&dial).unwrap()).unwrap();
        assert_eq!(back, dial);
    }

    #[test]
    fn rate_limiter_allows_the_budget_per_minute_then_refuses() {
        let limiter = RateLimiter::new(3);
        assert!((0..3).all(|_| limiter.try_acquire(120)));
        assert!(!limiter.try_acquire(130));
        assert!(limiter.try_acquire(180), "a new minute starts a new budget");
    }

    #[test]
    fn engine_errors_map_to_stable_codes() {
        let error = ControlError::from(CommandError::Call(CallError::UnknownCall("c1".into())));
        assert_eq!(error.code, ErrorCode::UnknownCall);
        assert_eq!(
            serde_json::to_value(&error).unwrap()["code"],
            "unknown_call"
        );
        let error = ControlError::from(CommandError::Call(CallError::NotRegistered("o".into())));
        assert_eq!(error.code, ErrorCode::NotRegistered);
        let error = ControlError::from(CommandError::Call(CallError::DtmfQueueFull));
        assert_eq!(error.code, ErrorCode::DtmfQueueFull);
    }
}
