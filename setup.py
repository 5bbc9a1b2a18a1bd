"""Builds the compiled hot paths (rinha/_fast.pyx); `RINHA_DEBUG=1` adds annotation and tracing.

`RINHA_SERVICE_ONLY=1` leaves the tools (rinha.tools: `rinha up | processor | bench`) out of the
build: what the Docker image installs.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("RINHA_DEBUG", "") not in ("", "0")
SERVICE_ONLY = os.environ.get("RINHA_SERVICE_ONLY", "") not in ("", "0")

packages = ["rinha"]
if not SERVICE_ONLY:
    packages += ["rinha.tools", "rinha.tools.bench", "rinha.tools.emulator", "rinha.tools.stack"]

directives = {"language_level": "3"}
macros = []
if DEBUG:  # rinha/_fast.html shows the C behind each line; line tracing for coverage/profilers
    directives.update(linetrace=True, profile=True)
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]

extensions = [Extension("rinha._fast", ["rinha/_fast.pyx"], define_macros=macros)]

setup(packages=packages, ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG))
