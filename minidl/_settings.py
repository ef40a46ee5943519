"""Process-wide settings, the one place minidl sets environment variables.

Imported first by ``minidl/__init__.py``, before numpy and the compiled kernels
load, because the thread runtimes read these variables once, when they start.
Each is only a default: a value the user set (in the shell or in ``os.environ``
before importing minidl) always wins. minidl's own switches are read where they
act: ``MINIDL_BACKEND`` in ``minidl/ops/__init__.py``, ``MINIDL_FAST`` in
``minidl/ops/fast/__init__.py``.
"""
import os

DEFAULTS = {
    # The compiled kernels' OpenMP threads and numpy's OpenBLAS threads take turns
    # on the same cores. By default an idle OpenMP thread spins for a while before
    # sleeping and steals the core the next matrix product needs (training steps
    # three times slower on 2 cores). Sleeping at once costs nothing here.
    "OMP_WAIT_POLICY": "PASSIVE",
    # ... but not at once with GCC's OpenMP (libgomp; this count overrides the policy
    # there, and other runtimes ignore it): a sleeping thread takes long to wake (on
    # a 2-core virtual machine, 90 us: a pool-sized parallel loop ran in 184 us with
    # two threads, 212 us with one, 94 us if the second thread was still awake), and
    # a float32 training step starts some 15 parallel loops. 10,000 spins keep it
    # awake for well under a millisecond: the fast path's step +15%, the plain path's
    # (whose OpenBLAS threads want the cores back) -15%.
    "GOMP_SPINCOUNT": "10000",
    # The same on numpy's side: OpenBLAS keeps its threads spinning for about
    # 0.1 s after every product, just when the kernels and the next small product
    # need the cores. 2**4 cycles of spinning, then sleep. OpenBLAS reads it when
    # numpy is first imported, so it only acts if minidl is imported first.
    "OPENBLAS_THREAD_TIMEOUT": "4",
}

for _name, _value in DEFAULTS.items():
    os.environ.setdefault(_name, _value)
