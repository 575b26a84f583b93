//! Sound cards through cpal (ALSA on Linux). See the parent module for the data flow.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{
    BufferSize, FromSample, SampleFormat, SizedSample, StreamConfig, SupportedBufferSize,
    SupportedStreamConfigRange,
};
use rtrb::{Consumer, Producer, RingBuffer};

use super::ring::{
    CallbackCounters, CaptureReader, LevelParams, PlaybackCallbackState, PlaybackWriter,
    pop_playback, push_capture,
};
use super::{
    CAPTURE_PREFILL_MS, CaptureSource, DeviceError, DeviceInfo, DeviceSpec, DeviceStats,
    HIGH_WATER_MS, PREFILL_MS, PlaybackSink, RING_MS, STALL_RESTART_MS, ms_to_samples,
};

/// The rate we ask sound cards for (or the supported rate closest to it).
const PREFERRED_RATE_HZ: u32 = 48_000;
/// Requested device period (callback size), when the device reports a buffer-size range.
const PERIOD_MS: u32 = 10;
/// Stream errors queued from the error callback to the engine thread.
const ERROR_QUEUE_LEN: usize = 8;
/// How long cpal may take to set a stream up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Rates [`DeviceInfo::sample_rates_hz`] reports when a device accepts a continuous range.
const COMMON_RATES_HZ: [u32; 9] = [
    8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 88_200, 96_000,
];

/// ALSA plugins [`list_devices`] does not open to probe rates: opening them tries to reach a
/// server that is usually absent (JACK may even try to start one), `/dev/dsp`, or just wraps
/// another device (rate converters, channel mixers). They are still listed.
const NO_PROBE: [&str; 10] = [
    "jack",
    "oss",
    "lavrate",
    "samplerate",
    "speexrate",
    "speex",
    "upmix",
    "vdownmix",
    "a52",
    "usbstream",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

/// The name a device is opened by: the ALSA PCM id (`default`, `pulse`, `hw:CARD=0,DEV=0`)
/// where the host has one, else the description's name.
fn device_name(device: &cpal::Device) -> String {
    #[cfg(any(
        target_os = "linux",
        target_os = "dragonfly",
        target_os = "freebsd",
        target_os = "netbsd"
    ))]
    if let Ok(id) = device.id()
        && id.host() == cpal::HostId::Alsa
    {
        return id.id().to_owned();
    }
    description_name(device)
}

fn description_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_default()
}

fn backend(context: &str, e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Backend(format!("{context}: {e}"))
}

fn find_device(
    host: &cpal::Host,
    spec: &DeviceSpec,
    dir: Direction,
) -> Result<cpal::Device, DeviceError> {
    let candidates = || -> Result<Vec<cpal::Device>, DeviceError> {
        let devices = host
            .devices()
            .map_err(|e| backend("cannot enumerate audio devices", e))?;
        Ok(devices
            .filter(|d| match dir {
                Direction::Input => d.supports_input(),
                Direction::Output => d.supports_output(),
            })
            .collect())
    };
    let not_found = |name: &str| -> DeviceError {
        let available = candidates()
            .map(|ds| ds.iter().map(device_name).collect())
            .unwrap_or_default();
        DeviceError::NotFound {
            name: name.to_owned(),
            available,
        }
    };
    match spec {
        DeviceSpec::Default => {
            let d = match dir {
                Direction::Input => host.default_input_device(),
                Direction::Output => host.default_output_device(),
            };
            d.ok_or_else(|| not_found("default"))
        }
        DeviceSpec::Named(name) => {
            // ALSA's `default` is not always among the enumerated hints.
            let default = match dir {
                Direction::Input => host.default_input_device(),
                Direction::Output => host.default_output_device(),
            };
            if let Some(d) = default.filter(|d| device_name(d) == *name) {
                return Ok(d);
            }
            let devices = candidates()?;
            let by_id = devices.iter().position(|d| device_name(d) == *name);
            let by_desc = || devices.iter().position(|d| description_name(d) == *name);
            match by_id.or_else(by_desc) {
                Some(i) => Ok(devices.into_iter().nth(i).expect("index from position")),
                None => Err(not_found(name)),
            }
        }
        DeviceSpec::File(_) | DeviceSpec::Null => Err(DeviceError::Unsupported(format!(
            "\"{spec}\" is not a sound-card device"
        ))),
    }
}

