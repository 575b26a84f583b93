#!/usr/bin/env python3
"""PESQ-WB (ITU-T P.862.2) of each Opus complexity's decode against the reference.

Reads the 16 kHz WAV files written by
`cargo run --release -p ringside-audio --example opus_complexity -- SPEECH.wav --out DIR`
(ref16k.wav and c<N>_16k.wav) and prints one MOS-LQO per complexity. Internal measurement only
(docs/performance.md, "Opus encoder complexity"); needs `pip install numpy pesq`.
"""
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
    for complexity in range(10, -1, -1):
        _, deg = load(f"{directory}/c{complexity}_16k.wav")
        n = min(len(ref), len(deg))
        print(f"complexity {complexity:>2}: PESQ-WB {pesq(rate, ref[:n], deg[:n], 'wb'):.3f}")


if __name__ == "__main__":
    main()
