//! G.711 µ-law (PCMU) and A-law (PCMA), with ITU-T G.711 Appendix I packet-loss concealment.
//!
//! # Coding
//! Bit-exact with ITU-T G.711 as implemented by the ITU-T software tool library (G.191 STL,
//! `g711.c`): a negative input is folded with the one's complement (`!x`), so `x` and `-x - 1`
//! share a magnitude and every decision level sits where the standard puts it. The codec is four
//! lookup tables built at compile time by `const fn` (no build script, no runtime init):
//! - µ-law encode: 16 Ki entries indexed by the top 14 bits (µ-law is a 14-bit law);
//! - A-law encode: 4 Ki entries indexed by the top 12 bits (A-law is 13-bit incl. sign);
//! - decode: 256 entries each.
//!
//! One table read per sample, no branches: a 20 ms frame costs well under a microsecond.
//!
//! # Concealment (G.711 Appendix I)
//! Repeating the last frame and fading it clicks at every frame boundary and smears the pitch,
//! because a 20 ms frame is rarely a whole number of pitch periods. Appendix I instead:
//! 1. keeps 48.75 ms of history and delays the output by 3.75 ms (30 samples), so the start of
//!    an erasure can be cross-faded with audio that has not been played yet;
//! 2. estimates the pitch period (40..120 samples, 66..200 Hz) by normalised
//!    cross-correlation, coarse on every 2nd sample then refined;
//! 3. repeats the last pitch period, overlap-adding a quarter period at every join; after 10 and
//!    20 ms it widens the repeated buffer to two and three periods to avoid a buzzy tone;
//! 4. attenuates by 20 % per 10 ms after the first 10 ms, reaching silence at 60 ms;
//! 5. cross-fades the first real frame after the erasure with the synthetic continuation
//!    (3.75 ms plus 4 ms per extra 10 ms erased).
//!
//! Every buffer is a fixed-size array in [`AppendixIPlc`], so decode and conceal never allocate.
//! The cost is a fixed 30-sample (3.75 ms) decoder delay, reported by
//! [`G711Decoder::DELAY_SAMPLES`].

use crate::codec::{CodecError, Decoder, Encoder};

/// G.711 sample rate.
pub const SAMPLE_RATE_HZ: u32 = 8000;

/// Which companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711Law {
    /// µ-law (PCMU, North America / Japan).
    MuLaw,
    /// A-law (PCMA, rest of the world).
    ALaw,
}

// ---------------------------------------------------------------------------------------------
// Tables

/// µ-law code for a 14-bit two's-complement value (`x >> 2` of a 16-bit sample).
const fn ulaw_encode_14(v14: i32) -> u8 {
    // One's complement for negatives, then the 33 bias (difference of the µ- and A-law grids).
    let mut abs = if v14 < 0 { !v14 } else { v14 } + 33;
    if abs > 0x1FFF {
        abs = 0x1FFF;
    }
    let mut i = abs >> 6;
    let mut seg = 1;
    while i != 0 {
        seg += 1;
        i >>= 1;
    }
    let high = 8 - seg;
    let low = 0xF - ((abs >> seg) & 0xF);
    let code = ((high << 4) | low) as u8;
    if v14 >= 0 { code | 0x80 } else { code }
}

/// A-law code for a 12-bit two's-complement value (`x >> 4` of a 16-bit sample).
const fn alaw_encode_12(v12: i32) -> u8 {
    let mut ix = if v12 < 0 { !v12 } else { v12 };
    if ix > 15 {
        let mut exp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            exp += 1;
        }
        ix -= 16;
        ix += exp << 4;
    }
    if v12 >= 0 {
        ix |= 0x80;
    }
    (ix as u8) ^ 0x55
}

const fn ulaw_decode_code(code: u8) -> i16 {
    let m = !code;
    let exponent = ((m >> 4) & 0x7) as i32;
    let mantissa = (m & 0xF) as i32;
    let step = 4 << (exponent + 1);
    let mag = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
    (if code < 0x80 { -mag } else { mag }) as i16
}

const fn alaw_decode_code(code: u8) -> i16 {
    let ix = ((code ^ 0x55) & 0x7F) as i32;
    let exponent = ix >> 4;
    let mut mant = ix & 0xF;
    if exponent > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 8;
    if exponent > 1 {
        mant <<= exponent - 1;
    }
    (if code > 127 { mant } else { -mant }) as i16
}

