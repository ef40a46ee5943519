"""Process-wide settings, the one place minidl sets environment variables.

Imported first by ``minidl/__init__.py``, before numpy and the compiled kernels
load, because the thread runtimes read these variables once, when they start.
Each is only a default: a value the user set (in the shell or in ``os.environ``
before importing minidl) always wins. minidl's own switches are read where they
act: ``MINIDL_BACKEND`` in ``minidl/ops/__init__.py``, ``MINIDL_FAST`` in
``minidl/ops/fast/__init__.py``.
"""
import ctypes
import os
import sys

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


# Memory: glibc hands every freed block of 32 MiB or more (less, early on) back to the
# system, and the next one of that size is faulted in again, page by page. An
# evaluation forward pass at batch 1000 makes some 100 MiB of such arrays (conv1's
# output alone is 50 MiB): 12,500-13,600 images/s as glibc has it, 16,000-17,500 when
# the heap keeps them (this 2-core virtual machine). So on Linux with glibc, arrays
# up to 128 MiB come from the heap, and it keeps up to 512 MiB of freed memory.
# MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment win, as above.
MALLOC_DEFAULTS = {"MALLOC_MMAP_THRESHOLD_": (-3, 128 << 20), "MALLOC_TRIM_THRESHOLD_": (-1, 512 << 20)}


def _keep_freed_memory():
    """mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD) as above; True if glibc took them.

    The trim threshold is set only once an mmap threshold is in force: glibc stops
    adapting its mmap threshold when either is set, and older versions refuse one
    above 32 MiB (then 32 MiB is asked for instead).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):       # no C library symbols to reach
        return False
    mmap_param, mmap_value = MALLOC_DEFAULTS["MALLOC_MMAP_THRESHOLD_"]
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        if mallopt(mmap_param, mmap_value) != 1 and mallopt(mmap_param, 32 << 20) != 1:
            return False                    # not glibc, or it would not take it: leave it be
    trim_param, trim_value = MALLOC_DEFAULTS["MALLOC_TRIM_THRESHOLD_"]
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return mallopt(trim_param, trim_value) == 1
    return True


MALLOC_SET = _keep_freed_memory()
