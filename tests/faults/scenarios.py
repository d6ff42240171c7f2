"""The fault scenarios: what each one does to the pipeline while the generator writes.

Each scenario has a full size (``make faults``) and a short one (CI). The short one injects the
same kinds of faults, fewer times and over less data.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from tests.faults.generator import LogFile, now_rfc3339
from tests.faults.harness import Run, Scenario


def _while_writing(run: Run, every_s: float, action: Callable[[int], None]) -> int:
    """Call ``action(n)`` every ``every_s`` until the generator is done; return the count."""
    n = 0
    while not run.gen.done.wait(every_s):
        action(n)
        n += 1
    return n


def _kill_loop(run: Run, kills: int, targets: str, seed: int) -> None:
    """``kills`` kill -9s at random moments, spread over the write window (a kill that falls
    after the last write still hits the pipeline while it catches up)."""
    rng = random.Random(seed)
    window_s = run.gen.total / run.gen.rate_per_s / kills
    procs = [p for name, p in (("agent", run.agent), ("indexer", run.indexer))
             if name in targets]
    for _ in range(kills):
        time.sleep(rng.uniform(0.2, 0.8) * window_s)
        for proc in procs:
            proc.kill9()
        time.sleep(rng.uniform(0.2, 1.5))
        for proc in procs:
            proc.start().wait_started()
    run.notes.append(f"kill -9 of {targets}: {run.agent.starts - 1} agent, "
                     f"{run.indexer.starts - 1} indexer restarts")


def agent_kill9(kills: int) -> Callable[[Run], None]:
    return lambda run: _kill_loop(run, kills, "agent", 11)


def indexer_kill9(kills: int) -> Callable[[Run], None]:
    return lambda run: _kill_loop(run, kills, "indexer", 12)


def both_kill9(kills: int) -> Callable[[Run], None]:
    return lambda run: _kill_loop(run, kills, "agent+indexer", 13)


def service_outage(service: str, down_s: float) -> Callable[[Run], None]:
    def inject(run: Run) -> None:
        run.gen.done.wait(min(5.0, run.gen.total / run.gen.rate_per_s / 4))
        t0 = time.monotonic()
        run.stack.stop(service)
        time.sleep(max(0.0, down_s - (time.monotonic() - t0)))
        run.stack.start(service)
        run.notes.append(f"{service} down {time.monotonic() - t0:.0f}s (stop to ready)")
    return inject


def kubelet_rotation(every_s: float, keep: int = 5) -> Callable[[Run], None]:
    """kubelet-style: rename ``0.log`` to ``0.log.<time>``, start a new one; compress the
    previous rotated file and delete the oldest beyond ``keep``."""

    def rotate(run: Run) -> None:
        for f in (f for f in run.gen.targets if f.fmt in ("cri", "docker")):
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S.%f")
            with run.fleet.lock:
                f.path.rename(f.path.with_name(f"0.log.{stamp}"))
                f.path.touch()
            rotated = sorted(p for p in f.path.parent.glob("0.log.*")
                             if not p.name.endswith(".gz"))
            for old in rotated[:-1]:
                with old.open("rb") as src, gzip.open(f"{old}.gz", "wb", compresslevel=1) as dst:
                    shutil.copyfileobj(src, dst)
                old.unlink()
            for gone in sorted(f.path.parent.glob("0.log.*.gz"))[:-(keep - 2)]:
                gone.unlink()

    def inject(run: Run) -> None:
        n = _while_writing(run, every_s, lambda _: rotate(run))
        run.notes.append(f"{n} rotations per container log")
    return inject


def copytruncate(every_s: float) -> Callable[[Run], None]:
    """logrotate's copytruncate on the plain files. The copy is taken and the file truncated
    under the writers' lock, so nothing is lost on disk; whatever the agent had not read yet
    exists only in the copy, which it does not tail (``*.log`` does not match ``.1``)."""

    def rotate(run: Run) -> None:
        for f in (f for f in run.gen.targets if f.fmt == "plain"):
            with run.fleet.lock:
                shutil.copyfile(f.path, f.path.with_name(f.path.name + ".1"))
                with f.path.open("r+b") as fh:
                    fh.truncate(0)

    def inject(run: Run) -> None:
        n = _while_writing(run, every_s, lambda _: rotate(run))
        run.notes.append(f"{n} copytruncates per plain file")
    return inject


def delete_recreate(every_s: float) -> Callable[[Run], None]:
    """A plain file deleted and created again at once: the inode is often reused, the first
    bytes differ, so it is a new file; the old one is read to its end through the open fd."""

    def recreate(run: Run) -> None:
        f = next(f for f in run.gen.targets if f.fmt == "plain")
        with run.fleet.lock:
            old_ino = f.path.stat().st_ino
            f.path.unlink()
            f.path.touch()
            reused = f.path.stat().st_ino == old_ino
        if reused and "inode reused" not in run.notes:
            run.notes.append("inode reused")

    def inject(run: Run) -> None:
        n = _while_writing(run, every_s, lambda _: recreate(run))
        run.notes.append(f"{n} delete+recreate")
    return inject


def mount_small_state_dir(run: Run) -> None:
    state = Path(orjson.loads(run.agent_config.read_bytes())["agent"]["state_dir"])
    state.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "logferry-faults", str(state)],
                   check=True, capture_output=True)


def unmount_state_dir(run: Run) -> None:
    state = Path(orjson.loads(run.agent_config.read_bytes())["agent"]["state_dir"])
    subprocess.run(["umount", "-l", str(state)], check=False, capture_output=True)


def checkpoint_dir_trouble(run: Run) -> None:
    """The state dir on a tiny tmpfs: filled up, then made read-only, each for a while, with
    a kill -9 of the agent while it cannot write; afterwards space returns and it resumes."""
    state = Path(orjson.loads(run.agent_config.read_bytes())["agent"]["state_dir"])
    run.gen.done.wait(3.0)
    filler = state / "filler"
    errors_before = run.agent.log().count("checkpoint write failed")
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", "count=100000"],
                       capture_output=True, check=False)
        time.sleep(4.0)
        run.agent.kill9()
        run.agent.start().wait_started()  # restarts from the last checkpoint that was whole
        time.sleep(3.0)
        filler.unlink()
        time.sleep(2.0)
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        time.sleep(4.0)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(state)], check=False)
        filler.unlink(missing_ok=True)
    errors = run.agent.log().count("checkpoint write failed") - errors_before
    run.notes.append(f"disk full then read-only: {errors} 'checkpoint write failed' errors "
                     "logged, agent killed once while full")


def bad_input(run: Run) -> None:
    """Lines that break naive pipelines, each carrying its token where a reader would look."""
    gen, fleet = run.gen, run.fleet
    bad_plain = LogFile(fleet.plain_dir / "bad.log", "plain")
    dangling = LogFile(fleet._container_log("badcri", "app"), "cri")
    docker = LogFile(fleet._container_log("baddocker", "web"), "docker")
    fleet.files.extend([bad_plain, dangling, docker])

    def raw(target: LogFile, make: Callable[[str], bytes]) -> int:
        seq = gen.next_seq()
        gen.append(target, [(seq, [make(f"#{seq}#")])])
        return seq

    raw(bad_plain, lambda t: t.encode() + b" invalid utf-8 \xff\xfe\xc3( end\n")
    raw(bad_plain, lambda t: t.encode() + b" NUL \x00 bytes \x00\x00 end\n")
    raw(bad_plain, lambda t: t.encode() + b" ten MiB: " + b"y" * (10 << 20) + b"\n")
    raw(bad_plain, lambda t: b'{"a":' * 10_000 + b'"' + t.encode() + b'"' + b"}" * 10_000
        + b"\n")
    raw(bad_plain, lambda t: orjson.dumps({"msg": t, **{f"k{i}": i for i in range(20_000)}})
        + b"\n")
    raw(bad_plain, lambda t: b'{"msg": "' + t.encode() + b' unterminated\n')
    raw(docker, lambda t: b'{"log": "' + t.encode() + b' not closed, "stream": "stdout"\n')
    raw(docker, lambda t: b'{"log": 12, "stream": "x", "note": "' + t.encode() + b'"}\n')
    raw(dangling, lambda t: b"not a cri line at all " + t.encode() + b"\n")
    raw(dangling, lambda t: b"2026-11-26T00:00:00Z stdout " + t.encode() + b"\n")
    # A partial piece whose final piece never comes: flushed after partial_timeout_s.
    raw(dangling, lambda t: b"%s stdout P %s dangling\n" % (now_rfc3339().encode(), t.encode()))
    # A field typed as a number, then as an object: the second is a real mapping conflict
    # (parsed fields go to the document root in this scenario) and must be dead-lettered.
    raw(bad_plain, lambda t: orjson.dumps({"msg": t, "status": 200}) + b"\n")
    time.sleep(3.0)  # the number mapping exists before the objects arrive
    for _ in range(5):
        run.expected_dead.add(raw(bad_plain, lambda t: orjson.dumps(
            {"msg": t, "status": {"code": "E42"}}) + b"\n"))
    run.notes.append("invalid UTF-8, NUL, 10 MiB line, 10k-deep JSON, 20k-field JSON, "
                     "malformed JSON/docker/CRI lines, dangling CRI P, 5 type conflicts")


def many_files(count: int, lines_each: int) -> Callable[[Run], None]:
    """``count`` new files at once, more than ``agent.max_open_files``: every line is read
    once, and the agent never holds more log-file handles than the limit."""

    def inject(run: Run) -> None:
        limit = int(orjson.loads(run.agent_config.read_bytes())["agent"]["max_open_files"])
        crowd = run.fleet.plain_dir
        for i in range(count):
            target = LogFile(crowd / f"many-{i:05d}.log", "plain")
            run.fleet.files.append(target)
            run.gen.append(target, [run.gen.logical_line("plain") for _ in range(lines_each)])
        peak = 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and run.agent.proc is not None:
            peak = max(peak, _open_under(run.agent.proc.pid, run.fleet.root))
            if run.gen.done.is_set() and _all_indexed_soon(run):
                break
            time.sleep(0.2)
        run.notes.append(f"{count:,} files, max_open_files {limit}: at most {peak} log files "
                         "open at once (sampled every 0.2 s)")
        if peak > limit:
            raise AssertionError(f"{peak} log files open at once, above the limit {limit}")
    return inject


def _open_under(pid: int, root: Path) -> int:
    """How many of the process's descriptors are regular files under ``root`` (directories
    opened for a moment to list them are not log-file handles)."""
    prefix = str(root)
    n = 0
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                n += os.readlink(fd).startswith(prefix) and stat.S_ISREG(os.stat(fd).st_mode)
            except OSError:
                continue
    except OSError:
        return 0
    return n


def _all_indexed_soon(run: Run) -> bool:
    # The checkpoint holds every file once all are read and acknowledged; cheap to look at.
    state = Path(orjson.loads(run.agent_config.read_bytes())["agent"]["state_dir"])
    try:
        entries = orjson.loads((state / "checkpoints.json").read_bytes())["files"]
    except (OSError, orjson.JSONDecodeError, KeyError):
        return False
    sizes = {str(f.path): f.path.stat().st_size for f in run.fleet.files}
    done = sum(1 for e in entries if sizes.get(e.get("path")) == e.get("offset"))
    return done >= len(sizes)


def scenarios(short: bool) -> list[Scenario]:
    """Full sizes for ``make faults``; ``short`` for CI (same faults, fewer and smaller)."""
    n, rate = (6_000, 600.0) if short else (40_000, 1_500.0)
    kills = 2 if short else 5
    files = 2_000 if short else 10_000
    return [
        Scenario("baseline (no fault)", lambda run: None, n // 2, rate),
        Scenario(f"agent kill -9 x{kills}", agent_kill9(kills), n, rate),
        Scenario(f"indexer kill -9 x{kills}", indexer_kill9(kills), n, rate),
        Scenario(f"both kill -9 x{kills}", both_kill9(kills), n, rate),
        Scenario("Kafka stopped " + ("10s" if short else "30s"),
                 service_outage("kafka", 10 if short else 30), n, rate),
        Scenario("OpenSearch stopped " + ("15s" if short else "60s"),
                 service_outage("opensearch", 15 if short else 60), n, rate),
        Scenario("rotation: rename+gzip /0.5s", kubelet_rotation(0.5), n, rate),
        Scenario("rotation: copytruncate /1s", copytruncate(1.0), n, rate),
        Scenario("delete + recreate /2s", delete_recreate(2.0), n, rate),
        Scenario("checkpoint dir full, read-only", checkpoint_dir_trouble, n, rate,
                 prepare=mount_small_state_dir, cleanup=unmount_state_dir),
        Scenario("bad input", bad_input, n // 2, rate,
                 agent={"containers": {"partial_timeout_s": 2.0}},
                 indexer={"processing": {"target_field": ""}}),
        Scenario(f"{files:,} files at once", many_files(files, 2), n // 10, rate,
                 agent={"max_open_files": 256}),
    ]
