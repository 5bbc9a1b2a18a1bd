"""Builds the compiled hot paths (rinha/_fast.pyx); `RINHA_DEBUG=1` adds annotation and tracing."""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RINHA_DEBUG", "") not in ("", "0")

directives = {"language_level": "3"}
macros = []
if DEBUG:  # rinha/_fast.html shows the C behind each line; line tracing for coverage/profilers
    directives.update(linetrace=True, profile=True)
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]

extensions = [Extension("rinha._fast", ["rinha/_fast.pyx"], define_macros=macros)]

setup(ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG))
