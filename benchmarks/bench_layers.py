"""Where a training step of the lab network spends its time, layer by layer.

    python benchmarks/bench_layers.py               # ~40 s: compiled backend, then the NumPy reference
    python benchmarks/bench_layers.py --no-numpy    # the active backend only
    python benchmarks/bench_layers.py --batch 256 --reps 100 --json layers.json

For every layer of the lab net at batch 50 (float32): forward, input gradient
(``backward_inputs``), parameter gradient (``backward_params``) and the combined
``backprop`` that ``Sequential.backward`` really calls (Conv shares one transpose
of the upstream gradient between its two products there), in milliseconds: the
median over many repetitions after a warm-up. The repetitions are whole
instrumented training steps, so every layer sees the data and caches it sees in
training; two kinds alternate: (A) forward, then each layer's two backward
methods timed separately; (B) forward, then each layer's ``backprop`` as training
runs it, and the SGD step. The first layer's input gradient is never needed
(``Sequential.backward`` skips it) and is not measured. A third kind (C), also
interleaved, times ``Trainer.train_step`` whole, to check that the parts add up.

A second table times the kernels under the layers (``minidl.ops``: the fused
image-by-image convolution, or im2col/col2im with the products and layout
copies; max pooling; the FC products), at the shapes of this network.

With the NumPy reference backend (the default also runs it, in a subprocess with
MINIDL_BACKEND=numpy, since the backend is chosen when minidl is imported) a
last table compares the two backends layer by layer.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    from . import _harness as H
except ImportError:  # run as a script
    import _harness as H


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--reps", type=int, default=200, help="instrumented steps of each kind (default 200)")
    p.add_argument("--warmup", type=int, default=60, help="untimed training steps first (default 60)")
    p.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference backend run")
    p.add_argument("--numpy-reps", type=int, default=60, help="repetitions for the NumPy backend run")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    p.add_argument("--quick", action="store_true", help="30 repetitions, 20 warm-up steps: a smoke run")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # the subprocess run
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.warmup, args.numpy_reps = min(args.reps, 30), min(args.warmup, 20), min(args.numpy_reps, 15)
    return args


def measure(batch, reps, warmup):
    """Per-layer and per-phase timings; returns a dict of medians in seconds."""
    import time

    if H.REPO not in sys.path:
        sys.path.insert(0, H.REPO)
    import numpy as np
    from minidl import ops
    from minidl.layers import SoftmaxCrossEntropy
    from minidl.models import lab_net
    from minidl.optim import SGD
    from minidl.trainer import Trainer

    clock = time.perf_counter
    rng = np.random.default_rng(0)
    net = lab_net(dtype=np.float32, rng=0)
    loss = SoftmaxCrossEntropy()
    opt = SGD(lr=0.01)
    trainer = Trainer(net, loss, opt, batch_size=batch)
    data = [(rng.random((batch, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, batch)) for _ in range(4)]
    layers = list(net.layers)
    names = [layer.name for layer in layers]
    for i in range(warmup):
        trainer.train_step(*data[i % len(data)])

    keys = ("forward", "input", "param", "backprop")
    t = {k: [[] for _ in layers] for k in keys}
    t_loss, t_opt, t_step, t_fwd, t_bwd = [], [], [], [], []
    # SGD with momentum 0.9 (not the lab's recipe) times its update on copies of the parameters
    opt_momentum, shadow, t_opt_momentum = SGD(lr=0.01, momentum=0.9), None, []
    shapes = []
    for rep in range(3 * reps):
        x, y = data[rep % len(data)]
        kind = rep % 3
        if kind == 2:  # C: the whole step, as the Trainer runs it
            s = clock()
            trainer.train_step(x, y)
            t_step.append(clock() - s)
            continue
        h = x
        s_all = clock()
        for i, layer in enumerate(layers):
            s = clock()
            h = layer.forward(h)
            t["forward"][i].append(clock() - s)
            if rep == 0:
                shapes.append(tuple(h.shape))
        t_fwd.append(clock() - s_all)
        s = clock()
        loss.forward(h, y)
        g = loss.backward_inputs(h, y)
        t_loss.append(clock() - s)
        pairs = []
        s_all = clock()
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            if kind == 0:  # A: the two lab methods, separately
                s = clock()
                layer_pairs = layer.backward_params(g)
                t["param"][i].append(clock() - s)
                if i > 0:
                    s = clock()
                    g = layer.backward_inputs(g)
                    t["input"][i].append(clock() - s)
            else:  # B: backprop as Sequential.backward calls it
                s = clock()
                g, layer_pairs = layer.backprop(g, need_input_grad=i > 0)
                t["backprop"][i].append(clock() - s)
            pairs[:0] = layer_pairs
        if kind == 1:
            t_bwd.append(clock() - s_all)
            s = clock()
            opt.step(pairs)
            t_opt.append(clock() - s)
            if shadow is None:
                shadow = [p.copy() for p, _ in pairs]
            s = clock()
            opt_momentum.step([(copy, grad) for copy, (_, grad) in zip(shadow, pairs)])
            t_opt_momentum.append(clock() - s)

    def med(v):
        return H.median(v) if v else None

    rows = []
    for i, layer in enumerate(layers):
        rows.append({"layer": names[i], "type": type(layer).__name__, "output_shape": shapes[i],
                     **{k: med(t[k][i]) for k in keys}})
    return {"batch": batch, "reps": reps, "warmup": warmup, "backend": ops.BACKEND, "rows": rows,
            "loss": med(t_loss), "optimizer": med(t_opt), "optimizer_momentum": med(t_opt_momentum),
            "train_step": med(t_step),
            "forward_whole": med(t_fwd), "backward_whole": med(t_bwd),
            "numpy": np.__version__}


def measure_kernels(batch, reps):
    """Each piece of work inside the layers, alone, at the lab net's shapes.

    Rows {"layer", "phase" (forward / backward), "kernel", "seconds", "key"}; "key"
    names the minidl.ops call (function, shape) so ``measure_kernels_in_step`` can
    put the same kernel's time inside a real training step beside it. The pieces
    are those of conv.py / linear.py / pool.py / activations.py, re-enacted with
    the same calls and layouts (GEMMs: ``_harness.lab_gemms``). For float32 with
    the fast path, Conv is one call each way (``ops.fast.conv_forward`` /
    ``ops.fast.conv_backward``); otherwise its im2col, product, bias and copy pieces.
    """
    if H.REPO not in sys.path:
        sys.path.insert(0, H.REPO)
    import numpy as np
    from minidl import ops

    rng = np.random.default_rng(1)
    n = batch
    rows = []
    gemms = {label.split()[0] + " " + label.split()[1]: (label, build) for label, _, build in H.lab_gemms(batch)}

    def add(layer, phase, label, fn, key=None):
        sec, _ = H.time_call(fn, min_seconds=0.0, min_reps=reps, warmup=5)
        rows.append({"layer": layer, "phase": phase, "kernel": label, "seconds": sec, "key": key})

    def add_gemm(layer, phase, which):
        label, build = gemms[f"{layer} {which}"]
        a, b, o = build(np, rng)
        fn = lambda a=a, b=b, o=o: ops.matmul(a, b, out=o)  # noqa: E731 - what the layers call
        add(layer, phase, "GEMM " + label.split(None, 2)[2].strip(), fn)

    def fused_conv_pieces(conv, c, f, side, x):
        w = rng.standard_normal((f, c, 5, 5), dtype=np.float32)
        bias = rng.random(f, dtype=np.float32)
        geometry = ((1, 1), (2, 2), (1, 1))
        add(conv, "forward", f"ops.fast.conv_forward (N,{c},{side},{side}) -> (N,{f},{side},{side})",
            lambda: ops.fast.conv_forward(x, w, bias, *geometry), key=("conv_forward", x.shape))
        g = rng.random((n, f, side, side), dtype=np.float32)
        need = conv != "conv1"   # the first layer's input gradient is never computed
        add(conv, "backward", "ops.fast.conv_backward" + (" with dL/dx" if need else " without dL/dx"),
            lambda: ops.fast.conv_backward(x, w, g, *geometry, need), key=("conv_backward", x.shape))

    def im2col_conv_pieces(conv, c, f, side, x):
        k, m = c * 25, n * side * side
        cols = ops.im2col(x, 5, 5, 1, 1, 2, 2)
        add(conv, "forward", f"im2col (N,{c},{side},{side}) -> ({k}, {m})",
            lambda: ops.im2col(x, 5, 5, 1, 1, 2, 2), key=("im2col", x.shape))
        add_gemm(conv, "forward", "fwd")
        y2d = rng.random((f, m), dtype=np.float32)
        bias = rng.random(f, dtype=np.float32)
        add(conv, "forward", f"bias add ({f}, {m}) += b[:, None]", lambda: y2d.__iadd__(bias[:, None]))

        def to_nchw():
            y = np.empty((n, f, side, side), np.float32)
            y[...] = y2d.reshape(f, n, side, side).transpose(1, 0, 2, 3)
            return y
        add(conv, "forward", "copy (F, N*OH*OW) -> (N, F, OH, OW)", to_nchw)
        g = rng.random((n, f, side, side), dtype=np.float32)
        gy = np.empty((f, m), np.float32)

        def to_fm():
            gy.reshape(f, n, side, side)[...] = g.transpose(1, 0, 2, 3)
        add(conv, "backward", "copy dL/dy (N, F, OH, OW) -> (F, N*OH*OW)", to_fm)
        add_gemm(conv, "backward", "dW")
        add(conv, "backward", f"bias grad ({f}, {m}).sum(axis=1)", lambda: gy.sum(axis=1))
        if conv == "conv2":
            add_gemm(conv, "backward", "dX")
            add(conv, "backward", f"col2im ({k}, {m}) -> (N,{c},{side},{side})",
                lambda: ops.col2im(cols, x.shape, 5, 5, 1, 1, 2, 2), key=("col2im", x.shape))

    for conv, pool, relu, c, f, side in (("conv1", "pool1", "relu1", 1, 16, 28),
                                         ("conv2", "pool2", "relu2", 16, 32, 14)):
        x = rng.random((n, c, side, side), dtype=np.float32)
        if ops.fast.available(np.float32):
            fused_conv_pieces(conv, c, f, side, x)
        else:
            im2col_conv_pieces(conv, c, f, side, x)
        xp = rng.standard_normal((n, f, side, side), dtype=np.float32)
        out, argmax = ops.maxpool_forward(xp, 2, 2, 2, 2)
        add(pool, "forward", f"maxpool forward (N,{f},{side},{side})",
            lambda xp=xp: ops.maxpool_forward(xp, 2, 2, 2, 2), key=("maxpool_forward", xp.shape))
        gp = rng.standard_normal(out.shape, dtype=np.float32)
        add(pool, "backward", "maxpool backward", lambda gp=gp, a=argmax, s=xp.shape: ops.maxpool_backward(gp, a, s),
            key=("maxpool_backward", xp.shape))
        r = rng.standard_normal(out.shape, dtype=np.float32)
        add(relu, "forward", "mask x > 0 and np.maximum(x, 0)",
            lambda r=r: (r > 0, np.maximum(r, 0, dtype=r.dtype)))
        mask = r > 0
        add(relu, "backward", "grad * mask", lambda r=r, mask=mask: r * mask)
    for fc, d, mm in (("fc3", 1568, 512), ("logits", 512, 10)):
        add_gemm(fc, "forward", "fwd")
        y = rng.random((n, mm), dtype=np.float32)
        b = rng.random(mm, dtype=np.float32)
        add(fc, "forward", f"bias add ({n}, {mm}) += b", lambda y=y, b=b: y.__iadd__(b))
        add_gemm(fc, "backward", "dW")
        add(fc, "backward", f"bias grad ({n}, {mm}).sum(axis=0)", lambda y=y: y.sum(axis=0))
        add_gemm(fc, "backward", "dX")
    return rows


def measure_kernels_in_step(batch, reps, warmup):
    """The minidl.ops kernels timed inside real training steps (wrapped, then restored)."""
    import time

    import numpy as np
    from minidl import ops
    from minidl.layers import SoftmaxCrossEntropy
    from minidl.models import lab_net
    from minidl.optim import SGD
    from minidl.trainer import Trainer

    times = {}
    originals = {(ops, name): getattr(ops, name)
                 for name in ("im2col", "col2im", "maxpool_forward", "maxpool_backward")}
    originals.update({(ops.fast, name): getattr(ops.fast, name) for name in ("conv_forward", "conv_backward")})

    def wrap(name, fn):
        def timed(*args, **kwargs):
            shape = tuple(args[1]) if name == "col2im" else tuple(args[-1] if name == "maxpool_backward"
                                                                   else args[0].shape)
            s = time.perf_counter()
            result = fn(*args, **kwargs)
            times.setdefault((name, shape), []).append(time.perf_counter() - s)
            return result
        return timed

    rng = np.random.default_rng(0)
    trainer = Trainer(lab_net(dtype=np.float32, rng=0), SoftmaxCrossEntropy(), SGD(lr=0.01), batch_size=batch)
    data = [(rng.random((batch, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, batch)) for _ in range(4)]
    for i in range(warmup):
        trainer.train_step(*data[i % len(data)])
    try:
        for (module, name), fn in originals.items():
            setattr(module, name, wrap(name, fn))
        for i in range(reps):
            trainer.train_step(*data[i % len(data)])
    finally:
        for (module, name), fn in originals.items():
            setattr(module, name, fn)
    return {key: H.median(v) for key, v in times.items()}


def print_kernels(kernels, in_step, res, out):
    """Pieces alone, grouped by layer and phase, against the layer's time in a training step."""
    rows_by_layer = {r["layer"]: r for r in res["rows"]}
    out(f"{'':<4}{'piece':<52}{'alone':>9}{'in a step':>11}")
    for layer in dict.fromkeys(r["layer"] for r in kernels):
        lr = rows_by_layer[layer]
        for phase in ("forward", "backward"):
            pieces = [r for r in kernels if r["layer"] == layer and r["phase"] == phase]
            if not pieces:
                continue
            measured = lr["forward"] if phase == "forward" else lr["backprop"]
            total = sum(r["seconds"] for r in pieces)
            out(f"{layer} {phase}: layer {measured * 1e3:.3f} ms in a step, its pieces alone {total * 1e3:.3f} ms"
                f" ({measured / total:.2f}x)")
            for r in pieces:
                situ = in_step.get(tuple(r["key"])) if r["key"] else None
                situ_text = f"{situ * 1e3:>11.3f}" if situ is not None else f"{'':>11}"
                out(f"{'':<4}{r['kernel']:<52}{r['seconds'] * 1e3:>9.3f}{situ_text}")


