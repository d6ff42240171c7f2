"""The one part of logferry in C: the agent's CRI chunk scan (agent/stages/_cri_scan.c).

Optional: where no C compiler is found the build goes on without it and the agent uses the
pure-Python scan, which gives the same results more slowly. Everything else is in
pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("agent.stages._cri_scan", ["agent/stages/_cri_scan.c"],
                             optional=True, extra_compile_args=["-O2"])])
