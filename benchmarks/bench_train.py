"""Training and evaluation throughput of the lab network: minidl against PyTorch CPU.

    python benchmarks/bench_train.py                # ~1.5-2 minutes
    python benchmarks/bench_train.py --quick        # smoke run, ~20 s
    python benchmarks/bench_train.py --threads 1 --json out.json

Measures images/s of a training step (forward, loss, backward, SGD update) at
batch 50 and 256 and of evaluation (forward only, eval mode) at batch 1000, for
minidl (float32) and for the same network in PyTorch (float32, same threads).
Each framework runs in its own worker process; after a warm-up (>= 60 steps and
>= 1.5 s: the first ~50 steps run up to 2x slower) the two take turns, round by
round (minidl, torch, minidl, ...), so drift of the machine hits both; the
medians of the rounds are compared. Then the GEMM ceiling: float32 GFLOP/s of
numpy's matmul (OpenBLAS) and of minidl's own product (``ops.matmul``, gemm.c)
on large square matrices and on the network's own products, and the fraction
of the higher ceiling a training step reaches.
"""
import argparse

try:
    from . import _harness as H
except ImportError:  # run as a script: benchmarks/ is on sys.path
    import _harness as H

CONFIGS = (("train", 50), ("train", 256), ("eval", 1000))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both frameworks (default: the cores this process may use)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds per framework (default 7)")
    p.add_argument("--round-seconds", type=float, default=None, help="length of a round (default 1.5)")
    p.add_argument("--quick", action="store_true", help="3 short rounds, short warm-up: a smoke run")
    p.add_argument("--no-torch", action="store_true", help="minidl only")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    args = p.parse_args(argv)
    args.threads = args.threads or H.core_count()
    if args.quick:
        defaults = dict(rounds=3, round_seconds=0.4, warm_steps=20, warm_seconds=0.4, gemm_seconds=0.15,
                        gemm_rounds=1, gemm_batches=[50])
    else:
        defaults = dict(rounds=7, round_seconds=1.5, warm_steps=60, warm_seconds=1.5, gemm_seconds=0.5,
                        gemm_rounds=3, gemm_batches=[50, 256])
    args.rounds = args.rounds or defaults["rounds"]
    args.round_seconds = args.round_seconds or defaults["round_seconds"]
    for k in ("warm_steps", "warm_seconds", "gemm_seconds", "gemm_rounds", "gemm_batches"):
        setattr(args, k, defaults[k])
    return args


def out(line=""):
    print(line, flush=True)


