//! TEMPORARY stub until the outbox lands.
#[derive(Debug, Clone)]
pub struct OutboxHandle;
impl OutboxHandle {
    pub fn wake(&self) {}
}
#[derive(Debug)]
pub struct EndpointSettings {
    pub name: String,
    pub timeout_ms: u64,
    pub secrets: Vec<Vec<u8>>,
    pub retry_horizon_secs: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_secs: u64,
}
#[derive(Debug)]
pub struct OutboxSettings {
    pub database: std::path::PathBuf,
    pub endpoints: Vec<EndpointSettings>,
}
pub fn spawn_outbox(_settings: OutboxSettings) -> OutboxHandle {
    OutboxHandle
}