const fn build_ulaw_encode() -> [u8; 1 << 14] {
    let mut t = [0u8; 1 << 14];
    let mut i = 0;
    while i < (1 << 14) {
        // Index is the 14-bit pattern; sign-extend it back to a value.
        let v = if i >= (1 << 13) {
            i as i32 - (1 << 14)
        } else {
            i as i32
        };
        t[i] = ulaw_encode_14(v);
        i += 1;
    }
    t
}

const fn build_alaw_encode() -> [u8; 1 << 12] {
    let mut t = [0u8; 1 << 12];
    let mut i = 0;
    while i < (1 << 12) {
        let v = if i >= (1 << 11) {
            i as i32 - (1 << 12)
        } else {
            i as i32
        };
        t[i] = alaw_encode_12(v);
        i += 1;
    }
    t
}

const fn build_decode(law: G711Law) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            G711Law::MuLaw => ulaw_decode_code(i as u8),
            G711Law::ALaw => alaw_decode_code(i as u8),
        };
        i += 1;
    }
    t
}

static ULAW_ENCODE: [u8; 1 << 14] = build_ulaw_encode();
static ALAW_ENCODE: [u8; 1 << 12] = build_alaw_encode();
static ULAW_DECODE: [i16; 256] = build_decode(G711Law::MuLaw);
static ALAW_DECODE: [i16; 256] = build_decode(G711Law::ALaw);

/// Encodes one sample to µ-law.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    ULAW_ENCODE[((sample as u16) >> 2) as usize]
}

/// Decodes one µ-law code.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encodes one sample to A-law.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    ALAW_ENCODE[((sample as u16) >> 4) as usize]
}

/// Decodes one A-law code.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

// ---------------------------------------------------------------------------------------------
// Encoder / decoder

/// G.711 encoder. Any frame length is accepted (the law is sample by sample).
#[derive(Debug)]
pub struct G711Encoder {
    law: G711Law,
}

impl G711Encoder {
    /// A stateless encoder for `law`.
    pub fn new(law: G711Law) -> Self {
        G711Encoder { law }
    }
}

impl Encoder for G711Encoder {
    fn sample_rate_hz(&self) -> u32 {
        SAMPLE_RATE_HZ
    }

    fn channels(&self) -> u8 {
        1
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError> {
        match self.law {
            G711Law::MuLaw => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
            G711Law::ALaw => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
        }
        Ok(pcm.len())
    }
}

/// G.711 decoder with Appendix I concealment (output delayed by [`Self::DELAY_SAMPLES`]).
#[derive(Debug)]
pub struct G711Decoder {
    law: G711Law,
    /// Length of the last payload: the length of one concealed frame.
    frame_samples: usize,
    plc: AppendixIPlc,
}

impl G711Decoder {
    /// Fixed output delay added by the concealment's look-back cross-fade (3.75 ms).
    pub const DELAY_SAMPLES: usize = POVERLAPMAX;
    /// Largest payload accepted (120 ms); larger ones are treated as corrupt.
    pub const MAX_PAYLOAD_BYTES: usize = 960;

    /// A decoder for `law`; `frame_ms` is the frame length concealed before the first payload.
    pub fn new(law: G711Law, frame_ms: u32) -> Result<Self, CodecError> {
        if !((5..=120).contains(&frame_ms) && frame_ms.is_multiple_of(5)) {
            return Err(CodecError::UnsupportedConfig(
                "G.711 frame_ms must be 5..=120 in 5 ms steps",
            ));
        }
        Ok(G711Decoder {
            law,
            frame_samples: (frame_ms * SAMPLE_RATE_HZ / 1000) as usize,
            plc: AppendixIPlc::new(),
        })
    }

    fn check_out(&self, needed: usize, out: &[i16]) -> Result<(), CodecError> {
        if out.len() < needed {
            return Err(CodecError::OutputTooSmall {
                needed_samples: needed,
                got_samples: out.len(),
            });
        }
        Ok(())
    }
}

impl Decoder for G711Decoder {
    fn sample_rate_hz(&self) -> u32 {
        SAMPLE_RATE_HZ
    }

