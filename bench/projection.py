#!/usr/bin/env python3
"""Projects data-parallel scaling from one machine's measurements.

A step on N machines costs its compute time t (one machine's forward,
backward and update of its own batch, measured with nabla-bench) plus the
part of the gradient all-reduce that the backward does not hide. A ring
all-reduce of S bytes over links of bandwidth B with a per-message latency
alpha takes

    T(N) = 2 (N - 1) alpha + 2 (N - 1) / N * S / B

(2 (N - 1) steps, each moving S / N bytes). Two bounds on the efficiency
E = t / (t + exposed) are printed: no overlap (exposed = T) and overlap
with the whole backward (exposed = max(0, T - backward), the backward
taken as 2/3 of the step). Throughput is N E times one machine's; the
last column is the largest power-of-two N at which E is still 50 %: past
it, each machine spends more time waiting for the network than computing,
and data parallelism stops paying. (The global batch, N times one
machine's, grows too; how large a batch the optimizer tolerates is a
separate limit, not modelled here.)

    python3 bench/projection.py --model lenet5:0.85:61706 --model gpt:105:875520

Each --model is NAME:STEP_MS:PARAMETERS (float32 gradients: 4 bytes each).
"""
import argparse

LINKS = [("10 Gbit/s", 10e9 / 8, 10e-6), ("100 Gbit/s", 100e9 / 8, 3e-6)]
MACHINES = [2, 8, 64, 512]
BACKWARD_SHARE = 2.0 / 3.0


def ring_seconds(n, size_bytes, bandwidth, alpha):
    return 2 * (n - 1) * alpha + 2 * (n - 1) / n * size_bytes / bandwidth


def efficiency(step, n, size_bytes, bandwidth, alpha, overlap):
    t = ring_seconds(n, size_bytes, bandwidth, alpha)
    exposed = max(0.0, t - BACKWARD_SHARE * step) if overlap else t
    return step / (step + exposed)


def last_worth(step, size_bytes, bandwidth, alpha, overlap):
    n = 1
    while n < 1 << 16 and efficiency(step, 2 * n, size_bytes, bandwidth, alpha, overlap) >= 0.5:
        n *= 2
    return n


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="NAME:STEP_MS:PARAMETERS")
    args = parser.parse_args()
    print("| model | link | all-reduce ms at N = " + ", ".join(str(n) for n in MACHINES)
          + " | efficiency no overlap / overlap at N = " + ", ".join(str(n) for n in MACHINES)
          + " | largest N at 50 % efficiency (no overlap / overlap) |")
    print("|---|---|---|---|---|")
    for spec in args.model:
        name, step_ms, params = spec.split(":")
        step, size = float(step_ms) / 1e3, 4 * int(params)
        for link, bandwidth, alpha in LINKS:
            times = ", ".join("%.2f" % (1e3 * ring_seconds(n, size, bandwidth, alpha)) for n in MACHINES)
            effs = ", ".join("%.0f / %.0f %%" % (100 * efficiency(step, n, size, bandwidth, alpha, False),
                                                 100 * efficiency(step, n, size, bandwidth, alpha, True))
                             for n in MACHINES)
            worth = "%s / %s" % tuple(str(n) if n < 1 << 16 else ">= 65536" for n in (
                last_worth(step, size, bandwidth, alpha, False), last_worth(step, size, bandwidth, alpha, True)))
            print("| %s (%.2f ms/step, %.1f MB) | %s | %s | %s | %s |" % (name, 1e3 * step, size / 1e6, link, times,
                                                                        effs, worth))


if __name__ == "__main__":
    main()
