"""The two parts of logferry in C, each the twin of pure-Python code that gives the same
results more slowly:

- the agent's chunk scans (agent/stages/_scan.c), which read a chunk of CRI or plain lines
  into columns;
- the indexer's level detection in free text (indexer/stages/_levels.c);
- the indexer's check that a parsed line's fields need no capping (indexer/stages/_limits.c);
- the indexer's check of a time already in canonical RFC 3339 UTC (indexer/stages/_timestamps.c);
- the indexer's document serializer (indexer/stages/_document.c), which writes each document's
  bulk lines straight from parts serialized once.

Optional: where no C compiler is found the build goes on without them and the Python twins
are used. Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("agent.stages._scan", ["agent/stages/_scan.c"],
              optional=True, extra_compile_args=["-O2"]),
    Extension("indexer.stages._levels", ["indexer/stages/_levels.c"],
              optional=True, extra_compile_args=["-O2"]),
    Extension("indexer.stages._limits", ["indexer/stages/_limits.c"],
              optional=True, extra_compile_args=["-O2"]),
    Extension("indexer.stages._timestamps", ["indexer/stages/_timestamps.c"],
              optional=True, extra_compile_args=["-O2"]),
    Extension("indexer.stages._document", ["indexer/stages/_document.c"],
              optional=True, extra_compile_args=["-O2"]),
])