/// Rank of the sample formats we convert in the callback (lower is better); `None` = unused.
fn format_rank(f: SampleFormat) -> Option<u8> {
    Some(match f {
        SampleFormat::I16 => 0,
        SampleFormat::F32 => 1,
        SampleFormat::I32 => 2,
        SampleFormat::F64 => 3,
        SampleFormat::U16 => 4,
        SampleFormat::I8 => 5,
        SampleFormat::U8 => 6,
        SampleFormat::U32 => 7,
        _ => return None,
    })
}

/// Picks the configuration: the rate closest to 48 kHz, then mono (else the fewest channels),
/// then `i16` > `f32` > other formats; a fixed 10 ms period when the device reports a range.
fn choose_config(ranges: &[SupportedStreamConfigRange]) -> Option<(StreamConfig, SampleFormat)> {
    let best = ranges
        .iter()
        .filter(|r| r.channels() > 0)
        .filter_map(|r| {
            let rank = format_rank(r.sample_format())?;
            let rate = PREFERRED_RATE_HZ.clamp(r.min_sample_rate(), r.max_sample_rate());
            let key = (rate.abs_diff(PREFERRED_RATE_HZ), r.channels(), rank);
            Some((key, r, rate))
        })
        .min_by_key(|(key, _, _)| *key)?;
    let (_, range, rate) = best;
    let period = ms_to_samples(rate, PERIOD_MS) as u32;
    let buffer_size = match *range.buffer_size() {
        SupportedBufferSize::Range { min, max } if min <= max && max > 0 => {
            BufferSize::Fixed(period.clamp(min, max))
        }
        _ => BufferSize::Default,
    };
    Some((
        StreamConfig {
            channels: range.channels(),
            sample_rate: rate,
            buffer_size,
        },
        range.sample_format(),
    ))
}

/// Everything a running stream shares with its handle.
struct Running {
    stream: cpal::Stream,
    counters: Arc<CallbackCounters>,
    errors: Consumer<cpal::Error>,
}

fn error_callback(
    counters: Arc<CallbackCounters>,
    mut queue: Producer<cpal::Error>,
) -> impl FnMut(cpal::Error) + Send + 'static {
    // Moves the error into a lock-free queue; the engine thread turns it into text.
    move |e| {
        counters.errors.fetch_add(1, Relaxed);
        let _ = queue.push(e);
    }
}

fn build_input<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    mut producer: Producer<i16>,
) -> Result<Running, cpal::Error>
where
    T: SizedSample,
    i16: FromSample<T>,
{
    let counters = Arc::new(CallbackCounters::new(now()));
    let (err_tx, errors) = RingBuffer::new(ERROR_QUEUE_LEN);
    let channels = usize::from(config.channels);
    let cb_counters = Arc::clone(&counters);
    let stream = device.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _info| push_capture(&mut producer, data, channels, &cb_counters, now()),
        error_callback(Arc::clone(&counters), err_tx),
        Some(OPEN_TIMEOUT),
    )?;
    Ok(Running {
        stream,
        counters,
        errors,
    })
}

fn build_output<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    mut consumer: Consumer<i16>,
    prefill: usize,
    high_water: usize,
) -> Result<Running, cpal::Error>
where
    T: SizedSample + FromSample<i16>,
{
    let counters = Arc::new(CallbackCounters::new(now()));
    let (err_tx, errors) = RingBuffer::new(ERROR_QUEUE_LEN);
    let channels = usize::from(config.channels);
    let cb_counters = Arc::clone(&counters);
    let mut state = PlaybackCallbackState {
        primed: false,
        prefill,
        started: false,
        high_water,
    };
    let stream = device.build_output_stream::<T, _, _>(
        *config,
        move |data: &mut [T], _info| {
            pop_playback(
                &mut consumer,
                data,
                channels,
                &mut state,
                &cb_counters,
                now(),
            )
        },
        error_callback(Arc::clone(&counters), err_tx),
        Some(OPEN_TIMEOUT),
    )?;
    Ok(Running {
        stream,
        counters,
        errors,
    })
}