def fmt_rate(values):
    return f"{H.median(values):>8,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv=None):
    args = parse_args(argv)
    monitor = H.CpuMonitor().start()
    machine = H.machine_info()
    result = {"machine": machine, "settings": {k: v for k, v in vars(args).items() if k != "json"}}
    out("minidl benchmark: lab network throughput, minidl vs PyTorch CPU")
    for line in H.machine_lines(machine):
        out(line)

    workers = {}
    try:
        workers["minidl"] = H.Worker("minidl", args.threads)
        if args.no_torch:
            out("torch        : skipped (--no-torch)")
        elif not H.torch_available():
            out("torch        : not installed - PyTorch comparison skipped (pip install torch)")
        else:
            try:
                workers["torch"] = H.Worker("torch", args.threads)
            except Exception as exc:  # noqa: BLE001 - the minidl half still runs
                out(f"torch        : failed to start ({exc}) - PyTorch comparison skipped")
        frameworks = list(workers)
        mi = workers["minidl"].info
        result["minidl"] = mi
        out(f"minidl       : {mi['minidl_version']} ({mi['minidl_path']}), backend {mi['backend']}, "
            f"OpenMP kernel threads {mi['omp_threads']}, OMP_WAIT_POLICY={mi['omp_wait_policy']}")
        out(f"numpy        : {mi['numpy']}, BLAS {mi['blas']} (core {mi['blas_core']}, "
            f"threads {mi['blas_threads']}"
            + (f", OPENBLAS_CORETYPE={mi['openblas_coretype_env']}" if mi['openblas_coretype_env'] else "")
            + ")")
        if "torch" in workers:
            ti = workers["torch"].info
            result["torch"] = ti
            out(f"torch        : {ti['torch']} ({ti['libraries']}, CPU capability {ti['cpu_capability']}), "
                f"torch.set_num_threads({args.threads}) -> {ti['threads']} threads")
        out(f"threads      : {args.threads} for {'both' if 'torch' in workers else 'minidl'} (OMP/OPENBLAS/MKL_NUM_THREADS={args.threads} in each "
            f"worker{'' if 'torch' not in workers else ', torch.set_num_threads'})")
        out("dtype        : float32; random MNIST-shaped inputs (N, 1, 28, 28) in [0, 1), labels 0-9")
        out("network      : conv16 5x5 same, maxpool 2, ReLU, conv32 5x5 same, maxpool 2, ReLU, flatten, "
            "FC 1568->512, ReLU, FC 512->10; softmax cross-entropy; plain SGD lr 0.01")
        out("train step   : minidl Trainer.train_step(x, y); torch zero_grad, forward, CrossEntropyLoss, "
            "backward, SGD step, loss.item(), number correct")
        out("eval         : forward only; minidl net.eval() + net.forward(x); torch net.eval() under "
            "torch.inference_mode()")
        out(f"timing       : one process per framework; per configuration a warm-up of >= {args.warm_steps} "
            f"steps and >= {args.warm_seconds} s each, then {args.rounds} alternating rounds "
            f"({' / '.join(frameworks)} / ...) of >= {args.round_seconds} s, {H.SETTLE_SECONDS} s apart; "
            f"median images/s of the rounds")
        if args.quick:
            out("             (--quick: a smoke run, figures are rough)")
        out()

        # -------------------------------------------------------- throughput
        header = f"{'configuration':<22}{'minidl img/s (min-max)':>30}"
        if "torch" in workers:
            header += f"{'torch img/s (min-max)':>30}{'minidl/torch':>14}"
        out(header)
        rates = {}
        for mode, batch in CONFIGS:
            key = f"{mode} batch {batch}"
            warm = dict(mode=mode, batch=batch, seconds=args.warm_seconds,
                        min_steps=args.warm_steps if mode == "train" else 3)
            for fw in frameworks:
                workers[fw].call(cmd="run", **warm)
                H.settle()
            per = {fw: [] for fw in frameworks}
            for _ in range(args.rounds):
                for fw in frameworks:
                    r = workers[fw].call(cmd="run", mode=mode, batch=batch, seconds=args.round_seconds,
                                         min_steps=1)
                    per[fw].append(r["images_per_s"])
                    H.settle()
            entry = {fw: {"rounds": per[fw], "median": H.median(per[fw])} for fw in frameworks}
            line = f"{key:<22}{fmt_rate(per['minidl']):>30}"
            if "torch" in per:
                entry["ratio_minidl_over_torch"] = entry["minidl"]["median"] / entry["torch"]["median"]
                line += f"{fmt_rate(per['torch']):>30}{entry['ratio_minidl_over_torch']:>14.2f}"
            rates[key] = entry
            out(line)
        result["throughput"] = rates
        if "torch" in workers:
            out("(minidl/torch: ratio of the median images/s; > 1 means minidl is faster)")
        out()

        # ------------------------------------------------------ GEMM ceiling
        size = 2048
        square = {fw: [] for fw in frameworks}
        own = []   # minidl's ops.matmul on the square, when its gemm.c kernels run
        for i in range(args.gemm_rounds):
            for fw in frameworks:
                g = workers[fw].call(cmd="gemm", sizes=[size], batches=[], seconds=args.gemm_seconds)
                square[fw].append(g["square"][str(size)]["gflops"])
                if "minidl_gflops" in g["square"][str(size)]:
                    own.append(g["square"][str(size)]["minidl_gflops"])
                H.settle()
        shapes = workers["minidl"].call(cmd="gemm", sizes=[], batches=args.gemm_batches,
                                        seconds=args.gemm_seconds)["lab_shapes"]
    finally:
        for w in workers.values():
            w.close()
    disturbance = monitor.stop()

    numpy_ceiling = H.median(square["minidl"])
    ceiling = max(numpy_ceiling, H.median(own)) if own else numpy_ceiling
    result["gemm"] = {"square_size": size, "numpy_gflops_rounds": square["minidl"], "numpy_gflops": numpy_ceiling,
                      "minidl_gflops_rounds": own, "ceiling_gflops": ceiling, "lab_shapes": shapes}
    out(f"GEMM ceiling (float32): numpy matmul {size}x{size}x{size}: {numpy_ceiling:,.0f} GFLOP/s "
        f"(median of {len(square['minidl'])} rounds, best {max(square['minidl']):,.0f})"
        f" [OpenBLAS core {mi['blas_core']}, {mi['blas_threads']} threads]")
    if own:
        out(f"                        minidl ops.matmul {size}^3: {H.median(own):,.0f} GFLOP/s "
            f"(fast path {mi.get('fast')}, {mi['omp_threads']} OpenMP threads; what minidl's layers run)")
    if "torch" in square:
        tc = H.median(square["torch"])
        result["gemm"]["torch_mm_gflops_rounds"] = square["torch"]
        result["gemm"]["torch_mm_gflops"] = tc
        out(f"                        torch.mm {size}x{size}x{size}:     {tc:,.0f} GFLOP/s (MKL, for reference)")
    for batch, s in shapes.items():
        out(f"  the network's products at batch {batch} as whole-batch matrices, minidl's operand layouts "
            f"(ms, GFLOP/s):")
        out(f"    {'':<40}{'np.matmul':>19}{'ops.matmul':>19}")
        for r in s["rows"]:
            out(f"    {r['gemm']:<40}{r['numpy_seconds'] * 1e3:>8.3f} {r['numpy_gflops']:>8.0f}"
                f"  {r['seconds'] * 1e3:>8.3f} {r['gflops']:>8.0f}")
        out(f"    {'all ' + str(len(s['rows'])) + ' products of a training step':<40}"
            f"{s['numpy_seconds'] * 1e3:>8.3f} {s['flops'] / s['numpy_seconds'] / 1e9:>8.0f}"
            f"  {s['seconds'] * 1e3:>8.3f} {s['gflops']:>8.0f} -> alone they allow "
            f"{s['images_per_s_bound']:,.0f} img/s")
    out("  (for float32 the Conv layers run these products one image at a time, with the image's\n"
        "   columns in cache: ops.fast.conv_forward/conv_backward; the FC layers run them as shown)")
    flops = H.lab_net_flops()
    result["flops_per_image"] = {"forward": flops["forward_total"], "train_step": flops["train_total"],
                                 "detail": flops}
    out(f"FLOPs per image (counted by hand, _harness.lab_net_flops): forward {flops['forward_total'] / 1e6:.2f} "
        f"MFLOP, training step {flops['train_total'] / 1e6:.2f} MFLOP "
        f"(3 x forward - conv1's input gradient)")
    out(f"achieved (median img/s x FLOPs per image), as a fraction of the {size} ceiling "
        f"({ceiling:,.0f} GFLOP/s, the faster of the two products):")
    achieved = {}
    for key, entry in rates.items():
        per_image = flops["train_total"] if key.startswith("train") else flops["forward_total"]
        for fw in frameworks:
            gf = entry[fw]["median"] * per_image / 1e9
            frac = gf / ceiling
            achieved[f"{fw} {key}"] = {"gflops": gf, "fraction_of_ceiling": frac,
                                       "fraction_of_numpy_ceiling": gf / numpy_ceiling}
            extra = ""
            batch = key.split()[-1]
            if fw == "minidl" and key.startswith("train") and batch in shapes:
                step_s = int(batch) / entry[fw]["median"]
                share = shapes[batch]["seconds"] / step_s
                achieved[f"{fw} {key}"]["gemm_share_of_step"] = share
                extra = (f"; whole-batch GEMMs would take {shapes[batch]['seconds'] * 1e3:.1f} of "
                         f"{step_s * 1e3:.1f} ms per step ({100 * share:.0f}%)")
            if fw == "torch" and "torch" in square:
                extra = f" ({100 * gf / H.median(square['torch']):.0f}% of torch.mm's own ceiling)"
            out(f"  {fw:<7}{key:<18}{gf:>7.1f} GFLOP/s = {100 * frac:>5.1f}% of the ceiling{extra}")
    result["achieved"] = achieved
    return H.finish(result, disturbance, machine["cores"], args.json, out)


if __name__ == "__main__":
    main()
