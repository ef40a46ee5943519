"""Training throughput and memory of the lab network against the batch size.

    python benchmarks/bench_scaling.py                  # batch 1, 2, 4, ..., 512; ~2 minutes
    python benchmarks/bench_scaling.py --no-torch --max-batch 128
    python benchmarks/bench_scaling.py --json scaling.json

Throughput: images/s of a training step (Trainer.train_step: forward, loss,
backward, SGD) at each batch size, in a minidl worker process; with PyTorch
installed, the same network in a torch worker, the two alternating round by
round (as bench_train.py). Warm-up per batch size: >= 60 steps and >= 1 s
(at most 4 s for the large batches), then the median of the rounds.

Memory, measured in a fresh Python process per batch size (so nothing of the
other batch sizes is counted), two ways:

* tracemalloc: numpy reports every array it allocates to tracemalloc, so the
  traced memory is exactly the arrays (plus a little Python); it does not see
  OpenBLAS's internal buffers nor the interpreter. The net and its data are
  built after ``tracemalloc.start()``; then three training steps run.
  'peak' is the highest traced memory during those steps minus what was traced
  before them (parameters and the input batch), i.e. what training adds at its
  busiest moment; 'kept' is what stays allocated between steps (the caches each
  layer keeps for backprop and the reused im2col buffers).
* RSS: ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the process's peak
  resident memory, after 5 training steps minus its value after importing
  numpy and minidl: what the operating system really had to provide.

'cache' is ``Sequential.summary``'s count of the activations the layers keep for
backprop (computed, not measured).
"""
import argparse
import json
import os
import subprocess
import sys

try:
    from . import _harness as H
except ImportError:  # run as a script
    import _harness as H


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-batch", type=int, default=512, help="largest batch size (powers of 2 from 1)")
    p.add_argument("--threads", type=int, default=None, help="threads (default: the usable cores)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per framework and batch size")
    p.add_argument("--round-seconds", type=float, default=0.5)
    p.add_argument("--no-torch", action="store_true", help="minidl only")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    p.add_argument("--quick", action="store_true", help="batch 1 to 64, one short round: a smoke run")
    p.add_argument("--memory-one", type=int, metavar="BATCH", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args(argv)
    args.threads = args.threads or H.core_count()
    args.warm_seconds, args.warm_steps, args.warm_max = 1.0, 60, 4.0
    if args.quick:
        args.max_batch, args.rounds, args.round_seconds = min(args.max_batch, 64), 1, 0.3
        args.warm_seconds, args.warm_steps, args.warm_max = 0.3, 20, 1.0
    return args


def memory_one(batch):
    """In a fresh process: memory of training at this batch size (see the module doc)."""
    import gc
    import resource
    import tracemalloc

    if H.REPO not in sys.path:
        sys.path.insert(0, H.REPO)
    import numpy as np
    from minidl.layers import SoftmaxCrossEntropy
    from minidl.models import lab_net
    from minidl.optim import SGD
    from minidl.trainer import Trainer

    def maxrss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    def build():
        rng = np.random.default_rng(0)
        net = lab_net(dtype=np.float32, rng=0)
        trainer = Trainer(net, SoftmaxCrossEntropy(), SGD(lr=0.01), batch_size=batch)
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        return net, trainer, x, y

    rss_imported = maxrss()
    net, trainer, x, y = build()
    for _ in range(5):
        trainer.train_step(x, y)
    rss_trained = maxrss()
    cache = net.summary((1, 28, 28), batch_size=batch, file=open(os.devnull, "w"))["total_cache_bytes"]
    del net, trainer, x, y
    gc.collect()

    tracemalloc.start()
    net, trainer, x, y = build()
    params = sum(a.nbytes for _, a in net.params())
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for _ in range(3):
        trainer.train_step(x, y)
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"batch": batch, "params_bytes": params, "input_bytes": x.nbytes, "traced_before": before,
            "traced_peak_added": peak - before, "traced_kept": after - before, "cache_bytes": cache,
            "rss_after_import": rss_imported, "rss_peak_added": rss_trained - rss_imported}