fn build_input_any(
    device: &cpal::Device,
    config: &StreamConfig,
    format: SampleFormat,
    producer: Producer<i16>,
) -> Result<Running, cpal::Error> {
    match format {
        SampleFormat::I16 => build_input::<i16>(device, config, producer),
        SampleFormat::F32 => build_input::<f32>(device, config, producer),
        SampleFormat::I32 => build_input::<i32>(device, config, producer),
        SampleFormat::F64 => build_input::<f64>(device, config, producer),
        SampleFormat::U16 => build_input::<u16>(device, config, producer),
        SampleFormat::I8 => build_input::<i8>(device, config, producer),
        SampleFormat::U8 => build_input::<u8>(device, config, producer),
        SampleFormat::U32 => build_input::<u32>(device, config, producer),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("sample format {other} not handled"),
        )),
    }
}

fn build_output_any(
    device: &cpal::Device,
    config: &StreamConfig,
    format: SampleFormat,
    consumer: Consumer<i16>,
    prefill: usize,
    high_water: usize,
) -> Result<Running, cpal::Error> {
    match format {
        SampleFormat::I16 => build_output::<i16>(device, config, consumer, prefill, high_water),
        SampleFormat::F32 => build_output::<f32>(device, config, consumer, prefill, high_water),
        SampleFormat::I32 => build_output::<i32>(device, config, consumer, prefill, high_water),
        SampleFormat::F64 => build_output::<f64>(device, config, consumer, prefill, high_water),
        SampleFormat::U16 => build_output::<u16>(device, config, consumer, prefill, high_water),
        SampleFormat::I8 => build_output::<i8>(device, config, consumer, prefill, high_water),
        SampleFormat::U8 => build_output::<u8>(device, config, consumer, prefill, high_water),
        SampleFormat::U32 => build_output::<u32>(device, config, consumer, prefill, high_water),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("sample format {other} not handled"),
        )),
    }
}

/// What the open path settled on.
#[derive(Debug, Clone)]
struct Opened {
    name: String,
    config: StreamConfig,
    format: SampleFormat,
}

/// Finds the device, picks the config and builds the stream; with `BufferSize::Default` again
/// when the device refuses the fixed 10 ms period. `build` makes a fresh ring per attempt and
/// returns the stream plus the engine-side end of the ring.
fn open_stream<E>(
    spec: &DeviceSpec,
    dir: Direction,
    mut build: impl FnMut(
        &cpal::Device,
        &StreamConfig,
        SampleFormat,
    ) -> Result<(Running, E), cpal::Error>,
) -> Result<(Running, E, Opened), DeviceError> {
    let host = cpal::default_host();
    let device = find_device(&host, spec, dir)?;
    let name = device_name(&device);
    let ranges: Vec<SupportedStreamConfigRange> = match dir {
        Direction::Input => device.supported_input_configs().map(Iterator::collect),
        Direction::Output => device.supported_output_configs().map(Iterator::collect),
    }
    .map_err(|e| backend(&format!("cannot query audio device \"{name}\""), e))?;
    let (mut config, format) = choose_config(&ranges).ok_or_else(|| {
        DeviceError::Unsupported(format!(
            "audio device \"{name}\" offers no usable {} configuration",
            match dir {
                Direction::Input => "capture",
                Direction::Output => "playback",
            }
        ))
    })?;
    let (running, end) = match build(&device, &config, format) {
        Ok(r) => r,
        Err(first) if config.buffer_size != BufferSize::Default => {
            config.buffer_size = BufferSize::Default;
            build(&device, &config, format).map_err(|e| {
                backend(
                    &format!("cannot open audio device \"{name}\" (fixed period: {first})"),
                    e,
                )
            })?
        }
        Err(e) => return Err(backend(&format!("cannot open audio device \"{name}\""), e)),
    };
    running
        .stream
        .play()
        .map_err(|e| backend(&format!("cannot start audio device \"{name}\""), e))?;
    Ok((
        running,
        end,
        Opened {
            name,
            config,
            format,
        },
    ))
}

