"""The two parts of logferry in C, each the twin of pure-Python code that gives the same
results more slowly:

- the agent's chunk scans (agent/stages/_scan.c), which read a chunk of CRI or plain lines
  into columns;
- the indexer's level detection in free text (indexer/stages/_levels.c).

Optional: where no C compiler is found the build goes on without them and the Python twins
are used. Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("agent.stages._scan", ["agent/stages/_scan.c"],
              optional=True, extra_compile_args=["-O2"]),
    Extension("indexer.stages._levels", ["indexer/stages/_levels.c"],
              optional=True, extra_compile_args=["-O2"]),
])
