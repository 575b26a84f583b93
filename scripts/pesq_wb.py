#!/usr/bin/env python3
"""PESQ-WB (ITU-T P.862.2) of each Opus decode in a directory against its reference.

Reads the 16 kHz WAV files written with `--out DIR` by
`cargo run --release -p ringside-audio --example opus_complexity -- SPEECH.wav --out DIR`
(c<N>_16k.wav, one per complexity) or by the `opus_settings` example (one per variant, plus
*_loss10_16k.wav for the lossy decodes), and ref16k.wav; prints one MOS-LQO per file. Internal
measurement only (docs/performance.md, "Opus encoder complexity" and "Opus FEC and bandwidth");
needs `pip install numpy pesq`.
"""
import glob
import os
import sys
import wave

import numpy as np
from pesq import pesq


def load(path):
    with wave.open(path) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        return w.getframerate(), pcm


def main():
    directory = sys.argv[1]
    rate, ref = load(f"{directory}/ref16k.wav")
    for path in sorted(glob.glob(f"{directory}/*_16k.wav")):
        name = os.path.basename(path)[: -len("_16k.wav")]
        _, deg = load(path)
        n = min(len(ref), len(deg))
        print(f"{name:>24}: PESQ-WB {pesq(rate, ref[:n], deg[:n], 'wb'):.3f}")


if __name__ == "__main__":
    main()