fn drain_errors(errors: &mut Consumer<cpal::Error>, last: &mut Option<String>) {
    while let Ok(e) = errors.pop() {
        *last = Some(e.to_string());
    }
}

/// Engine-side stall detection: the stream is rebuilt when its callback has not run for
/// [`STALL_RESTART_MS`]; failed rebuilds are retried with a doubling interval (max 5 s).
#[derive(Debug)]
struct Watchdog {
    last_callbacks: u64,
    last_progress: Instant,
    retry_after: Duration,
    restarts: u64,
}

const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(5);

impl Watchdog {
    fn new() -> Self {
        Watchdog {
            last_callbacks: 0,
            last_progress: now(),
            retry_after: Duration::from_millis(u64::from(STALL_RESTART_MS)),
            restarts: 0,
        }
    }

    /// True when the stream should be rebuilt now.
    fn stalled(&mut self, callbacks: u64, now: Instant) -> bool {
        if callbacks != self.last_callbacks {
            self.last_callbacks = callbacks;
            self.last_progress = now;
            return false;
        }
        now.duration_since(self.last_progress) >= self.retry_after
    }

    fn rebuilt(&mut self, ok: bool, now: Instant) {
        self.last_callbacks = 0;
        self.last_progress = now;
        let base = Duration::from_millis(u64::from(STALL_RESTART_MS));
        self.retry_after = if ok {
            self.restarts += 1;
            base
        } else {
            (self.retry_after * 2).min(MAX_RETRY_INTERVAL)
        };
    }
}

/// The device layer is I/O, like the shell: it reads the clock for stall detection (engine
/// thread) and to stamp each callback's start (the callback's phase, see `ring`): a vDSO
/// read of the monotonic clock, no syscall, so real-time safe.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// Adds the counters of a stream that was replaced to the running totals.
fn accumulate(total: &mut DeviceStats, s: &DeviceStats) {
    total.samples += s.samples;
    total.underruns += s.underruns;
    total.overruns += s.overruns;
    total.dropped_samples += s.dropped_samples;
    total.padded_samples += s.padded_samples;
    total.trimmed_samples += s.trimmed_samples;
    total.callbacks += s.callbacks;
    total.stream_errors += s.stream_errors;
}

struct CaptureStream {
    running: Running,
    reader: CaptureReader,
}

impl CaptureStream {
    fn open(spec: &DeviceSpec) -> Result<(Self, Opened), DeviceError> {
        let (running, reader, opened) =
            open_stream(spec, Direction::Input, |device, config, format| {
                let rate = config.sample_rate;
                let (producer, consumer) = RingBuffer::new(ms_to_samples(rate, RING_MS));
                let running = build_input_any(device, config, format, producer)?;
                let reader = CaptureReader::new(
                    consumer,
                    Arc::clone(&running.counters),
                    ms_to_samples(rate, CAPTURE_PREFILL_MS),
                    ms_to_samples(rate, HIGH_WATER_MS),
                    LevelParams::at_rate(rate),
                );
                Ok((running, reader))
            })?;
        Ok((CaptureStream { running, reader }, opened))
    }

    fn stats(&self) -> DeviceStats {
        let c = &self.running.counters;
        DeviceStats {
            samples: self.reader.samples,
            underruns: self.reader.underruns,
            overruns: c.overruns.load(Relaxed),
            dropped_samples: c.dropped_samples.load(Relaxed),
            padded_samples: self.reader.padded_samples,
            trimmed_samples: self.reader.trimmed_samples,
            callbacks: c.callbacks.load(Relaxed),
            buffered_samples: self.reader.buffered(),
            standing_samples: self.reader.standing(),
            stream_errors: c.errors.load(Relaxed),
            ..DeviceStats::default()
        }
    }
}

