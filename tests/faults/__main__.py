"""``make faults``: every fault scenario on a real Kafka + OpenSearch, then the table.

    python -m tests.faults [--short] [--only SUBSTRING ...]

Starts its own dev stack (Kafka 127.0.0.1:18092, OpenSearch 127.0.0.1:18200, state in
``.logferry/faults-stack``; see the options) unless one runs there already, and stops it at
the end if it started it. Scenario work dirs (files, configs, service logs) stay in
``.logferry/faults/``.
Exits 1 if any scenario lost, duplicated or unexpectedly dead-lettered a line.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import orjson

from logferry.devstack import DevStack
from tests.faults.harness import ROOT, Row, format_table, run_scenario
from tests.faults.scenarios import scenarios


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the CI sizes")
    parser.add_argument("--only", nargs="*", default=[], metavar="SUBSTRING",
                        help="run the scenarios whose name contains one of these")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".logferry" / "faults-stack",
                        help="the dev stack's state dir (default: .logferry/faults-stack)")
    parser.add_argument("--kafka-port", type=int, default=18092)
    parser.add_argument("--opensearch-port", type=int, default=18200)
    args = parser.parse_args()
    chosen = [s for s in scenarios(args.short)
              if not args.only or any(o.lower() in s.name.lower() for o in args.only)]
    if not chosen:
        parser.error("no scenario matches --only")
    out = ROOT / ".logferry" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    stack = DevStack(args.state_dir, kafka_port=args.kafka_port,
                     opensearch_port=args.opensearch_port)
    already = all(s.ready for s in stack.status())
    stack.up(echo=False)
    rows: list[Row] = []
    try:
        for scenario in chosen:
            print(f"== {scenario.name}: {scenario.total:,} lines at "
                  f"{scenario.rate_per_s:,.0f}/s", flush=True)
            started = time.monotonic()
            row = run_scenario(scenario, stack, out)
            rows.append(row)
            print(f"   {'ok' if row.ok else 'FAIL'} in {time.monotonic() - started:.0f}s",
                  flush=True)
    finally:
        if not already:
            stack.down()
    print()
    print(format_table(rows))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"results-{stamp}.json").write_bytes(
        orjson.dumps([asdict(r) for r in rows], option=orjson.OPT_INDENT_2))
    print(f"\nwork dirs and service logs: {out}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