    fn channels(&self) -> u8 {
        1
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let codec = match self.law {
            G711Law::MuLaw => "PCMU",
            G711Law::ALaw => "PCMA",
        };
        if payload.is_empty() || payload.len() > Self::MAX_PAYLOAD_BYTES {
            return Err(CodecError::CorruptPayload {
                codec,
                payload_bytes: payload.len(),
                reason: "G.711 payload must be 1..=960 bytes",
            });
        }
        self.check_out(payload.len(), out)?;
        let out = &mut out[..payload.len()];
        let table = match self.law {
            G711Law::MuLaw => &ULAW_DECODE,
            G711Law::ALaw => &ALAW_DECODE,
        };
        for (o, &c) in out.iter_mut().zip(payload) {
            *o = table[c as usize];
        }
        self.plc.add_to_history(out);
        self.frame_samples = payload.len();
        Ok(payload.len())
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.check_out(self.frame_samples, out)?;
        self.plc.conceal(&mut out[..self.frame_samples]);
        Ok(self.frame_samples)
    }
}

// ---------------------------------------------------------------------------------------------
// G.711 Appendix I concealment

/// Block the algorithm works in: 10 ms at 8 kHz.
const FRAMESZ: usize = 80;
const PITCH_MIN: usize = 40;
const PITCH_MAX: usize = 120;
const PITCHDIFF: usize = PITCH_MAX - PITCH_MIN;
/// Longest quarter-period overlap, and the output delay.
const POVERLAPMAX: usize = PITCH_MAX >> 2;
const HISTORYLEN: usize = PITCH_MAX * 3 + POVERLAPMAX;
/// Coarse pitch search decimation.
const NDEC: usize = 2;
/// Correlation window (20 ms).
const CORRLEN: usize = 160;
const CORRBUFLEN: usize = CORRLEN + PITCH_MAX;
/// Energy floor so silence does not produce a spurious correlation peak.
const CORRMINPOWER: f32 = 250.0;
/// Extra end-of-erasure overlap per 10 ms erased (4 ms).
const EOVERLAPINCR: usize = 32;
/// Attenuation per 10 ms after the first 10 ms.
const ATTENFAC: f32 = 0.2;
const ATTENINCR: f32 = ATTENFAC / FRAMESZ as f32;
/// After this many erased samples (60 ms) the output is silence.
const ERASE_SILENT_SAMPLES: usize = 6 * FRAMESZ;

/// ITU-T G.711 Appendix I packet-loss concealment at 8 kHz (see the module docs).
///
/// Feed every received frame through [`AppendixIPlc::add_to_history`] (it is replaced in place
/// by the delayed output) and call [`AppendixIPlc::conceal`] for every lost frame. Frames of
/// any length work; internally the algorithm steps in 10 ms blocks counted from the start of
/// the erasure. Fixed-size state, no allocation.
#[derive(Clone)]
pub struct AppendixIPlc {
    /// Signal history, newest last; the output is read `POVERLAPMAX` samples before the end.
    history: [i16; HISTORYLEN],
    /// Float copy of the history taken at the start of an erasure, holding the pitch buffer.
    pitchbuf: [f32; HISTORYLEN],
    /// Original last quarter period, kept for the overlap-adds.
    lastq: [f32; POVERLAPMAX],
    pitch: usize,
    poverlap: usize,
    /// Read offset inside the pitch buffer.
    poffset: usize,
    /// Length of the repeated pitch buffer (1..3 periods), ending at `HISTORYLEN`.
    pitchblen: usize,
    /// Samples erased so far in the current erasure (0 = receiving).
    erased_samples: usize,
}

impl std::fmt::Debug for AppendixIPlc {
    // Not derived: the buffers are hundreds of samples.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendixIPlc")
            .field("pitch", &self.pitch)
            .field("erased_samples", &self.erased_samples)
            .finish_non_exhaustive()
    }
}

impl Default for AppendixIPlc {
    fn default() -> Self {
        Self::new()
    }
}

impl AppendixIPlc {
    /// Fresh state (history of silence).
    pub fn new() -> Self {
        AppendixIPlc {
            history: [0; HISTORYLEN],
            pitchbuf: [0.0; HISTORYLEN],
            lastq: [0.0; POVERLAPMAX],
            pitch: PITCH_MIN,
            poverlap: PITCH_MIN >> 2,
            poffset: 0,
            pitchblen: PITCH_MIN,
            erased_samples: 0,
        }
    }

    /// Records a received frame and replaces it with the delayed output.
    pub fn add_to_history(&mut self, frame: &mut [i16]) {
        if self.erased_samples > 0 {
            // End of an erasure: fade from the synthetic continuation into the real signal.
            let blocks = self.erased_samples.div_ceil(FRAMESZ);
            let olen = (self.poverlap + (blocks - 1) * EOVERLAPINCR)
                .min(FRAMESZ)
                .min(frame.len());
            let mut synth = [0i16; FRAMESZ];
            self.get_fe_speech(&mut synth[..olen]);
            self.overlap_add_at_end(&mut frame[..olen], &synth[..olen]);
            self.erased_samples = 0;
        }
        for block in frame.chunks_mut(FRAMESZ) {
            self.save_speech(block);
        }
    }

