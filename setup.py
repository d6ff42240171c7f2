"""The one part of logferry in C: the agent's chunk scans (agent/stages/_scan.c), which read
a chunk of CRI or plain lines into columns.

Optional: where no C compiler is found the build goes on without it and the agent uses the
pure-Python twins, which give the same results more slowly. Everything else is in
pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("agent.stages._scan", ["agent/stages/_scan.c"],
                             optional=True, extra_compile_args=["-O2"])])
