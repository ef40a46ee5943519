"""Shared pieces of the benchmark scripts.

* the machine description every script prints (CPU model, ISA flags, cores, versions, load);
* the training steps the workers time: ``minidl_idiomatic_step`` (Sequential's one
  backprop) and ``minidl_lab_loop_step`` (the lab's loop over the layers), beside
  ``Trainer.train_step`` and torch's loop;
* ``AVX2_ENV``, the variables that hold every library to AVX2, and ``minidl_isa`` /
  ``torch_isa``, which say from a worker's own report what it actually ran;
* ``lab_net_flops``: the FLOPs of the lab network, counted by hand;
* ``lab_gemms``: the matrix products minidl runs for one training step, with
  the exact operand layouts of ``minidl/layers/conv.py`` and ``linear.py``;
* worker processes: each framework runs in its own Python process, driven
  round by round over a pipe (JSON lines), so the two frameworks never share
  an OpenMP runtime, a BLAS thread pool or environment variables (minidl sets
  ``OMP_WAIT_POLICY=PASSIVE`` for its process, torch must not inherit it);
* ``CpuMonitor``: how much CPU *other* processes used while a benchmark ran.

Importing this module has no side effects: numpy, minidl and torch are only
imported inside functions (the worker sets its thread variables first).

Run directly only as a worker: ``python _harness.py --worker minidl|torch``.
"""
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# the lab network on MNIST (minidl/models.py: lab_net defaults)
LAB = dict(in_channels=1, image_size=28, conv1=16, conv2=32, kernel=5, fc=512, classes=10)


# ------------------------------------------------------------------ machine
def _cpuinfo_field(name):
    """The first value of a field of /proc/cpuinfo ('model name', 'flags', ...), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def _lscpu_field(name):
    """A field of `lscpu` ('Model name', 'Flags', ...), or None (no lscpu, not Linux)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def cpu_model():
    """'model name' of /proc/cpuinfo, else lscpu's 'Model name', else platform.processor()."""
    model = _cpuinfo_field("model name") or _lscpu_field("Model name")
    if model:
        return model
    import platform
    return platform.processor() or "unknown"


def cpu_id():
    """Vendor, family, model and stepping: they tell apart CPUs that a VM names alike."""
    fields = [("vendor_id", ""), ("cpu family", "family "), ("model", "model "), ("stepping", "stepping ")]
    parts = [prefix + value for key, prefix in fields if (value := _cpuinfo_field(key))]
    return ", ".join(parts) or None


#: the instruction-set extensions that decide which kernels the three libraries pick
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_flags(wanted=ISA_FLAGS):
    """The flags in ``wanted`` that this CPU has (/proc/cpuinfo, else lscpu)."""
    line = _cpuinfo_field("flags") or _lscpu_field("Flags") or ""
    have = set(line.split())
    return [w for w in wanted if w in have]