/// Capture from a sound card: mono `i16` at the device's rate (see [`CpalCapture::rate_hz`]).
/// Not `Send` on every platform: keep it on the thread that opened it.
///
/// If the device callback stops running for [`STALL_RESTART_MS`] (device unplugged, sound
/// server restarted, a stream that never started), `read` rebuilds the stream on the calling
/// thread (blocking it for the open, typically a few ms) and counts it in
/// [`DeviceStats::restarts`]; meanwhile `read` returns silence. The rate may differ after a
/// rebuild if the device changed: check `rate_hz()` every tick.
pub struct CpalCapture {
    spec: DeviceSpec,
    stream: Option<CaptureStream>,
    opened: Opened,
    last_error: Option<String>,
    watchdog: Watchdog,
    carried: DeviceStats,
}

impl CpalCapture {
    /// Opens `spec` (must be `Default` or `Named`) and starts the stream.
    pub fn open(spec: &DeviceSpec) -> Result<Self, DeviceError> {
        let (stream, opened) = CaptureStream::open(spec)?;
        Ok(CpalCapture {
            spec: spec.clone(),
            stream: Some(stream),
            opened,
            last_error: None,
            watchdog: Watchdog::new(),
            carried: DeviceStats::default(),
        })
    }

    /// The device's name (as [`DeviceSpec::Named`] takes it).
    pub fn device_name(&self) -> &str {
        &self.opened.name
    }

    /// The stream's configuration (rate, channels, period) and sample format.
    pub fn stream_config(&self) -> (&StreamConfig, SampleFormat) {
        (&self.opened.config, self.opened.format)
    }

    fn check_stall(&mut self) {
        let callbacks = self
            .stream
            .as_ref()
            .map_or(0, |s| s.running.counters.callbacks.load(Relaxed));
        let t = now();
        if !self.watchdog.stalled(callbacks, t) {
            return;
        }
        // Close the old stream first: an exclusive device would refuse a second open.
        if let Some(mut old) = self.stream.take() {
            drain_errors(&mut old.running.errors, &mut self.last_error);
            accumulate(&mut self.carried, &old.stats());
        }
        match CaptureStream::open(&self.spec) {
            Ok((stream, opened)) => {
                self.stream = Some(stream);
                self.opened = opened;
                self.watchdog.rebuilt(true, now());
            }
            Err(e) => {
                self.last_error = Some(format!("restart after stall failed: {e}"));
                self.watchdog.rebuilt(false, now());
            }
        }
    }
}

impl CaptureSource for CpalCapture {
    fn read(&mut self, out: &mut [i16]) -> usize {
        self.check_stall();
        match self.stream.as_mut() {
            Some(s) => {
                drain_errors(&mut s.running.errors, &mut self.last_error);
                s.reader.read(out, now())
            }
            None => {
                out.fill(0);
                0
            }
        }
    }

    fn rate_hz(&self) -> u32 {
        self.opened.config.sample_rate
    }

    fn stats(&self) -> DeviceStats {
        let mut total = self
            .stream
            .as_ref()
            .map(CaptureStream::stats)
            .unwrap_or_default();
        accumulate(&mut total, &self.carried);
        total.rate_hz = self.rate_hz();
        total.device_channels = self.opened.config.channels;
        total.restarts = self.watchdog.restarts;
        total.last_error = self.last_error.clone();
        total
    }
}

impl std::fmt::Debug for CpalCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpalCapture")
            .field("opened", &self.opened)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct PlaybackStream {
    running: Running,
    writer: PlaybackWriter,
}

impl PlaybackStream {
    fn open(spec: &DeviceSpec) -> Result<(Self, Opened), DeviceError> {
        let (running, writer, opened) =
            open_stream(spec, Direction::Output, |device, config, format| {
                let rate = config.sample_rate;
                let (producer, consumer) = RingBuffer::new(ms_to_samples(rate, RING_MS));
                let running = build_output_any(
                    device,
                    config,
                    format,
                    consumer,
                    ms_to_samples(rate, PREFILL_MS),
                    ms_to_samples(rate, HIGH_WATER_MS),
                )?;
                let writer = PlaybackWriter::new(
                    producer,
                    Arc::clone(&running.counters),
                    LevelParams::at_rate(rate),
                );
                Ok((running, writer))
            })?;
        Ok((PlaybackStream { running, writer }, opened))
    }

