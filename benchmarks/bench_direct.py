"""Where direct.c's forward pays: direct convolution against im2col + the product, shape by shape.

    python benchmarks/bench_direct.py             # ~30 s
    python benchmarks/bench_direct.py --quick     # a smoke run, a few seconds
    python benchmarks/bench_direct.py --json out.json

``ops/fast/direct.c`` computes a stride-1 convolution's forward straight from the padded
image. With one input channel it always runs; with several it runs only where
``minidl_direct_forward_ok`` says so: output rows that fill at least 7/8 of their
16-float vectors, and at most 800 terms (C*KH*KW) in each sum. This script measures
both ways on the same arrays for a list of shapes, inside and outside those limits, so
that the limits can be checked on any AVX-512 machine: float32, batch 50 (``--batch``),
"same" padding, every thread; per shape the median of the rounds, the two ways
alternating round by round. "ratio" is im2col time / direct time: above 1, direct.c
is faster. The last column says whether direct.c's limits take the shape, and whether
winograd.c comes first for it in training (5x5 kernels with 4 or more channels; its
section in benchmarks/README.md).
"""
import argparse
import sys

try:
    from . import _harness as H
except ImportError:  # run as a script: benchmarks/ is on sys.path
    import _harness as H

# (C, F, K, H=W): input channels, filters, a K x K kernel, the square image's side
SHAPES = [
    (16, 32, 5, 14),    # the lab's conv2
    (16, 32, 5, 28), (8, 16, 5, 28), (3, 16, 5, 32), (3, 64, 3, 32), (32, 32, 5, 28),
    (16, 32, 3, 16), (32, 64, 3, 16), (64, 64, 3, 16), (64, 128, 3, 16), (32, 32, 3, 32),
    (48, 48, 3, 32), (24, 48, 5, 14), (16, 64, 5, 14), (32, 64, 5, 14), (64, 32, 3, 14),
    # outside the limits: too many terms, or rows that leave lanes empty
    (96, 96, 3, 14), (128, 128, 3, 14), (16, 32, 5, 12), (32, 64, 3, 24), (64, 128, 3, 12),
    (16, 32, 5, 10), (16, 16, 3, 20), (16, 32, 5, 8), (16, 32, 5, 7), (64, 64, 3, 8),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per shape (default 5)")
    p.add_argument("--round-seconds", type=float, default=0.1, help="length of a round (default 0.1)")
    p.add_argument("--quick", action="store_true", help="3 short rounds on 6 shapes: a smoke run")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.round_seconds, args.batch = 3, 0.02, min(args.batch, 8)
    return args


def measure(shape, batch, rounds, seconds):
    """{"direct": [s per call of each round], "im2col": [...], "taken": bool} for one shape."""
    import numpy as np
    from minidl.ops import fast

    c, f, k, side = shape
    rng = np.random.default_rng(0)
    x = rng.random((batch, c, side, side), dtype=np.float32)
    w = rng.standard_normal((f, c, k, k)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    pad = k // 2
    geometry = fast._geometry(x.shape, w.shape, (1, 1), (pad, pad), (1, 1))[0]
    y = np.empty((batch, f, side, side), dtype=np.float32)
    work = fast._direct_work(c, geometry)

    def direct():   # direct.c whether or not it would take the shape
        fast._fast.direct_forward_f32(x, w, b, y, work, pad, pad)

    taken = fast._direct("forward", x.shape, geometry)
    real_direct, real_min = fast._direct, fast.WINOGRAD_MIN_CHANNELS

    def im2col():   # the image-by-image im2col + product, whatever _direct and _winograd say
        fast._direct, fast.WINOGRAD_MIN_CHANNELS = (lambda *args: False), 0
        try:
            fast.conv_forward(x, w, b, (1, 1), (pad, pad), (1, 1))
        finally:
            fast._direct, fast.WINOGRAD_MIN_CHANNELS = real_direct, real_min

    times = {"direct": [], "im2col": []}
    for _ in range(rounds):
        for name, fn in (("direct", direct), ("im2col", im2col)):
            times[name].append(H.time_call(fn, min_seconds=seconds, min_reps=3, warmup=1)[0])
    times["taken"] = taken
    times["winograd"] = fast._winograd(x.shape, geometry)   # in training winograd.c comes first
    return times


def main(argv=None):
    args = parse_args(argv)
    if H.REPO not in sys.path:
        sys.path.insert(0, H.REPO)
    import numpy as np
    from minidl.ops import fast

    print("minidl benchmark: direct.c's forward against im2col + the product")
    machine = H.machine_info()
    for line in H.machine_lines(machine):
        print(line)
    print(f"minidl fast  : {fast.status()}")
    if not (fast.available(np.float32) and "avx512" in fast.isas() and fast.ISA == "avx512"):
        print("direct.c does not run here (it needs AVX-512 in use); nothing to measure")
        return 0
    print(f"setup        : float32, batch {args.batch}, 'same' padding, stride 1; median of {args.rounds} "
          f"alternating rounds of >= {args.round_seconds} s each; milliseconds per call")
    print()
    print(f"{'C':>4} {'F':>4} {'K':>3} {'side':>5} {'direct':>9} {'im2col':>9} {'ratio':>7}  taken")
    monitor = H.CpuMonitor().start()
    rows = []
    for shape in SHAPES[:6] if args.quick else SHAPES:
        t = measure(shape, args.batch, args.rounds, args.round_seconds)
        d, i = H.median(t["direct"]), H.median(t["im2col"])
        rows.append({"shape": dict(zip(("C", "F", "K", "side"), shape)), "direct_s": t["direct"],
                     "im2col_s": t["im2col"], "ratio": i / d, "taken": t["taken"],
                     "winograd_first": t["winograd"]})
        print(f"{shape[0]:>4} {shape[1]:>4} {shape[2]:>3} {shape[3]:>5} {d * 1e3:>9.3f} {i * 1e3:>9.3f} "
              f"{i / d:>7.2f}  {'yes' if t['taken'] else 'no'}{' (winograd.c first)' if t['winograd'] else ''}")
    print()
    for taken in (True, False):
        ratios = [r["ratio"] for r in rows if r["taken"] == taken]
        if ratios:
            print(f"{'taken' if taken else 'not taken'} ({len(ratios)} shapes): im2col / direct "
                  f"{min(ratios):.2f}-{max(ratios):.2f}")
    print("(ratio > 1: direct.c is faster. Where it is taken it should be above 1, where it is not, "
          "at or below 1.)")
    H.finish({"machine": machine, "rows": rows}, monitor.stop(), machine["cores"], args.json, print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