    /// Synthesises `out.len()` samples of a lost frame.
    pub fn conceal(&mut self, out: &mut [i16]) {
        let mut done = 0;
        while done < out.len() {
            // Steps end on 10 ms boundaries counted from the start of the erasure.
            let into_block = self.erased_samples % FRAMESZ;
            let n = (FRAMESZ - into_block).min(out.len() - done);
            let block = &mut out[done..done + n];
            self.conceal_block(block, into_block == 0);
            self.erased_samples += n;
            self.save_speech(block);
            done += n;
        }
    }

    /// One piece of a 10 ms erased block; `block_start` is true on its first piece.
    fn conceal_block(&mut self, out: &mut [i16], block_start: bool) {
        let block_index = self.erased_samples / FRAMESZ;
        if self.erased_samples == 0 {
            self.start_erasure();
            self.get_fe_speech(out);
        } else if self.erased_samples >= ERASE_SILENT_SAMPLES {
            out.fill(0);
        } else if block_start && (block_index == 1 || block_index == 2) {
            // Widen the pitch buffer by one period, cross-fading the join.
            let olen = self.poverlap.min(out.len());
            let mut tail = [0i16; POVERLAPMAX];
            let save = self.poffset;
            self.get_fe_speech(&mut tail[..olen]);
            self.poffset = save;
            while self.poffset > self.pitch {
                self.poffset -= self.pitch;
            }
            self.pitchblen += self.pitch;
            let start = HISTORYLEN - self.pitchblen;
            self.overlap_add_pitchbuf(start - self.poverlap);
            self.get_fe_speech(out);
            overlap_add_i16(&tail[..olen], &mut out[..olen]);
            self.scale(out);
        } else {
            self.get_fe_speech(out);
            self.scale(out);
        }
    }

    fn start_erasure(&mut self) {
        for (f, &h) in self.pitchbuf.iter_mut().zip(self.history.iter()) {
            *f = f32::from(h);
        }
        self.pitch = self.find_pitch();
        self.poverlap = self.pitch >> 2;
        let po = self.poverlap;
        self.lastq[..po].copy_from_slice(&self.pitchbuf[HISTORYLEN - po..]);
        self.poffset = 0;
        self.pitchblen = self.pitch;
        self.overlap_add_pitchbuf(HISTORYLEN - self.pitchblen - po);
        // The not-yet-played tail of the history now ends in the cross-fade.
        for i in HISTORYLEN - po..HISTORYLEN {
            self.history[i] = clip_i16(self.pitchbuf[i]);
        }
    }

    /// Cross-fades the saved last quarter period (fading out) with `pitchbuf[r..r + poverlap]`
    /// (fading in), writing over the last quarter period of the pitch buffer.
    fn overlap_add_pitchbuf(&mut self, r: usize) {
        let n = self.poverlap;
        let o = HISTORYLEN - n;
        let incr = 1.0 / n as f32;
        let (mut lw, mut rw) = (1.0 - incr, incr);
        for i in 0..n {
            let t = lw * self.lastq[i] + rw * self.pitchbuf[r + i];
            self.pitchbuf[o + i] = t.clamp(-32768.0, 32767.0);
            lw -= incr;
            rw += incr;
        }
    }

    /// Reads the next samples of the repeated pitch buffer.
    fn get_fe_speech(&mut self, out: &mut [i16]) {
        let start = HISTORYLEN - self.pitchblen;
        let mut done = 0;
        while done < out.len() {
            let cnt = (self.pitchblen - self.poffset).min(out.len() - done);
            let src = &self.pitchbuf[start + self.poffset..start + self.poffset + cnt];
            for (o, &s) in out[done..done + cnt].iter_mut().zip(src) {
                *o = clip_i16(s);
            }
            self.poffset += cnt;
            if self.poffset == self.pitchblen {
                self.poffset = 0;
            }
            done += cnt;
        }
    }

