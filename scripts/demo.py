"""`make demo`: the whole pipeline on real services, end to end, in about a minute.

Starts the dev stack (real Kafka + OpenSearch), writes sample logs, runs the agent and the
indexer through the `logferry` CLI, shows search results, then stops agent and indexer. The dev
stack keeps running for you to explore; `logferry dev down` stops it.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".logferry" / "demo"
LOGFERRY = [sys.executable, "-m", "logferry.cli"]
OPENSEARCH = "http://127.0.0.1:9200"


def sh(*args: str) -> None:
    print(f"\n$ logferry {' '.join(args)}", flush=True)
    subprocess.run([*LOGFERRY, *args], check=True, cwd=ROOT)


def count(prefix: str) -> int:
    try:
        urllib.request.urlopen(f"{OPENSEARCH}/{prefix}-*/_refresh", data=b"", timeout=10)
        with urllib.request.urlopen(f"{OPENSEARCH}/{prefix}-*/_count", timeout=10) as resp:
            return int(json.loads(resp.read())["count"])
    except OSError:
        return 0


def write_samples(logs: Path, n_per_file: int) -> int:
    rng = random.Random(7)
    # A Kubernetes node's layout: /var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log
    pods = logs / "pods" / "shop_checkout-7d9f_0a1b2c3d-1111-2222-3333-444455556666" / "api"
    pods.mkdir(parents=True, exist_ok=True)
    users = ["ada", "grace", "linus", "barbara"]
    written = 0
    with (logs / "web.log").open("a") as web, (pods / "0.log").open("a") as api:
        for i in range(n_per_file):
            status = rng.choice([200, 200, 200, 201, 404, 500])
            web.write(f'127.0.0.1 - - [25/Nov/2026:10:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
                      f'"GET /cart/{i} HTTP/1.1" {status} {rng.randint(100, 5000)}\n')
            level = "error" if status == 500 else "info"
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{i:09d}Z"
            line = json.dumps({"level": level, "msg": f"checkout step {i}",
                               "user": rng.choice(users), "status": status})
            api.write(f"{ts} stdout F {line}\n")  # CRI format, as containerd writes it
            written += 2
    return written


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    sh("dev", "up")
    run_id = time.strftime("%H%M%S")
    prefix = f"logferry-demo-{run_id}"
    logs = WORK / f"logs-{run_id}"
    config = WORK / f"config-{run_id}.toml"
    config.write_text(
        f'[kafka]\nbrokers = ["127.0.0.1:9092"]\ntopic = "logferry.demo.{run_id}"\n\n'
        f'[opensearch]\nurls = ["{OPENSEARCH}"]\nindex_prefix = "{prefix}"\n\n'
        f'[agent]\ninclude = ["{logs}/*.log"]\nstate_dir = "{WORK}/agent-state-{run_id}"\n'
        f"scan_interval_s = 0.5\n\n"
        f'[agent.containers]\nenabled = true\nroot = "{logs}/pods"\n\n'
        f'[indexer]\ngroup_id = "logferry-demo-{run_id}"\nflush_interval_s = 0.5\n\n'
        f'[indexer.processing]\npresets = ["nginx_access"]\n'
    )
    print(f"\nconfig: {config}\n{config.read_text()}")
    expected = write_samples(logs, 2000)
    agent_log = (WORK / f"agent-{run_id}.log").open("w")
    indexer_log = (WORK / f"indexer-{run_id}.log").open("w")
    print(f"$ logferry agent run --config {config}  (log: {agent_log.name})")
    agent = subprocess.Popen([*LOGFERRY, "agent", "run", "--config", str(config)],
                             stdout=agent_log, stderr=subprocess.STDOUT, cwd=ROOT)
    print(f"$ logferry indexer run --config {config}  (log: {indexer_log.name})")
    indexer = subprocess.Popen([*LOGFERRY, "indexer", "run", "--config", str(config)],
                               stdout=indexer_log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        time.sleep(2)
        expected += write_samples(logs, 500)  # lines appended while the agent runs
        deadline = time.monotonic() + 180
        while (n := count(prefix)) < expected:
            for proc, name in ((agent, "agent"), (indexer, "indexer")):
                if proc.poll() is not None:
                    sys.exit(f"demo: the {name} exited ({proc.returncode}); see its log")
            if time.monotonic() > deadline:
                sys.exit(f"demo: only {n} of {expected} lines arrived in 180 s")
            print(f"  indexed {n}/{expected} lines", flush=True)
            time.sleep(1)
        print(f"  indexed {count(prefix)}/{expected} lines: every line, once")
    finally:
        for proc in (agent, indexer):
            proc.terminate()
        for proc in (agent, indexer):
            proc.wait(30)
    cfg = ["--config", str(config)]
    sh("search", "--level", "error", "--namespace", "shop", "--limit", "5", *cfg)
    sh("search", '"GET /cart/42"', "--limit", "3", *cfg)
    sh("search", "--since", "1h", "--limit", "2", "--output", "json", *cfg)
    print("\nThe dev stack is still running: try `logferry search --help`, "
          f"`logferry search 'checkout' --config {config}`; stop it with `logferry dev down`.")


if __name__ == "__main__":
    main()