def fmt_ms(v, width=10):
    return f"{'-':>{width}}" if v is None else f"{v * 1e3:>{width}.3f}"


def print_table(res, out):
    rows = res["rows"]
    out(f"{'layer':<10}{'type':<9}{'output shape':<18}{'forward':>10}{'input grad':>12}{'param grad':>12}"
        f"{'backprop':>10}{'fwd+bprop':>11}{'share':>7}")
    step_parts = sum(r["forward"] for r in rows) + sum(r["backprop"] for r in rows) + res["loss"] + res["optimizer"]
    for r in rows:
        total = r["forward"] + r["backprop"]
        param = r["param"] if r["type"] in ("Conv", "FC") else None
        inp = r["input"]
        inp_text = fmt_ms(inp, 12) if inp is not None else f"{'(skipped)':>12}"
        out(f"{r['layer']:<10}{r['type']:<9}{str(tuple(r['output_shape'])):<18}{fmt_ms(r['forward'])}"
            f"{inp_text}{fmt_ms(param, 12)}"
            f"{fmt_ms(r['backprop'])}{fmt_ms(total, 11)}{100 * total / step_parts:>6.1f}%")
    tf = sum(r["forward"] for r in rows)
    ti = sum(r["input"] or 0 for r in rows)
    tp = sum(r["param"] or 0 for r in rows)
    tb = sum(r["backprop"] for r in rows)
    out(f"{'total of the layers':<37}{fmt_ms(tf)}{fmt_ms(ti, 12)}{fmt_ms(tp, 12)}{fmt_ms(tb)}"
        f"{fmt_ms(tf + tb, 11)}{100 * (tf + tb) / step_parts:>6.1f}%")
    out(f"{'loss (forward + backward_inputs)':<37}{fmt_ms(res['loss'], 55)}{100 * res['loss'] / step_parts:>6.1f}%")
    out(f"{'SGD step (optimizer.step)':<37}{fmt_ms(res['optimizer'], 55)}"
        f"{100 * res['optimizer'] / step_parts:>6.1f}%")
    if res.get("optimizer_momentum") is not None:
        out(f"{'  (with momentum 0.9: not in the sum)':<37}{fmt_ms(res['optimizer_momentum'], 55)}")
    out(f"{'sum of the parts':<37}{fmt_ms(step_parts, 55)}")
    out(f"{'Trainer.train_step, timed whole':<37}{fmt_ms(res['train_step'], 55)}"
        f"   -> {res['batch'] / res['train_step']:,.0f} img/s")
    out(f"(whole forward {res['forward_whole'] * 1e3:.3f} ms, whole backward {res['backward_whole'] * 1e3:.3f} ms; "
        f"'backprop' is what training runs: for Conv it is less than input + param grad, one transpose "
        f"of dL/dy serving both)")