    /// Linear attenuation: 20 % per 10 ms, starting after the first 10 ms of the erasure.
    fn scale(&self, out: &mut [i16]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = (f32::from(*o) * gain_at(self.erased_samples + i)) as i16;
        }
    }

    /// Cross-fades the start of the first good frame with the (attenuated) synthetic signal.
    fn overlap_add_at_end(&self, s: &mut [i16], synth: &[i16]) {
        let n = s.len();
        let incr = 1.0 / n as f32;
        for i in 0..n {
            let rw = (i + 1) as f32 * incr;
            let lw = (1.0 - rw) * gain_at(self.erased_samples + i);
            s[i] = clip_i16(lw * f32::from(synth[i]) + rw * f32::from(s[i]));
        }
    }

    /// Appends `block` (≤ 80 samples) to the history and replaces it with the delayed output.
    fn save_speech(&mut self, block: &mut [i16]) {
        let n = block.len();
        debug_assert!(n <= FRAMESZ);
        self.history.copy_within(n.., 0);
        self.history[HISTORYLEN - n..].copy_from_slice(block);
        block
            .copy_from_slice(&self.history[HISTORYLEN - n - POVERLAPMAX..HISTORYLEN - POVERLAPMAX]);
    }

    /// Pitch period in samples, by normalised cross-correlation of the last 20 ms against the
    /// history 40..120 samples earlier.
    fn find_pitch(&self) -> usize {
        let end = HISTORYLEN;
        let l = &self.pitchbuf[end - CORRLEN..end];
        let r0 = end - CORRBUFLEN;
        let buf = &self.pitchbuf;
        let norm = |corr: f32, energy: f32| corr / energy.max(CORRMINPOWER).sqrt();

        // Coarse search on every NDEC-th sample.
        let mut energy: f32 = (0..CORRLEN)
            .step_by(NDEC)
            .map(|i| buf[r0 + i] * buf[r0 + i])
            .sum();
        let corr: f32 = (0..CORRLEN).step_by(NDEC).map(|i| buf[r0 + i] * l[i]).sum();
        let mut best = norm(corr, energy);
        let mut best_j = 0;
        let mut j = NDEC;
        while j <= PITCHDIFF {
            let r = r0 + j;
            energy -= buf[r - NDEC] * buf[r - NDEC];
            energy += buf[r - NDEC + CORRLEN] * buf[r - NDEC + CORRLEN];
            let corr: f32 = (0..CORRLEN).step_by(NDEC).map(|i| buf[r + i] * l[i]).sum();
            let c = norm(corr, energy);
            if c >= best {
                best = c;
                best_j = j;
            }
            j += NDEC;
        }

        // Fine search around the coarse peak.
        let lo = best_j.saturating_sub(NDEC - 1);
        let hi = (best_j + NDEC - 1).min(PITCHDIFF);
        let mut energy: f32 = (0..CORRLEN)
            .map(|i| buf[r0 + lo + i] * buf[r0 + lo + i])
            .sum();
        let corr: f32 = (0..CORRLEN).map(|i| buf[r0 + lo + i] * l[i]).sum();
        let mut best = norm(corr, energy);
        let mut best_j = lo;
        for j in lo + 1..=hi {
            let r = r0 + j;
            energy -= buf[r - 1] * buf[r - 1];
            energy += buf[r - 1 + CORRLEN] * buf[r - 1 + CORRLEN];
            let corr: f32 = (0..CORRLEN).map(|i| buf[r + i] * l[i]).sum();
            let c = norm(corr, energy);
            if c > best {
                best = c;
                best_j = j;
            }
        }
        PITCH_MAX - best_j
    }
}

/// Concealment gain `erased` samples into an erasure: 1 for 10 ms, then −20 % per 10 ms.
fn gain_at(erased: usize) -> f32 {
    (1.0 - erased.saturating_sub(FRAMESZ) as f32 * ATTENINCR).clamp(0.0, 1.0)
}

/// `out = fade_out(a) + fade_in(out)` over `out.len()` samples.
fn overlap_add_i16(a: &[i16], out: &mut [i16]) {
    let n = out.len();
    if n == 0 {
        return;
    }
    let incr = 1.0 / n as f32;
    let (mut lw, mut rw) = (1.0 - incr, incr);
    for i in 0..n {
        let t = lw * f32::from(a[i]) + rw * f32::from(out[i]);
        out[i] = clip_i16(t);
        lw -= incr;
        rw += incr;
    }
}

#[inline]
fn clip_i16(x: f32) -> i16 {
    // `as` saturates; this also drops the fraction like the reference's (short) cast.
    x.clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
    }

    #[test]
    fn plc_silence_after_60_ms() {
        let mut plc = AppendixIPlc::new();
        let mut f: Vec<i16> = (0..160)
            .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
            .collect();
        plc.add_to_history(&mut f);
        let mut out = [0i16; 160];
        for _ in 0..3 {
            plc.conceal(&mut out);
        }
        // 80 ms erased; with the 30-sample output delay, all but the first 30 samples of the
        // 4th frame lie past 60 ms.
        plc.conceal(&mut out);
        assert!(out[POVERLAPMAX..].iter().all(|&s| s == 0));
    }
}