    fn stats(&self) -> DeviceStats {
        let c = &self.running.counters;
        DeviceStats {
            samples: self.writer.samples,
            underruns: c.underruns.load(Relaxed),
            overruns: self.writer.overruns,
            dropped_samples: self.writer.dropped_samples,
            padded_samples: c.padded_samples.load(Relaxed),
            trimmed_samples: c.trimmed_samples.load(Relaxed) + self.writer.trimmed_samples,
            callbacks: c.callbacks.load(Relaxed),
            buffered_samples: self.writer.buffered(),
            standing_samples: self.writer.standing(),
            stream_errors: c.errors.load(Relaxed),
            ..DeviceStats::default()
        }
    }
}

/// Playback to a sound card: mono `i16` at the device's rate (see [`CpalPlayback::rate_hz`]).
/// Not `Send` on every platform: keep it on the thread that opened it. Silent until
/// [`PREFILL_MS`] of audio is queued. Stall recovery as for [`CpalCapture`] (in `write`;
/// audio written while no stream is open is dropped and counted).
pub struct CpalPlayback {
    spec: DeviceSpec,
    stream: Option<PlaybackStream>,
    opened: Opened,
    last_error: Option<String>,
    watchdog: Watchdog,
    carried: DeviceStats,
    finished: bool,
}

impl CpalPlayback {
    /// Opens `spec` (must be `Default` or `Named`) and starts the stream.
    pub fn open(spec: &DeviceSpec) -> Result<Self, DeviceError> {
        let (stream, opened) = PlaybackStream::open(spec)?;
        Ok(CpalPlayback {
            spec: spec.clone(),
            stream: Some(stream),
            opened,
            last_error: None,
            watchdog: Watchdog::new(),
            carried: DeviceStats::default(),
            finished: false,
        })
    }

    /// The device's name (as [`DeviceSpec::Named`] takes it).
    pub fn device_name(&self) -> &str {
        &self.opened.name
    }

    /// The stream's configuration (rate, channels, period) and sample format.
    pub fn stream_config(&self) -> (&StreamConfig, SampleFormat) {
        (&self.opened.config, self.opened.format)
    }

    fn close_stream(&mut self) {
        if let Some(mut old) = self.stream.take() {
            drain_errors(&mut old.running.errors, &mut self.last_error);
            accumulate(&mut self.carried, &old.stats());
        }
    }

    fn check_stall(&mut self) {
        let callbacks = self
            .stream
            .as_ref()
            .map_or(0, |s| s.running.counters.callbacks.load(Relaxed));
        let t = now();
        if !self.watchdog.stalled(callbacks, t) {
            return;
        }
        self.close_stream();
        match PlaybackStream::open(&self.spec) {
            Ok((stream, opened)) => {
                self.stream = Some(stream);
                self.opened = opened;
                self.watchdog.rebuilt(true, now());
            }
            Err(e) => {
                self.last_error = Some(format!("restart after stall failed: {e}"));
                self.watchdog.rebuilt(false, now());
            }
        }
    }
}

impl PlaybackSink for CpalPlayback {
    fn write(&mut self, pcm: &[i16]) {
        if !self.finished {
            self.check_stall();
        }
        match self.stream.as_mut() {
            Some(s) => {
                drain_errors(&mut s.running.errors, &mut self.last_error);
                s.writer.write(pcm, now());
            }
            None => {
                self.carried.overruns += 1;
                self.carried.dropped_samples += pcm.len() as u64;
            }
        }
    }

    fn rate_hz(&self) -> u32 {
        self.opened.config.sample_rate
    }

    /// Stops the stream at once (queued audio is not drained). Idempotent.
    fn finish(&mut self) -> std::io::Result<()> {
        self.finished = true;
        self.close_stream();
        Ok(())
    }

    fn stats(&self) -> DeviceStats {
        let mut total = self
            .stream
            .as_ref()
            .map(PlaybackStream::stats)
            .unwrap_or_default();
        accumulate(&mut total, &self.carried);
        total.rate_hz = self.rate_hz();
        total.device_channels = self.opened.config.channels;
        total.restarts = self.watchdog.restarts;
        total.last_error = self.last_error.clone();
        total
    }
}

