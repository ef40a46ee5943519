"""Build the Cython kernels; everything else is declared in pyproject.toml."""
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

# OpenMP splits the kernels over cores; without it they still run, on one core.
if sys.platform == "win32":
    openmp_compile, openmp_link = ["/openmp"], []
elif sys.platform == "darwin":
    openmp_compile, openmp_link = [], []  # Apple clang ships no OpenMP runtime
else:
    openmp_compile, openmp_link = ["-fopenmp"], ["-fopenmp"]

extensions = [
    Extension(
        "minidl.ops._kernels",
        ["minidl/ops/_kernels.pyx"],
        include_dirs=[np.get_include(), "minidl/ops"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        extra_compile_args=["-O3"] + openmp_compile if sys.platform != "win32" else openmp_compile,
        extra_link_args=openmp_link,
    ),
    # the fast float32 path (minidl/ops/fast/README.md): gemm.c and the image-by-image convolution
    Extension(
        "minidl.ops.fast._fast",
        ["minidl/ops/fast/_fast.pyx", "minidl/ops/fast/gemm.c"],
        include_dirs=[np.get_include(), "minidl/ops/fast", "minidl/ops"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        extra_compile_args=["-O3"] + openmp_compile if sys.platform != "win32" else openmp_compile,
        extra_link_args=openmp_link,
    ),
]

setup(ext_modules=cythonize(extensions, include_path=["."], compiler_directives={"language_level": "3"}))