def main(argv=None):
    args = parse_args(argv)
    out = (lambda line="": None) if args.quiet else (lambda line="": print(line, flush=True))
    monitor = H.CpuMonitor().start()
    machine = H.machine_info()
    res = measure(args.batch, args.reps, args.warmup)
    kernels = measure_kernels(args.batch, args.reps)
    in_step = measure_kernels_in_step(args.batch, min(args.reps, 100), args.warmup)
    result = {"machine": machine, "compiled": res, "kernels": kernels,
              "kernels_in_step": [{"kernel": k[0], "shape": list(k[1]), "seconds": v} for k, v in in_step.items()]}

    if not args.quiet:
        out("minidl benchmark: per-layer time of a lab-net training step")
        for line in H.machine_lines(machine):
            out(line)
        blas_threads, core = H.openblas_info()
        out(f"minidl       : backend {res['backend']}, numpy {res['numpy']} (OpenBLAS core {core}, "
            f"threads {blas_threads}), OpenMP threads {H.openmp_threads()}, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
        out(f"setup        : lab net, float32, batch {args.batch}, SGD lr 0.01; {args.warmup} warm-up steps; "
            f"median of {args.reps} instrumented steps per kind (3 kinds interleaved); milliseconds")
        out()
        out(f"backend '{res['backend']}' (batch {args.batch}, ms):")
        print_table(res, out)
        out()
        out(f"the pieces of each layer alone (median of {args.reps} back-to-back calls on the same arrays), "
            f"and the minidl.ops kernels timed inside training steps (ms):")
        print_kernels(kernels, in_step, res, out)

    if not args.no_numpy and not args.quiet:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "numpy.json")
            env = dict(os.environ, MINIDL_BACKEND="numpy")
            cmd = [sys.executable, os.path.abspath(__file__), "--quiet", "--no-numpy", "--batch", str(args.batch),
                   "--reps", str(args.numpy_reps), "--warmup", str(min(args.warmup, 30)), "--json", path]
            proc = subprocess.run(cmd, env=env, cwd=H.REPO)
            if proc.returncode == 0:
                with open(path) as f:
                    ref = json.load(f)["compiled"]
                result["numpy_backend"] = ref
                out()
                out(f"backend '{ref['backend']}' (MINIDL_BACKEND=numpy, subprocess; median of {ref['reps']} "
                    f"steps per kind, ms):")
                print_table(ref, out)
                out()
                out("compiled vs numpy reference, fwd+backprop per layer (ms):")
                out(f"{'layer':<10}{'compiled':>10}{'numpy':>10}{'speed-up':>10}")
                for a, b in zip(res["rows"], ref["rows"]):
                    ta, tb = a["forward"] + a["backprop"], b["forward"] + b["backprop"]
                    out(f"{a['layer']:<10}{ta * 1e3:>10.3f}{tb * 1e3:>10.3f}{tb / ta:>9.1f}x")
                out(f"{'step':<10}{res['train_step'] * 1e3:>10.3f}{ref['train_step'] * 1e3:>10.3f}"
                    f"{ref['train_step'] / res['train_step']:>9.1f}x")
            else:
                out(f"(the NumPy reference run failed with exit code {proc.returncode})")

    return H.finish(result, monitor.stop(), machine["cores"], args.json, out, quiet=args.quiet)


if __name__ == "__main__":
    main()