def cpu_mhz():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def core_count():
    """Cores this process may run on (the affinity mask), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average():
    try:
        return tuple(round(v, 2) for v in os.getloadavg())
    except OSError:
        return None


def machine_info():
    return {"cpu_model": cpu_model(), "cpu_id": cpu_id(), "cpu_flags": cpu_flags(),
            "cpu_flags_checked": list(ISA_FLAGS), "cpu_mhz": cpu_mhz(),
            "cores": core_count(), "os_cpu_count": os.cpu_count(), "python": sys.version.split()[0],
            "load_average_1_5_15": load_average(),
            "env": {k: v for k, v in sorted(os.environ.items())
                    if k.startswith(("OPENBLAS_", "OMP_", "GOMP_", "KMP_", "MKL_", "MINIDL_", "ATEN_", "ONEDNN_", "DNNL_"))}}


def machine_lines(info):
    flags = ", ".join(info["cpu_flags"]) or "?"
    mhz = f", {info['cpu_mhz']:.0f} MHz" if info.get("cpu_mhz") else ""
    missing = ", ".join(f for f in info.get("cpu_flags_checked", []) if f not in info["cpu_flags"])
    ident = f"; {info['cpu_id']}" if info.get("cpu_id") else ""
    return [f"CPU          : {info['cpu_model']}{ident}{mhz}",
            f"ISA flags    : has {flags}" + (f"; lacks {missing}" if missing else ""),
            f"cores        : {info['cores']} usable (os.cpu_count() = {info['os_cpu_count']})",
            f"python       : {info['python']}",
            f"load average : {info['load_average_1_5_15']} (1, 5, 15 min) at start",
            "environment  : " + (" ".join(f"{k}={v}" for k, v in info["env"].items()) or "(no thread/BLAS variables)")]


class CpuMonitor:
    """CPU time used on the whole machine versus by this process and its reaped children.

    ``others_cpu_s`` is the CPU time of everything else (test suites, other users)
    while the benchmark ran; ``steal_s`` the time the hypervisor gave to other guests.
    Both disturb timings. Linux only (/proc/stat); elsewhere the figures are None.
    """

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @staticmethod
    def _stat():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return {"busy": user + nice + system + irq + softirq, "steal": steal,
                "total": sum(fields[:8])}

    @staticmethod
    def _own():
        import resource
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    def start(self):
        self.t0, self.s0, self.own0 = time.perf_counter(), self._stat(), self._own()
        return self

    def stop(self):
        """Call after the workers exited (their CPU time is counted once reaped)."""
        wall = time.perf_counter() - self.t0
        s1, own = self._stat(), self._own() - self.own0
        if self.s0 is None or s1 is None:
            return {"wall_s": wall, "own_cpu_s": own, "others_cpu_s": None, "steal_s": None}
        busy = (s1["busy"] - self.s0["busy"]) / self.tick
        return {"wall_s": round(wall, 1), "own_cpu_s": round(own, 1),
                "others_cpu_s": round(max(busy - own, 0.0), 1),
                "steal_s": round((s1["steal"] - self.s0["steal"]) / self.tick, 1)}


def disturbance_line(mon, cores):
    if mon.get("others_cpu_s") is None:
        return "disturbance  : unknown (no /proc/stat)"
    share = mon["others_cpu_s"] / max(mon["wall_s"] * cores, 1e-9)
    return (f"disturbance  : other processes used {mon['others_cpu_s']:.1f} CPU-s during the "
            f"{mon['wall_s']:.0f} s run ({100 * share:.0f}% of {cores} cores), hypervisor steal "
            f"{mon['steal_s']:.1f} s; load average at end {load_average()}")


# -------------------------------------------------------------------- FLOPs
def finish(result, disturbance, cores, json_path, out, quiet=False):
    """Close a benchmark's output: the disturbance line, then the JSON file if asked for."""
    result["disturbance"] = disturbance
    if not quiet:
        out()
        out(disturbance_line(disturbance, cores))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
        out(f"wrote {json_path}")
    return result