def main(argv=None):
    args = parse_args(argv)
    if args.memory_one:
        print(json.dumps(memory_one(args.memory_one)), flush=True)
        return None

    def out(line=""):
        print(line, flush=True)

    batches = [b for b in (2 ** i for i in range(20)) if b <= args.max_batch]
    monitor = H.CpuMonitor().start()
    machine = H.machine_info()
    result = {"machine": machine, "settings": {k: v for k, v in vars(args).items() if k not in ("json",)}}
    out("minidl benchmark: throughput and memory against batch size")
    for line in H.machine_lines(machine):
        out(line)

    workers = {}
    rows = {}
    try:
        workers["minidl"] = H.Worker("minidl", args.threads)
        if not args.no_torch:
            if H.torch_available():
                workers["torch"] = H.Worker("torch", args.threads)
            else:
                out("torch        : not installed - PyTorch column skipped")
        frameworks = list(workers)
        mi = workers["minidl"].info
        result["minidl"] = mi
        out(f"minidl       : backend {mi['backend']}, numpy {mi['numpy']} ({mi['blas']}, core {mi['blas_core']}, "
            f"threads {mi['blas_threads']}), OpenMP kernel threads {mi['omp_threads']}")
        if "torch" in workers:
            result["torch"] = workers["torch"].info
            out(f"torch        : {result['torch']['torch']}, {result['torch']['threads']} threads")
        out(f"setup        : lab net, float32, SGD lr 0.01, threads {args.threads}; per batch size a warm-up of "
            f">= {args.warm_steps} steps and >= {args.warm_seconds} s (at most {args.warm_max} s), then "
            f"{args.rounds} alternating rounds of >= {args.round_seconds} s, {H.SETTLE_SECONDS} s apart; "
            f"median images/s")
        out()
        out("training throughput (images/s; ms per step):")
        head = f"{'batch':>6}{'minidl img/s':>14}{'ms/step':>10}"
        if "torch" in workers:
            head += f"{'torch img/s':>14}{'ms/step':>10}{'minidl/torch':>14}"
        out(head)
        for b in batches:
            for fw in frameworks:
                workers[fw].call(cmd="run", mode="train", batch=b, seconds=args.warm_seconds,
                                 min_steps=args.warm_steps, max_seconds=args.warm_max)
                H.settle()
            per = {fw: [] for fw in frameworks}
            for _ in range(args.rounds):
                for fw in frameworks:
                    per[fw].append(workers[fw].call(cmd="run", mode="train", batch=b, seconds=args.round_seconds,
                                                    min_steps=1)["images_per_s"])
                    H.settle()
            row = {fw: {"rounds": per[fw], "median": H.median(per[fw])} for fw in frameworks}
            m = row["minidl"]["median"]
            line = f"{b:>6}{m:>14,.0f}{1e3 * b / m:>10.2f}"
            if "torch" in row:
                t = row["torch"]["median"]
                row["ratio_minidl_over_torch"] = m / t
                line += f"{t:>14,.0f}{1e3 * b / t:>10.2f}{m / t:>14.2f}"
            rows[str(b)] = row
            out(line)
    finally:
        for w in workers.values():
            w.close()
    result["throughput"] = rows

    if not args.no_memory:
        out()
        out("memory of training (minidl, a fresh process per batch size; MiB):")
        out(f"{'batch':>6}{'params+input':>14}{'tracemalloc peak':>18}{'kept':>9}{'cache':>9}"
            f"{'RSS peak':>10}{'  (RSS after import)':>21}")
        mem = {}
        for b in batches:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-one", str(b)],
                                  capture_output=True, text=True, cwd=H.REPO)
            if proc.returncode != 0:
                out(f"{b:>6}  failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            mem[str(b)] = r
            mib = 2 ** 20
            out(f"{b:>6}{(r['params_bytes'] + r['input_bytes']) / mib:>14.1f}{r['traced_peak_added'] / mib:>18.1f}"
                f"{r['traced_kept'] / mib:>9.1f}{r['cache_bytes'] / mib:>9.1f}{r['rss_peak_added'] / mib:>10.1f}"
                f"{r['rss_after_import'] / mib:>21.1f}")
        result["memory"] = mem
        out("tracemalloc peak: the most memory numpy arrays took during a training step beyond the parameters")
        out("  and the input (numpy reports its allocations to tracemalloc); kept: what stays allocated between")
        out("  steps (backprop caches, reused im2col buffers); cache: Sequential.summary's count of the cached")
        out("  activations; RSS peak: ru_maxrss after 5 steps minus ru_maxrss after the imports, in a fresh")
        out("  process (includes allocator slack and BLAS buffers, so it can exceed the tracemalloc peak).")

    return H.finish(result, monitor.stop(), machine["cores"], args.json, out)


if __name__ == "__main__":
    main()
