"""The fast C kernels as compilers see them: every unrolling they ask for is carried out by gcc
and clang alike (why it matters, and why a bare `#pragma GCC unroll` is not enough for clang:
minidl/ops/fast/unroll.h).

Not covered here: whether clang keeps the accumulators in registers once the loops are
unrolled (direct.c's dL/dx blocks needed a change for that); that shows only in the speed of a
clang build (benchmarks/README.md, finding 10).
"""
import pathlib
import platform
import re
import shutil
import subprocess

import pytest

import minidl.ops.fast

# the sources beside the imported package: the tree's, or an installed copy's (package data)
FAST = pathlib.Path(minidl.ops.fast.__file__).resolve().parent
# the files with unrolled micro-kernels, and how many loops each asks to unroll at least
KERNELS = {"gemm.c": 10, "direct.c": 10, "winograd.c": 4}


def test_no_bare_gcc_unroll_pragma_in_the_fast_sources():
    """The C sources ask through UNROLL_ALL / UNROLL, never with the gcc-only spelling."""
    sources = sorted(FAST.glob("*.c")) + sorted(FAST.glob("*.h"))
    sources = [p for p in sources if p.name != "_fast.c"]       # Cython's output, not ours
    assert any(p.name == "gemm.c" for p in sources)
    offenders = [f"{p.name}:{n}" for p in sources
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if re.match(r"\s*#\s*pragma\s+GCC\s+unroll", line)]
    assert not offenders, f"use UNROLL_ALL(n) or UNROLL(n) from unroll.h instead: {offenders}"


def test_the_kernels_use_the_unroll_macros():
    """gemm.c, direct.c and winograd.c include unroll.h and request full unrolling where their
    blocks are."""
    for name, loops in KERNELS.items():
        text = (FAST / name).read_text()
        assert '#include "unroll.h"' in text, name
        assert text.count("UNROLL_ALL(") >= loops, name


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang is not installed")
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or platform.system() == "Windows",
                    reason="the AVX2/AVX-512 kernels are compiled on x86-64 outside Windows only")
@pytest.mark.parametrize("name", KERNELS)
def test_clang_unrolls_every_loop_it_is_asked_to(name, tmp_path):
    """With -Werror=pass-failed, clang fails where it cannot carry out a requested unrolling
    (UNROLL_ALL on a loop whose count is not a constant, or on some loops with a break)."""
    flags = ["-O3", "-fPIC", "-Wall", "-Wno-unknown-pragmas", f"-I{FAST}", f"-I{FAST.parent}"]
    source = str(FAST / name)
    # the kernels are there and ask clang in its own words (not compiled out, not empty macros)
    pre = subprocess.run(["clang", *flags, "-E", source], capture_output=True, text=True)
    assert pre.returncode == 0, pre.stderr[-3000:]
    asked = pre.stdout.count("#pragma clang loop unroll(full)")
    assert asked == (FAST / name).read_text().count("UNROLL_ALL("), (name, asked)
    # an old clang without -Wpass-failed must fail too, not just warn about the flag
    cmd = ["clang", *flags, "-Werror=unknown-warning-option", "-Werror=pass-failed",
           "-c", source, "-o", str(tmp_path / "k.o")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr[-3000:]}"