def lab_net_flops(**overrides):
    """FLOPs of the lab network per image, counted by hand (multiply-add = 2 FLOPs).

    A 'same' convolution with F filters of C x KH x KW on an H x W input is a
    product (F x K) @ (K x H*W) per image with K = C*KH*KW; an FC layer D -> M is
    (1 x D) @ (D x M). Each product of an (a x b) by a (b x c) matrix costs 2*a*b*c.

        forward      conv:  2 * F * K * OH*OW      fc:  2 * D * M
        param grad   dW = dY X^T is the same product, transposed: the same count
        input grad   dX = W^T dY: the same count again, for every layer but the
                     first (nobody needs dL/d(image); Sequential.backward skips it)

    so train = 3 * forward - forward(conv1). For the lab net (1x28x28 -> conv16 ->
    pool -> conv32 -> pool -> FC512 -> FC10):

        conv1   2*16*( 1*25)*784 =   627,200
        conv2   2*32*(16*25)*196 = 5,017,600
        fc3     2*1568*512       = 1,605,632
        logits  2*512*10         =    10,240       forward 7,260,672 FLOP/image
        training step: 3 * 7,260,672 - 627,200 = 21,154,816 FLOP/image (~21.2 MFLOP)

    Biases, ReLU, pooling, im2col/col2im, the loss and the SGD update move data but
    do almost no arithmetic (< 0.5% of the total); they are not counted.
    """
    p = dict(LAB, **overrides)
    k, side = p["kernel"], p["image_size"]
    c1, c2 = p["conv1"], p["conv2"]
    flat = c2 * (side // 4) ** 2
    fwd = {
        "conv1": 2 * c1 * (p["in_channels"] * k * k) * side * side,
        "conv2": 2 * c2 * (c1 * k * k) * (side // 2) ** 2,
        "fc3": 2 * flat * p["fc"],
        "logits": 2 * p["fc"] * p["classes"],
    }
    param = dict(fwd)
    inputs = {name: (0 if name == "conv1" else f) for name, f in fwd.items()}
    forward = sum(fwd.values())
    train = forward + sum(param.values()) + sum(inputs.values())
    return {"forward": fwd, "param_grad": param, "input_grad": inputs,
            "forward_total": forward, "train_total": train}


def lab_gemms(batch):
    """The matrix products of one minidl training step at this batch size.

    (label, FLOPs, builder) where builder(np, rng) -> (a, b, out) with the operand
    layouts minidl uses (C order, or a transposed view = Fortran order):
      Conv forward   W2d (F,K) @ X (K, N*OH*OW) into a reused buffer
      Conv dW        X (K,M) @ dY.T (M,F)          -- (X dY^T)^T, conv.py's shape
      Conv dX cols   W2d.T (K,F) @ dY (F,M) into a reused buffer
      FC forward     x (N,D) @ W.T (D,M)
      FC dW          dY.T (M,N) @ x (N,D)
      FC dX          dY (N,M) @ W (M,D)
    """
    p = LAB
    k, side = p["kernel"], p["image_size"]
    convs = [("conv1", p["in_channels"] * k * k, p["conv1"], batch * side * side, True),
             ("conv2", p["conv1"] * k * k, p["conv2"], batch * (side // 2) ** 2, False)]
    fcs = [("fc3", p["conv2"] * (side // 4) ** 2, p["fc"]), ("logits", p["fc"], p["classes"])]
    out = []

    def f32(np, rng, *shape):
        return rng.standard_normal(shape, dtype=np.float32)

    for name, kk, f, m, first in convs:
        out.append((f"{name} fwd  ({f}x{kk})@({kk}x{m})", 2 * f * kk * m,
                    lambda np, rng, kk=kk, f=f, m=m: (f32(np, rng, f, kk), f32(np, rng, kk, m),
                                                      np.empty((f, m), np.float32))))
        out.append((f"{name} dW   ({kk}x{m})@({m}x{f})^T", 2 * f * kk * m,
                    lambda np, rng, kk=kk, f=f, m=m: (f32(np, rng, kk, m), f32(np, rng, f, m).T, None)))
        if not first:
            out.append((f"{name} dX   ({kk}x{f})^T@({f}x{m})", 2 * f * kk * m,
                        lambda np, rng, kk=kk, f=f, m=m: (f32(np, rng, f, kk).T, f32(np, rng, f, m),
                                                          np.empty((kk, m), np.float32))))
    for name, d, m in fcs:
        out.append((f"{name} fwd  ({batch}x{d})@({m}x{d})^T", 2 * batch * d * m,
                    lambda np, rng, d=d, m=m: (f32(np, rng, batch, d), f32(np, rng, m, d).T, None)))
        out.append((f"{name} dW   ({batch}x{m})^T@({batch}x{d})", 2 * batch * d * m,
                    lambda np, rng, d=d, m=m: (f32(np, rng, batch, m).T, f32(np, rng, batch, d), None)))
        out.append((f"{name} dX   ({batch}x{m})@({m}x{d})", 2 * batch * d * m,
                    lambda np, rng, d=d, m=m: (f32(np, rng, batch, m), f32(np, rng, m, d), None)))
    return out


def time_call(fn, min_seconds=0.2, min_reps=5, warmup=2):
    """Median seconds of one call of fn(), over at least min_reps calls and min_seconds."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(times)


#: pause between two timed rounds: the threads of the framework that just ran may
#: still be spinning (OpenBLAS's helpers busy-wait ~0.1 s after a product; OpenMP
#: threads spin briefly), which would slow the other framework's next round
SETTLE_SECONDS = 0.2


def settle():
    time.sleep(SETTLE_SECONDS)


def median(values):
    return statistics.median(values) if values else float("nan")


# ------------------------------------------------------- instruction sets
#: the environment of the "both held to AVX2" workers: what a laptop without AVX-512 runs.
#: Each library reads only its own variables; both workers get all of them, and only
#: those two workers do (the benchmark's own process and the other workers are untouched).
#: numpy's OpenBLAS is not among them: OPENBLAS_CORETYPE is the machine's to set, never
#: minidl's (some machines here set it; users' machines do not). It does not matter to
#: the held minidl: on its fast path every product runs minidl's own gemm.c, not OpenBLAS.
AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",       # PyTorch's own vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",        # PyTorch's convolutions (oneDNN)
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",   # PyTorch's matrix products (MKL)
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",   # numpy's own loops: AVX2 (X86_V3)
    "MINIDL_FAST_ISA": "avx2",           # minidl's fast path (minidl.ops.fast)
}

#: OpenBLAS core types whose kernels use AVX-512
_OPENBLAS_AVX512_CORES = ("skylakex", "cooperlake", "sapphirerapids")


def numpy_simd():
    """The AVX-512 groups numpy's own loops may use in this process ([] when held to AVX2)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:          # an older numpy: nothing to report
        return []
    return [k for k in ("X86_V4", "AVX512_SKX", "AVX512_ICL", "AVX512_SPR") if features.get(k)]


def minidl_isa(info):
    """What a minidl worker ran, in words, and whether it stayed within AVX2 (True/False).

    Held: the fast path off or on without AVX-512, and numpy's own loops without
    AVX-512. numpy's OpenBLAS counts only when the fast path is off (then minidl's
    products run there).
    """
    fast = info.get("fast_status") or "?"
    core = info.get("blas_core") or "?"
    simd = info.get("numpy_avx512", [])
    fast_on = fast.startswith("on")
    fast_avx512 = fast_on and ("avx-512" in fast.lower() or "avx512" in fast.lower())
    blas_avx512 = not fast_on and core.lower() in _OPENBLAS_AVX512_CORES
    words = (f"fast path {fast}; numpy loops {'AVX-512 (' + ' '.join(simd) + ')' if simd else 'AVX2'}; "
             f"numpy's OpenBLAS core {core}{'' if not fast_on else ' (not used by the fast path)'}")
    return words, not (fast_avx512 or blas_avx512 or simd)


def torch_isa(info):
    """What a torch worker ran, in words, and whether it stayed within AVX2 (True/False).

    ATen's capability is read back from the process; oneDNN and MKL cannot be asked,
    so their variables are quoted as set in that worker.
    """
    cap = info.get("cpu_capability") or "?"
    capped = [f"{k}={info['env'][k]}" for k in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
              if info.get("env", {}).get(k)]
    text = f"ATen CPU capability {cap}" + (f" (oneDNN/MKL: {', '.join(capped)})" if capped else "")
    return text, "avx512" not in cap.lower() and len(capped) == 2


# ------------------------------------------------------------ worker process
class Worker:
    """One framework in its own process; ``call(cmd=..., ...)`` runs a command there."""

    def __init__(self, framework, threads, env=None):
        child_env = dict(os.environ)
        # the same thread count for every pool either framework may use
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            child_env[var] = str(threads)
        child_env.update(env or {})
        self.framework = framework
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", framework, "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=child_env, cwd=REPO)
        self.info = self.call(cmd="info")

    def call(self, **command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.framework} worker died (exit code {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.framework} worker: {reply['error']}")
        return reply

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def torch_available():
    import importlib.util
    return importlib.util.find_spec("torch") is not None


# ---------------------------------------------------------- worker internals
def _loaded_library(fragment):
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if fragment in os.path.basename(path) and path.startswith("/"):
                    return path
    except OSError:
        pass
    return None


def openblas_info():
    """(threads, core type) of numpy's OpenBLAS, read through ctypes; (None, None) if unknown."""
    import ctypes
    path = _loaded_library("openblas")
    if path is None:
        return None, None
    lib = ctypes.CDLL(path)
    threads = core = None
    for suffix in ("64_", "_64_", ""):
        for prefix in ("scipy_openblas_", "openblas_"):
            fn = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            if fn is not None and threads is None:
                threads = int(fn())
            fn = getattr(lib, f"{prefix}get_corename{suffix}", None)
            if fn is not None and core is None:
                fn.restype = ctypes.c_char_p
                core = fn().decode()
    return threads, core


def openmp_threads():
    """omp_get_max_threads() of the OpenMP runtime minidl's kernels use, if loaded."""
    import ctypes
    path = _loaded_library("libgomp") or _loaded_library("libomp")
    if path is None:
        return None
    try:
        return int(ctypes.CDLL(path).omp_get_max_threads())
    except (AttributeError, OSError):
        return None


def minidl_idiomatic_step(net, loss_fn, optimizer, x, y):
    """One training step as ``Trainer.train_step`` does it, without its extras.

    forward, loss, dL/dlogits, one backprop through the ``Sequential`` (which skips
    the first layer's input gradient, as the Trainer asks), SGD update. No finite
    check, no count of correct answers: the same work as torch's loop without
    ``loss.item()``.
    """
    from minidl.layers.base import call_backprop
    logits = net.forward(x)
    loss = loss_fn.forward(logits, y)
    grad_logits = loss_fn.backward_inputs(logits, y)
    _, pairs = call_backprop(net, grad_logits, need_input_grad=False)
    optimizer.step(pairs)
    return loss


def minidl_lab_loop_step(net, loss_fn, optimizer, x, y):
    """One training step as the lab's own training loop (FER lab 2) writes it.

    The layers in reverse; each is asked for dL/d(its input) with ``backward_inputs``
    and then for its parameter gradients with ``backward_params``, both from the same
    dL/d(its output). Like the lab's loop it asks the first layer for its input
    gradient too, although nobody uses it. The updated parameters must be exactly
    those of ``minidl_idiomatic_step`` (tests/test_bench.py checks it).
    """
    logits = net.forward(x)
    loss = loss_fn.forward(logits, y)
    grad = loss_fn.backward_inputs(logits, y)
    pairs = []
    for layer in reversed(net.layers):
        grad_inputs = layer.backward_inputs(grad)
        pairs += layer.backward_params(grad)
        grad = grad_inputs
    optimizer.step(pairs)
    return loss


class MinidlBench:
    """minidl side: a lab net per configuration, Trainer.train_step / net.forward."""

    def __init__(self, threads):
        if REPO not in sys.path:
            sys.path.insert(0, REPO)
        import minidl  # first, as the scripts do: it sets OpenBLAS's thread wait before numpy loads
        import numpy as np
        from minidl import ops
        self.np, self.minidl, self.ops = np, minidl, ops
        self.threads = threads
        self.models = {}
        self._paired_warm = set()   # the (modes, batch) that paired has warmed up

    def info(self):
        np = self.np
        blas_threads, core = openblas_info()
        try:
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            blas_name = f"{blas.get('name')} {blas.get('version')}"
        except Exception:  # noqa: BLE001 - only a description
            blas_name = "?"
        return {"framework": "minidl", "minidl_version": self.minidl.__version__,
                "minidl_path": os.path.dirname(self.minidl.__file__),
                "backend": self.ops.BACKEND, "numpy": np.__version__, "blas": blas_name,
                "blas_threads": blas_threads, "blas_core": core,
                "omp_threads": openmp_threads() if self.ops.BACKEND == "compiled" else None,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
                "fast_status": self.ops.fast.status(), "numpy_avx512": numpy_simd(),
                "env": {k: os.environ[k] for k in AVX2_ENV if k in os.environ}}

    def _model(self, modes, batch):
        """(steps, batches, network): a network and a few batches, and a step function
        for each of ``modes`` (a tuple), all on that one network. ``run`` asks for one mode at a
        time (each mode trains its own network), ``paired`` for two (they share one)."""
        key = (modes, batch)
        if key not in self.models:
            np = self.np
            from minidl.layers import SoftmaxCrossEntropy
            from minidl.models import lab_net
            from minidl.optim import SGD
            from minidl.trainer import Trainer
            rng = np.random.default_rng(batch)
            net = lab_net(dtype=np.float32, rng=0)
            # a few different batches of MNIST-shaped data, cycled
            pool = [(rng.random((batch, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, batch))
                    for _ in range(4 if batch <= 256 else 2)]
            loss_fn, optimizer = SoftmaxCrossEntropy(), SGD(lr=0.01)
            steps = []
            for mode in modes:
                if mode == "train":            # what Trainer.fit runs per batch
                    step = Trainer(net, loss_fn, optimizer, batch_size=batch).train_step
                elif mode == "idiomatic":      # Sequential's one backprop + SGD, nothing else
                    def step(x, y):  # noqa: E306
                        return minidl_idiomatic_step(net, loss_fn, optimizer, x, y)
                elif mode == "lab_loop":       # the lab's loop over the layers
                    def step(x, y):  # noqa: E306
                        return minidl_lab_loop_step(net, loss_fn, optimizer, x, y)
                elif mode == "eval" and len(modes) == 1:
                    net.eval()
                    def step(x, y):  # noqa: E306 - forward only, as evaluate() per batch
                        return net.forward(x)
                else:
                    raise ValueError(f"minidl worker: unknown mode {mode!r}")
                steps.append(step)
            self.models[key] = (steps, pool, net)
        return self.models[key]

    def run(self, mode, batch, seconds, min_steps, max_seconds=None):
        """Steps until both min_steps and seconds are reached (or max_seconds has passed)."""
        (step,), pool = self._model((mode,), batch)[:2]
        n = 0
        start = time.perf_counter()
        while True:
            x, y = pool[n % len(pool)]
            step(x, y)
            n += 1
            elapsed = time.perf_counter() - start
            if n >= min_steps and elapsed >= seconds:
                break
            if max_seconds is not None and elapsed >= max_seconds:
                break
        return {"steps": n, "seconds": elapsed, "images_per_s": n * batch / elapsed}

    def paired(self, modes, batch, seconds, min_steps, warm_steps=3, first_warm_steps=20):
        """Two modes' steps in turn, one by one (A B, B A, A B, ...), each step timed.

        For the ratio of two minidl loops: measured in the same second, both see the
        same state of the machine, which drifts by more than the 5% asked of them
        between one round and the next.
        - Both step the same network, built for this timing (not those of ``run``), on
          the same batch in every pair: the same arrays, in the same state. The networks
          of ``run`` have taken different numbers of steps, and the cost of a step drifts
          by a few percent as a network trains; measured on them, the two loops' ratio
          wandered by a few percent (benchmarks/README.md).
        - Every call first runs ``warm_steps`` pairs untimed (the first call
          ``first_warm_steps``). The first step after the pause between rounds is the
          slow one (2-3 times a step: caches cold, threads asleep), and it would always
          fall to mode A.
        Returns the steps and seconds of each mode, and the median over the pairs of
        the ratio of their step times (B's time / A's).
        """
        np = self.np
        key = (tuple(modes), batch)
        steps, pool, _ = self._model(*key)
        for n in range(warm_steps if key in self._paired_warm else first_warm_steps):
            for step in steps:
                step(*pool[n % len(pool)])
        self._paired_warm.add(key)
        times, n = ([], []), 0
        start = time.perf_counter()
        while n < min_steps or time.perf_counter() - start < seconds:
            x, y = pool[n % len(pool)]
            for k in ((0, 1) if n % 2 == 0 else (1, 0)):
                t = time.perf_counter()
                steps[k](x, y)
                times[k].append(time.perf_counter() - t)
            n += 1
        spent = [sum(t) for t in times]
        return {"modes": list(modes), "steps": n, "seconds": spent,
                "images_per_s": [n * batch / t for t in spent],
                "median_pair_ratio": float(np.median(np.array(times[1]) / np.array(times[0])))}

    def gemm(self, sizes, batches, seconds):
        np = self.np
        rng = np.random.default_rng(0)
        square = {}
        for n in sizes:
            a = rng.standard_normal((n, n), dtype=np.float32)
            b = rng.standard_normal((n, n), dtype=np.float32)
            c = np.empty((n, n), np.float32)
            t, reps = time_call(lambda: np.matmul(a, b, out=c), min_seconds=seconds, min_reps=5)
            square[str(n)] = {"seconds": t, "reps": reps, "gflops": 2 * n ** 3 / t / 1e9}
            if self.ops.fast.available(np.float32):  # minidl's own product (gemm.c), what its layers run
                t, reps = time_call(lambda: self.ops.matmul(a, b, out=c), min_seconds=seconds, min_reps=5)
                square[str(n)]["minidl_gflops"] = 2 * n ** 3 / t / 1e9
        shapes = {}
        for batch in batches:
            rows = []
            for label, flops, build in lab_gemms(batch):
                a, b, out = build(np, rng)
                mm = self.ops.matmul
                fn = lambda a=a, b=b, out=out: np.matmul(a, b, out=out)  # noqa: E731
                fn_minidl = lambda a=a, b=b, out=out: mm(a, b, out=out)  # noqa: E731
                t, reps = time_call(fn, min_seconds=seconds / 4, min_reps=10)
                t_minidl, _ = time_call(fn_minidl, min_seconds=seconds / 4, min_reps=10)
                rows.append({"gemm": label, "flops": flops, "numpy_seconds": t, "numpy_gflops": flops / t / 1e9,
                             "seconds": t_minidl, "gflops": flops / t_minidl / 1e9})
            total_t = sum(r["seconds"] for r in rows)
            total_np = sum(r["numpy_seconds"] for r in rows)
            total_f = sum(r["flops"] for r in rows)
            shapes[str(batch)] = {"rows": rows, "seconds": total_t, "numpy_seconds": total_np, "flops": total_f,
                                  "gflops": total_f / total_t / 1e9, "images_per_s_bound": batch / total_t}
        return {"square": square, "lab_shapes": shapes}


class TorchBench:
    """PyTorch side: the same network, nn.CrossEntropyLoss, plain torch.optim.SGD."""

    def __init__(self, threads):
        import torch
        self.torch = torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.models = {}

    def info(self):
        torch = self.torch
        cfg = torch.__config__.show()
        mkl = "MKL" if torch.backends.mkl.is_available() else "no MKL"
        dnn = "oneDNN" if torch.backends.mkldnn.is_available() else "no oneDNN"
        return {"framework": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "libraries": f"{mkl}, {dnn}", "blas": "MKL" if "BLAS_INFO=mkl" in cfg else "?",
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "env": {k: os.environ[k] for k in AVX2_ENV if k in os.environ}}

    def _model(self, modes, batch):
        """((step,), batches) of one mode (``modes`` a 1-tuple), on its own network."""
        (mode,), key = modes, (modes, batch)
        if key not in self.models:
            torch = self.torch
            from torch import nn
            c, side = LAB["conv2"], LAB["image_size"] // 4
            net = nn.Sequential(
                nn.Conv2d(LAB["in_channels"], LAB["conv1"], LAB["kernel"], padding=LAB["kernel"] // 2),
                nn.MaxPool2d(2), nn.ReLU(),
                nn.Conv2d(LAB["conv1"], c, LAB["kernel"], padding=LAB["kernel"] // 2),
                nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                nn.Linear(c * side * side, LAB["fc"]), nn.ReLU(),
                nn.Linear(LAB["fc"], LAB["classes"])).to(torch.float32)
            g = torch.Generator().manual_seed(batch)
            # inputs never require grad (the default)
            pool = [(torch.rand((batch, 1, 28, 28), generator=g, dtype=torch.float32),
                     torch.randint(0, 10, (batch,), generator=g)) for _ in range(4 if batch <= 256 else 2)]
            if mode in ("train", "idiomatic"):
                net.train()
                opt = torch.optim.SGD(net.parameters(), lr=0.01)
                loss_fn = nn.CrossEntropyLoss()

                def idiomatic(x, y):
                    opt.zero_grad(set_to_none=True)
                    logits = net(x)
                    loss = loss_fn(logits, y)
                    loss.backward()
                    opt.step()
                    return logits, loss

                def train(x, y):
                    logits, loss = idiomatic(x, y)
                    # what minidl's Trainer.train_step returns: the loss and the number correct
                    return loss.item(), int((logits.argmax(1) == y).sum())

                step = train if mode == "train" else idiomatic
            elif mode == "eval":
                net.eval()

                def step(x, y):
                    with torch.inference_mode():
                        return net(x)
            else:
                raise ValueError(f"torch worker: unknown mode {mode!r}")
            self.models[key] = ((step,), pool)
        return self.models[key]

    run = MinidlBench.run

    def gemm(self, sizes, batches, seconds):
        torch = self.torch
        square = {}
        for n in sizes:
            a, b = torch.randn(n, n), torch.randn(n, n)
            c = torch.empty(n, n)
            t, reps = time_call(lambda: torch.mm(a, b, out=c), min_seconds=seconds, min_reps=5)
            square[str(n)] = {"seconds": t, "reps": reps, "gflops": 2 * n ** 3 / t / 1e9}
        return {"square": square}


def _serve(framework, threads):
    """Worker loop: one JSON command per stdin line, one JSON reply per stdout line."""
    protocol = sys.stdout
    sys.stdout = sys.stderr  # anything a library prints must not break the protocol
    bench = None
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
            if bench is None:
                bench = MinidlBench(threads) if framework == "minidl" else TorchBench(threads)
            name = cmd.pop("cmd")
            if name == "info":
                reply = bench.info()
            elif name == "run":
                reply = bench.run(cmd["mode"], int(cmd["batch"]), float(cmd["seconds"]), int(cmd["min_steps"]),
                                  cmd.get("max_seconds"))
            elif name == "paired" and framework == "minidl":
                reply = bench.paired(cmd["modes"], int(cmd["batch"]), float(cmd["seconds"]), int(cmd["min_steps"]))
            elif name == "gemm":
                reply = bench.gemm(cmd["sizes"], cmd["batches"], float(cmd["seconds"]))
            else:
                reply = {"error": f"unknown command {name!r}"}
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            import traceback
            reply = {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"}
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description="benchmark worker (started by the bench_*.py scripts)")
    parser.add_argument("--worker", choices=("minidl", "torch"), required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    _serve(args.worker, args.threads)
