"""Build the Cython kernels; everything else is declared in pyproject.toml.

OpenMP (the kernels' threads) is used when the compiler that builds the
extension can compile, link and run a small OpenMP program. Tried in order:
``/openmp`` for MSVC; else ``-fopenmp`` (gcc, clang with an OpenMP runtime) and,
on macOS, Homebrew's libomp (``brew install libomp``). If none works the
kernels are built without OpenMP and run on one thread (``minidl/ops/threads.h``).
``MINIDL_OPENMP=0`` skips the search and builds without OpenMP.

The extension is optional: if it cannot be built at all (no C compiler, a
compile error), the install still succeeds, says why, and minidl runs its NumPy
reference kernels. ``MINIDL_REQUIRE_EXTENSION=1`` turns that into an error.
"""
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

# What a missing or broken compiler raises (CompileError and LinkError are CCompilerErrors).
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)

OPENMP_TEST = r"""
#include <omp.h>
#include <stdio.h>

int main(void)
{
    int threads = 0;
#pragma omp parallel reduction(+: threads)
    threads += 1;
    printf("OpenMP test: %d of %d threads ran\n", threads, omp_get_max_threads());
    return threads >= 1 ? 0 : 1;
}
"""


def say(message):
    print(f"minidl: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def captured_output(path):
    """Send this process's (and its children's) stdout and stderr to the file at path."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def homebrew_libomp():
    """Where Homebrew keeps libomp (keg-only, so not on the compiler's default paths)."""
    prefixes = []
    brew = shutil.which("brew")
    if brew:
        try:
            out = subprocess.run([brew, "--prefix", "libomp"], capture_output=True, text=True,
                                 timeout=60)
            if out.returncode == 0 and out.stdout.strip():
                prefixes.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    prefixes += ["/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    unique = list(dict.fromkeys(prefixes))
    return [p for p in unique if os.path.isfile(os.path.join(p, "include", "omp.h"))]


def openmp_candidates(compiler):
    """(name, compile flags, link flags) to try, in order, for this compiler."""
    if compiler.compiler_type == "msvc":
        return [("/openmp", ["/openmp"], [])]
    candidates = [("-fopenmp", ["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        for prefix in homebrew_libomp():
            candidates.append((f"Homebrew libomp in {prefix}",
                               ["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                               [f"-L{prefix}/lib", "-lomp", f"-Wl,-rpath,{prefix}/lib"]))
    return candidates


def openmp_works(compiler, cflags, ldflags):
    """Compile, link and run OPENMP_TEST with these flags; (True, '') or (False, why)."""
    tmp = tempfile.mkdtemp(prefix="minidl-openmp-")
    cwd = os.getcwd()
    log = os.path.join(tmp, "log.txt")
    try:
        os.chdir(tmp)
        with open("test_openmp.c", "w") as f:
            f.write(OPENMP_TEST)
        with captured_output(log):
            objects = compiler.compile(["test_openmp.c"], extra_postargs=cflags)
            compiler.link_executable(objects, "test_openmp", extra_postargs=ldflags)
            # running it also catches a runtime that links but cannot be loaded
            subprocess.run([os.path.join(tmp, compiler.executable_filename("test_openmp"))],
                           check=True, timeout=60)
        return True, ""
    except (*BUILD_ERRORS, subprocess.SubprocessError) as exc:
        with open(log, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        return False, (errors or lines or [str(exc)])[0]
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


def find_openmp(compiler):
    """The (compile, link) flags of the first OpenMP setup that works, or None."""
    if os.environ.get("MINIDL_OPENMP", "").strip() == "0":
        say("MINIDL_OPENMP=0: building without OpenMP; the kernels will run on one thread")
        return None
    tried = []
    for name, cflags, ldflags in openmp_candidates(compiler):
        ok, why = openmp_works(compiler, cflags, ldflags)
        if ok:
            say(f"OpenMP found ({name}): the kernels will use all cores")
            return cflags, ldflags
        tried.append(f"{name}: {why}")
    say("no OpenMP for this compiler; building the kernels without it (they will run on "
        "one thread). Tried:\n    " + "\n    ".join(tried))
    if sys.platform == "darwin":
        say("on macOS, `brew install libomp` and reinstall minidl to get the threads")
    return None


class OptionalBuildExt(build_ext):
    """build_ext that finds OpenMP first and, if the build fails, installs without the kernels."""

    def initialize_options(self):
        super().initialize_options()
        self.failed = []

    def run(self):
        try:
            super().run()
        except BUILD_ERRORS as exc:
            self.give_up(exc)
            self.extensions = []

    def build_extensions(self):
        unix_like = self.compiler.compiler_type != "msvc"
        flags = find_openmp(self.compiler)
        cflags, ldflags = flags if flags else ([], [])
        if flags is None and unix_like:
            cflags = ["-Wno-unknown-pragmas"]     # gemm.c's `#pragma omp` lines, ignored
        for ext in self.extensions:
            ext.extra_compile_args = (["-O3"] if unix_like else []) + cflags
            if unix_like and ext.name == "minidl.ops._kernels":
                # a * x + y stays two roundings, as in NumPy (axpy, SGD's momentum step): no fused
                # multiply-add where the target has one (aarch64, Apple silicon, -march=native).
                # Not for _fast: its kernels are written with multiply-adds on purpose.
                ext.extra_compile_args.append("-ffp-contract=off")
            ext.extra_link_args = ldflags
        super().build_extensions()
        # copy_extensions_to_source and the wheel's file list must not look for them
        self.extensions = [ext for ext in self.extensions if ext not in self.failed]

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as exc:
            self.give_up(exc)
            self.failed.append(ext)

    @staticmethod
    def give_up(exc):
        if os.environ.get("MINIDL_REQUIRE_EXTENSION", "").strip() == "1":
            raise exc
        say("*" * 72)
        say(f"the compiled kernels (minidl.ops._kernels) could NOT be built: {exc}")
        say("installing minidl without them: it will run its NumPy reference kernels")
        say("(same results, slower). To build them, install a C compiler (Linux: gcc;")
        say("macOS: `xcode-select --install`; Windows: Visual Studio Build Tools) and")
        say("reinstall; `pip install -v .` shows this build's output.")
        say("*" * 72)


extensions = [
    Extension(
        "minidl.ops._kernels",
        ["minidl/ops/_kernels.pyx"],
        include_dirs=[np.get_include(), "minidl/ops"],
        depends=["minidl/ops/threads.h", "minidl/ops/_im2col.pxd"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    ),
    # the fast float32 path (minidl/ops/fast/README.md): gemm.c, the image-by-image convolution
    # (sparse.c: its backward for a mostly-zero dL/dy; direct.c: one-channel images) and
    # pool.c's 2x2 max pool
    Extension(
        "minidl.ops.fast._fast",
        ["minidl/ops/fast/_fast.pyx", "minidl/ops/fast/gemm.c", "minidl/ops/fast/im2col.c",
         "minidl/ops/fast/pool.c", "minidl/ops/fast/sparse.c", "minidl/ops/fast/direct.c",
         "minidl/ops/fast/winograd.c"],
        include_dirs=[np.get_include(), "minidl/ops/fast", "minidl/ops"],
        depends=["minidl/ops/fast/gemm.h", "minidl/ops/fast/im2col.h", "minidl/ops/fast/pool.h",
                 "minidl/ops/fast/sparse.h", "minidl/ops/fast/direct.h", "minidl/ops/fast/winograd.h",
                 "minidl/ops/fast/unroll.h",
                 "minidl/ops/threads.h", "minidl/ops/_im2col.pxd"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
    ),
]

setup(ext_modules=cythonize(extensions, include_path=["."], compiler_directives={"language_level": "3"}),
      cmdclass={"build_ext": OptionalBuildExt})
