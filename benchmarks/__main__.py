"""``python -m benchmarks`` (``make bench``): the agent and the indexer benchmarks in one run on
one dedicated dev stack, then both tables. Sizes default to 1,000,000 lines (agent) and
200,000 lines in wire v2 records (indexer, each loader four times: about 7-8 minutes on a
2-core machine)."""

from __future__ import annotations

import argparse
import time
import traceback
from typing import Any

from benchmarks._harness import bench_stack, quiet_client_logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000,
                        help="agent benchmark: CRI lines (default 1,000,000)")
    parser.add_argument("--records", type=int, default=200_000,
                        help="indexer benchmark: log lines, in wire v2 records (default 200,000)")
    parser.add_argument("--only", choices=["agent", "indexer"],
                        help="run only one of the two benchmarks")
    parser.add_argument("--no-steady", action="store_true",
                        help="skip the agent's 20 s steady-state memory run")
    parser.add_argument("--no-containers", action="store_true",
                        help="skip the agent's extra container-log (CRI parsed) run")
    parser.add_argument("--split-cores", action="store_true",
                        help="indexer benchmark: OpenSearch alone on one CPU, Kafka and the "
                             "loaders on the others (as if the node had machines of its own)")
    parser.add_argument("--cycles", type=int, default=2,
                        help="indexer benchmark: mirrored cycles, two runs of each loader per "
                             "cycle (default 2)")
    args = parser.parse_args(argv)

    from benchmarks.agent import bench as agent_bench
    from benchmarks.indexer import bench as indexer_bench

    quiet_client_logs()
    t0 = time.monotonic()
    tables: list[str] = []
    failed = False
    with bench_stack() as ep:
        plan: list[tuple[str, Any]] = []
        if args.only in (None, "agent"):
            plan.append(("agent", lambda: agent_bench.format_results(
                agent_bench.run(ep, args.lines, steady=not args.no_steady,
                                containers=not args.no_containers))))
        if args.only in (None, "indexer"):
            plan.append(("indexer", lambda: indexer_bench.format_results(
                indexer_bench.run(ep, args.records, split=args.split_cores,
                                  cycles=args.cycles))))
        for name, step in plan:
            try:
                tables.append(step())
            except Exception:  # noqa: BLE001 - one broken benchmark must not hide the other
                failed = True
                tables.append(f"{name.upper()}: failed\n{traceback.format_exc()}")
    print()
    print("\n\n".join(tables))
    print(f"\n(total {time.monotonic() - t0:.0f}s; ratios compare tools measured in this run "
          f"on the same services; absolute numbers depend on the machine and its load)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