impl std::fmt::Debug for CpalPlayback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpalPlayback")
            .field("opened", &self.opened)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Sound-card devices of the cpal default host (ALSA on Linux), the default device first.
/// Probing rates opens each device briefly (except the plugins in `NO_PROBE`); a device that
/// cannot be opened right now is listed with no rates. ALSA itself may print diagnostics to
/// stderr while probing (e.g. "Unable to connect" when PulseAudio is not running).
pub fn list_devices() -> Result<Vec<DeviceInfo>, DeviceError> {
    let host = cpal::default_host();
    let default_in = host.default_input_device().map(|d| device_name(&d));
    let default_out = host.default_output_device().map(|d| device_name(&d));
    let mut devices: Vec<cpal::Device> = host
        .devices()
        .map_err(|e| backend("cannot enumerate audio devices", e))?
        .collect();
    // Make sure the defaults are listed even if the host's enumeration omits them.
    for d in [host.default_input_device(), host.default_output_device()]
        .into_iter()
        .flatten()
    {
        if !devices.iter().any(|x| device_name(x) == device_name(&d)) {
            devices.insert(0, d);
        }
    }
    let mut infos = Vec::with_capacity(devices.len());
    for d in devices {
        let name = device_name(&d);
        let default_input = default_in.as_deref() == Some(name.as_str());
        let default_output = default_out.as_deref() == Some(name.as_str());
        let input = d.supports_input() || default_input;
        let output = d.supports_output() || default_output;
        let probe = !NO_PROBE.contains(&name.split(':').next().unwrap_or_default());
        let mut rates = BTreeSet::new();
        let mut add = |ranges: Vec<SupportedStreamConfigRange>| {
            for r in ranges {
                let (lo, hi) = (r.min_sample_rate(), r.max_sample_rate());
                if lo == hi {
                    rates.insert(lo);
                }
                rates.extend(COMMON_RATES_HZ.iter().filter(|&&x| (lo..=hi).contains(&x)));
            }
        };
        if probe
            && input
            && let Ok(r) = d.supported_input_configs()
        {
            add(r.collect());
        }
        if probe
            && output
            && let Ok(r) = d.supported_output_configs()
        {
            add(r.collect());
        }
        let description = description_name(&d);
        infos.push(DeviceInfo {
            default_input,
            default_output,
            name,
            input,
            output,
            sample_rates_hz: rates.into_iter().collect(),
            description,
        });
    }
    Ok(infos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(ch: u16, lo: u32, hi: u32, f: SampleFormat) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(
            ch,
            lo,
            hi,
            SupportedBufferSize::Range { min: 64, max: 8192 },
            f,
        )
    }

    #[test]
    fn prefers_48k_mono_i16_with_10ms_period() {
        let ranges = [
            range(2, 8_000, 192_000, SampleFormat::F32),
            range(1, 8_000, 192_000, SampleFormat::F32),
            range(1, 8_000, 192_000, SampleFormat::I16),
            range(1, 44_100, 44_100, SampleFormat::I16),
        ];
        let (c, f) = choose_config(&ranges).unwrap();
        assert_eq!(
            (c.sample_rate, c.channels, f),
            (48_000, 1, SampleFormat::I16)
        );
        assert_eq!(c.buffer_size, BufferSize::Fixed(480));
    }

    #[test]
    fn closest_rate_beats_mono() {
        let ranges = [
            range(1, 44_100, 44_100, SampleFormat::I16),
            range(2, 48_000, 48_000, SampleFormat::I32),
            range(1, 96_000, 96_000, SampleFormat::I16),
            range(4, 48_000, 48_000, SampleFormat::I16),
        ];
        let (c, f) = choose_config(&ranges).unwrap();
        assert_eq!(
            (c.sample_rate, c.channels, f),
            (48_000, 2, SampleFormat::I32)
        );
        let only_cd = [range(2, 44_100, 44_100, SampleFormat::I16)];
        assert_eq!(choose_config(&only_cd).unwrap().0.sample_rate, 44_100);
        assert!(choose_config(&[]).is_none());
    }
}
