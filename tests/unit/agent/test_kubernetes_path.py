from __future__ import annotations

import fnmatch
import glob
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.sources.kubernetes import PodFilter, PodLogRef, parse_pod_log_path, pod_glob
from logferry.config._agent_sources import ContainerLogSettings

UID = "5d7c8e2a-9f1b-4c3d-8e7f-0a1b2c3d4e5f"


def test_live_file() -> None:
    ref = parse_pod_log_path(f"/var/log/pods/kube-system_coredns-5d78c9869d-x2xkq_{UID}"
                             "/coredns/3.log")
    assert ref == PodLogRef("kube-system", "coredns-5d78c9869d-x2xkq", UID, "coredns", 3)
    assert ref is not None and ref.rotated is None
    assert ref.wire_fields() == {"namespace": "kube-system", "pod": "coredns-5d78c9869d-x2xkq",
                                 "pod_uid": UID, "container": "coredns", "restart": 3}


def test_rotated_file() -> None:
    ref = parse_pod_log_path(f"/var/log/pods/default_web-0_{UID}/nginx/0.log.20240501-101500")
    assert ref == PodLogRef("default", "web-0", UID, "nginx", 0, "20240501-101500")


def test_static_pod_with_a_hash_uid_and_dotted_name() -> None:
    ref = parse_pod_log_path("/var/log/pods/kube-system_etcd-node-1.example.com_"
                             "b0a5b7cbd6e7a9c8f1e2d3c4b5a69788/etcd/12.log")
    assert ref is not None
    assert (ref.pod, ref.pod_uid, ref.restart) == ("etcd-node-1.example.com",
                                                   "b0a5b7cbd6e7a9c8f1e2d3c4b5a69788", 12)


@pytest.mark.parametrize("root", ["", "/", "/mnt/node/var/log/pods/", "relative/dir/"])
def test_any_root(root: str) -> None:
    ref = parse_pod_log_path(f"{root}ns_pod_{UID}/c/0.log")
    assert ref is not None and (ref.namespace, ref.pod, ref.container) == ("ns", "pod", "c")


@pytest.mark.parametrize("path", [
    f"/var/log/pods/ns_pod_{UID}/c/0.log.20240501-101500.gz",  # compressed
    f"/var/log/pods/ns_pod_{UID}/c/0.log.20240501-101500.tmp",  # compression in progress
    f"/var/log/pods/ns_pod_{UID}/c/0.log.2024",
    f"/var/log/pods/ns_pod_{UID}/c/x.log",
    f"/var/log/pods/ns_pod_{UID}/c/0.txt",
    f"/var/log/pods/ns_pod_{UID}/0.log",  # no container directory
    f"/var/log/pods/ns_pod_x_{UID}/c/0.log",  # four fields
    "/var/log/pods/ns_pod/c/0.log",
    f"/var/log/pods/NS_pod_{UID}/c/0.log",  # not a DNS name
    f"/var/log/pods/ns_-pod_{UID}/c/0.log",
    f"/var/log/pods/ns__{UID}/c/0.log",
    f"/var/log/pods/ns_pod_{UID}/C/0.log",
    f"/var/log/pods/ns_pod_{UID}/c.d/0.log",  # container names are labels, no dots
    f"/var/log/pods/{'n' * 64}_pod_{UID}/c/0.log",  # namespace over 63
    f"/var/log/containers/pod_ns_c-{'a' * 64}.log",  # the symlink name, not the kubelet's
    "0.log",
    "",
])
def test_other_paths(path: str) -> None:
    assert parse_pod_log_path(path) is None


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=80))
def test_never_raises(path: str) -> None:
    ref = parse_pod_log_path(path)
    assert ref is None or isinstance(ref, PodLogRef)


_alnum = st.sampled_from("abcxyz019")
_label = st.builds(lambda a, mid, b: a + mid + b if mid else a, _alnum,
                   st.text("a-z9-", max_size=8), _alnum)


@settings(deadline=None, max_examples=100)
@given(_label, st.lists(_label, min_size=1, max_size=3), _label, st.integers(0, 10**6))
def test_round_trip(namespace: str, pod_parts: list[str], container: str, restart: int) -> None:
    pod = ".".join(pod_parts)
    path = f"/var/log/pods/{namespace}_{pod}_{UID}/{container}/{restart}.log"
    assert parse_pod_log_path(path) == PodLogRef(namespace, pod, UID, container, restart)


def test_pod_glob_finds_live_and_rotated_files(tmp_path: Path) -> None:
    root = tmp_path / "pods [node]"  # glob metacharacters in the root are taken literally
    wanted = [f"ns_pod_{UID}/c/0.log", f"ns_pod_{UID}/c/0.log.20240501-101500",
              f"other_web-1_{UID}/app/2.log"]
    unwanted = [f"ns_pod_{UID}/c/0.log.20240430-101500.gz", "stray.log", "ns_pod/c/0.log"]
    for name in wanted + unwanted:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n")
    found = glob.glob(pod_glob(str(root)))
    kept = sorted(os.path.relpath(p, root) for p in found if parse_pod_log_path(p) is not None)
    assert kept == sorted(wanted)
    assert pod_glob("/var/log/pods/") == "/var/log/pods/*_*_*/*/*.log*"
    assert fnmatch.fnmatch(f"/var/log/pods/ns_pod_{UID}/c/0.log", pod_glob("/var/log/pods"))


def test_pod_filter() -> None:
    everything = PodFilter()
    assert everything.allows("default") and everything.allows("kube-system")
    only_apps = PodFilter(include_namespaces=["app-*", "web"], exclude_namespaces=["app-test*"])
    assert only_apps.allows("app-prod") and only_apps.allows("web")
    assert not only_apps.allows("app-test-1")  # exclude wins
    assert not only_apps.allows("webx") and not only_apps.allows("kube-system")
    no_system = PodFilter(exclude_namespaces=["kube-*"])
    assert no_system.allows("default") and not no_system.allows("kube-public")
    assert no_system.exclude_namespaces == ("kube-*",)
    assert not PodFilter(include_namespaces=["Default"]).allows("default")  # case-sensitive


def test_container_log_settings() -> None:
    config = ContainerLogSettings.model_validate(
        {"enabled": True, "root": "/mnt/pods", "include_namespaces": ["app-*"],
         "exclude_namespaces": ["app-test"]})
    assert pod_glob(str(config.root)) == "/mnt/pods/*_*_*/*/*.log*"
    pods = PodFilter(config.include_namespaces, config.exclude_namespaces)
    assert pods.allows("app-1") and not pods.allows("app-test")
    assert ContainerLogSettings().root == Path("/var/log/pods")


@pytest.mark.parametrize("kwargs", [
    {"format": "json"},
    {"partial_max_bytes": 1024},
    {"partial_timeout_s": 0},
    {"include_namespaces": [""]},
    {"exclude_annotation": ""},
    {"namespaces": ["x"]},
])
def test_invalid_container_log_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ContainerLogSettings.model_validate(kwargs)
