"""The pulumi drift engine: engine events (built with the SDK's own types) into drift items,
and the real Automation API call path up to a stand-in `pulumi` executable."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import (
    DiffKind,
    EngineEvent,
    OpType,
    PropertyDiff,
    ResOutputsEvent,
    StepEventMetadata,
    StepEventStateMetadata,
)

from redisguard.core.errors import PermanentError, TransientError
from redisguard.daemon.checks import drift_pulumi
from redisguard.daemon.checks.drift import run_scan
from redisguard.daemon.checks.ignore import IgnoreRules
from redisguard.daemon.checks.protocol import CancelToken
from redisguard.daemon.config import IgnoreRule, PulumiSettings, config_from_mapping
from redisguard.daemon.reports.drift import DriftItem, PropertyDrift, StackReport
from tests.fixtures.processes import wait_for

INSTANCE = "gcp:redis/instance:Instance"
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def urn(name: str, type_: str = INSTANCE) -> str:
    return f"urn:pulumi:staging::redis-fleet::redisguard:fleet:RedisCluster${type_}::{name}"


def state(name: str, inputs: dict[str, Any], outputs: dict[str, Any] | None = None) -> StepEventStateMetadata:
    return StepEventStateMetadata(
        type=INSTANCE,
        urn=urn(name),
        id=f"projects/redisguard-staging/locations/europe-west1/instances/{name}",
        parent="",
        provider="urn:pulumi:staging::redis-fleet::pulumi:providers:gcp::default::id",
        custom=True,
        inputs=inputs,
        outputs=outputs if outputs is not None else dict(inputs),
    )


def outputs_event(
    op: OpType,
    name: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    detailed: dict[str, DiffKind] | None = None,
    diffs: list[str] | None = None,
    type_: str = INSTANCE,
    old_outputs: dict[str, Any] | None = None,
    new_outputs: dict[str, Any] | None = None,
) -> EngineEvent:
    metadata = StepEventMetadata(
        op=op,
        urn=urn(name, type_),
        type=type_,
        provider="",
        old=state(name, old, old_outputs) if old is not None else None,
        new=state(name, new, new_outputs) if new is not None else None,
        diffs=diffs if diffs is not None else sorted({p.split(".")[0].split("[")[0] for p in detailed or {}}),
        detailed_diff={path: PropertyDiff(kind, False) for path, kind in (detailed or {}).items()},
    )
    return EngineEvent(sequence=1, timestamp=int(time.time()), res_outputs_event=ResOutputsEvent(metadata=metadata))


BASE = {
    "name": "redis-sidekiq",
    "memorySizeGb": 2,
    "tier": "BASIC",
    "redisVersion": "REDIS_6_X",
    "authEnabled": True,
    "redisConfigs": {"maxmemory-policy": "noeviction", "activedefrag": "yes"},
    "persistenceConfig": {"persistenceMode": "RDB", "rdbSnapshotPeriod": "TWENTY_FOUR_HOURS"},
    "maintenancePolicy": {"weeklyMaintenanceWindows": [{"day": "SUNDAY", "startTime": {"hours": 8, "minutes": 0}}]},
    "labels": {"env": "staging"},
}


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    out.update(changes)
    return out


def parse(events: list[EngineEvent], rules: IgnoreRules | None = None) -> list[DriftItem]:
    return drift_pulumi.items_from_events(events, rules or IgnoreRules())


def test_update_event_becomes_a_changed_item_with_state_and_live_values() -> None:
    live = with_changes(BASE, memorySizeGb=3)
    items = parse([outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, {"memorySizeGb": DiffKind.UPDATE})])
    assert items == [
        DriftItem(
            resource="redis-sidekiq",
            type=INSTANCE,
            kind="changed",
            properties=(PropertyDrift(path="memorySizeGb", expected=2, actual=3),),
        )
    ]


def test_live_values_come_from_the_refreshed_outputs_and_state_values_from_the_state_inputs() -> None:
    # The engine diffs the refreshed outputs (live) against the state's inputs (declared) and
    # inverts that diff; a provider may hand back the old inputs unchanged on refresh, so the
    # live side must not be read from the new inputs when the diff is not an input diff.
    live_outputs = with_changes(BASE, memorySizeGb=3, redisConfigs={"maxmemory-policy": "allkeys-lru", "activedefrag": "yes"})
    metadata = StepEventMetadata(
        op=OpType.UPDATE,
        urn=urn("redis-sidekiq"),
        type=INSTANCE,
        provider="",
        old=state("redis-sidekiq", BASE, with_changes(BASE, memorySizeGb=2)),
        new=state("redis-sidekiq", BASE, live_outputs),  # inputs as they were, outputs as they are
        diffs=["memorySizeGb", "redisConfigs"],
        detailed_diff={
            "memorySizeGb": PropertyDiff(DiffKind.UPDATE, False),
            'redisConfigs["maxmemory-policy"]': PropertyDiff(DiffKind.UPDATE, False),
        },
    )
    event = EngineEvent(sequence=1, timestamp=0, res_outputs_event=ResOutputsEvent(metadata=metadata))
    [item] = parse([event])
    assert item.properties == (
        PropertyDrift(path="memorySizeGb", expected=2, actual=3),
        PropertyDrift(path="redisConfigs.maxmemory-policy", expected="noeviction", actual="allkeys-lru"),
    )
    # The same without a detailed diff (only the changed top-level keys).
    metadata.detailed_diff = {}
    [item] = parse([event])
    assert item.properties == (
        PropertyDrift(path="memorySizeGb", expected=2, actual=3),
        PropertyDrift(path="redisConfigs.maxmemory-policy", expected="noeviction", actual="allkeys-lru"),
    )


def test_delete_event_is_a_deleted_resource_and_same_is_nothing() -> None:
    items = parse(
        [
            outputs_event(OpType.SAME, "redis-cache", BASE, BASE),
            outputs_event(OpType.DELETE, "redis-sessions", BASE, None),
        ]
    )
    assert items == [DriftItem(resource="redis-sessions", type=INSTANCE, kind="deleted")]


def test_nested_detailed_diff_paths_read_the_nested_values() -> None:
    live = with_changes(
        BASE,
        redisConfigs={"maxmemory-policy": "allkeys-lru", "activedefrag": "yes"},
        maintenancePolicy={"weeklyMaintenanceWindows": [{"day": "MONDAY", "startTime": {"hours": 8, "minutes": 30}}]},
        persistenceConfig={"persistenceMode": "DISABLED"},
        labels={"env": "staging", "owner": "bob"},
    )
    detailed = {
        'redisConfigs["maxmemory-policy"]': DiffKind.UPDATE,
        "maintenancePolicy.weeklyMaintenanceWindows[0].day": DiffKind.UPDATE,
        "maintenancePolicy.weeklyMaintenanceWindows[0].startTime.minutes": DiffKind.UPDATE,
        "persistenceConfig.persistenceMode": DiffKind.UPDATE,
        "persistenceConfig.rdbSnapshotPeriod": DiffKind.DELETE,
        "labels.owner": DiffKind.ADD,
    }
    [item] = parse([outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, detailed)])
    assert item.properties == (
        PropertyDrift(path="labels.owner", expected=None, actual="bob"),
        PropertyDrift(path="maintenancePolicy.weeklyMaintenanceWindows[0].day", expected="SUNDAY", actual="MONDAY"),
        PropertyDrift(path="maintenancePolicy.weeklyMaintenanceWindows[0].startTime.minutes", expected=0, actual=30),
        PropertyDrift(path="persistenceConfig.persistenceMode", expected="RDB", actual="DISABLED"),
        PropertyDrift(path="persistenceConfig.rdbSnapshotPeriod", expected="TWENTY_FOUR_HOURS", actual=None),
        PropertyDrift(path="redisConfigs.maxmemory-policy", expected="noeviction", actual="allkeys-lru"),
    )


def test_secrets_show_as_secret_and_their_values_never_reach_the_report() -> None:
    old = with_changes(BASE)
    new = with_changes(BASE)
    old_out = with_changes(BASE, authString="[secret]")
    # An event log written with secrets shown must still not leak them into a report.
    new_out = with_changes(BASE, authString={SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "value": "hunter2-rotated"})
    new["labels"] = {"env": "staging", "token": "s3cr3t-label"}
    event = outputs_event(
        OpType.UPDATE,
        "redis-sidekiq",
        old,
        new,
        {"authString": DiffKind.UPDATE, "labels.token": DiffKind.ADD},
        old_outputs=old_out,
        new_outputs=new_out,
    )
    [item] = parse([event])
    assert item.properties == (
        PropertyDrift(path="authString", expected="[secret]", actual="[secret]"),
        PropertyDrift(path="labels.token", expected=None, actual="[secret]"),
    )
    assert "hunter2" not in item.model_dump_json()
    assert "s3cr3t" not in item.model_dump_json()


def test_builtin_and_user_ignore_rules_drop_properties_and_leave_no_phantom_drift() -> None:
    live = with_changes(
        BASE,
        labels={"env": "staging", "last-touched-by": "alice"},
        currentLocationId="europe-west1-c",
        maintenanceSchedules=[{"startTime": "2026-12-01T08:00:00Z"}],
        persistenceConfig={"persistenceMode": "RDB", "rdbSnapshotPeriod": "TWENTY_FOUR_HOURS", "rdbNextSnapshotTime": "x"},
    )
    noisy = {
        "currentLocationId": DiffKind.UPDATE,
        "maintenanceSchedules": DiffKind.ADD,
        "persistenceConfig.rdbNextSnapshotTime": DiffKind.ADD,
        'labels["last-touched-by"]': DiffKind.ADD,
        "nodes[0].zone": DiffKind.UPDATE,
    }
    rules = IgnoreRules([IgnoreRule(type=INSTANCE, path="labels.last-touched-by")])
    only_noise = outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, noisy)
    assert parse([only_noise], rules) == []

    live_with_memory = with_changes(live, memorySizeGb=4)
    mixed = outputs_event(OpType.UPDATE, "redis-cache", BASE, live_with_memory, {**noisy, "memorySizeGb": DiffKind.UPDATE})
    [item] = parse([mixed], rules)
    assert [p.path for p in item.properties] == ["memorySizeGb"]
    # Without the user rule the label is drift.
    [item] = parse([mixed])
    assert [p.path for p in item.properties] == ["labels.last-touched-by", "memorySizeGb"]


def test_user_rule_for_one_resource_leaves_the_others_reported() -> None:
    live = with_changes(BASE, memorySizeGb=5)
    events = [
        outputs_event(OpType.UPDATE, "redis-cache", BASE, live, {"memorySizeGb": DiffKind.UPDATE}),
        outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, {"memorySizeGb": DiffKind.UPDATE}),
    ]
    rules = IgnoreRules([IgnoreRule(type="gcp:redis/*", path="memorySizeGb", resource="redis-cache")])
    assert [i.resource for i in parse(events, rules)] == ["redis-sidekiq"]


def test_without_detailed_diff_the_changed_keys_are_compared_down_to_the_leaves() -> None:
    live = with_changes(BASE, labels={"env": "prod"}, memorySizeGb=2)
    event = outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, live, detailed=None, diffs=["labels"])
    [item] = parse([event])
    assert item.properties == (PropertyDrift(path="labels.env", expected="staging", actual="prod"),)


def test_legacy_refresh_without_any_diff_compares_outputs_and_applies_ignore_rules() -> None:
    old_out = with_changes(BASE, currentLocationId="europe-west1-b", host="10.0.0.3")
    new_out = with_changes(BASE, currentLocationId="europe-west1-c", host="10.0.0.3", memorySizeGb=4)
    event = outputs_event(OpType.UPDATE, "redis-sidekiq", BASE, BASE, detailed=None, diffs=[], old_outputs=old_out, new_outputs=new_out)
    [item] = parse([event])
    assert item.properties == (PropertyDrift(path="memorySizeGb", expected=2, actual=4),)


def test_stack_and_provider_resources_are_never_drift() -> None:
    events = [
        outputs_event(OpType.UPDATE, "redis-fleet-staging", {"a": 1}, {"a": 2}, {"a": DiffKind.UPDATE}, type_="pulumi:pulumi:Stack"),
        outputs_event(OpType.UPDATE, "default", {"project": "a"}, {"project": "b"}, {"project": DiffKind.UPDATE}, type_="pulumi:providers:gcp"),
    ]
    assert parse(events) == []


def test_events_in_the_cli_json_form_parse_to_the_same_items() -> None:
    """The event log form the CLI writes (apitype JSON), parsed by the SDK's own from_json."""
    raw = {
        "sequence": 7,
        "timestamp": 1700000000,
        "resOutputsEvent": {
            "metadata": {
                "op": "update",
                "urn": urn("redis-sidekiq"),
                "type": INSTANCE,
                "provider": "",
                "old": {"type": INSTANCE, "urn": urn("redis-sidekiq"), "id": "x", "parent": "", "provider": "", "inputs": BASE, "outputs": BASE},
                "new": {"type": INSTANCE, "urn": urn("redis-sidekiq"), "id": "x", "parent": "", "provider": "", "inputs": with_changes(BASE, memorySizeGb=3), "outputs": with_changes(BASE, memorySizeGb=3)},
                "diffs": ["memorySizeGb"],
                "detailedDiff": {"memorySizeGb": {"diffKind": "update", "inputDiff": False}},
            },
            "planning": True,
        },
    }
    items = parse([EngineEvent.from_json(raw)])
    assert items[0].properties == (PropertyDrift(path="memorySizeGb", expected=2, actual=3),)


# --- the Automation API call path with a stand-in CLI ------------------------------------------

FAKE_PULUMI = textwrap.dedent(
    """\
    #!{python}
    # Stand-in `pulumi` for tests: answers `version`, `stack select` and
    # `refresh --preview-only` the way the CLI does, per a JSON scenario.
    import json, os, subprocess, sys, time

    args = [a for a in sys.argv[1:] if a != "--non-interactive"]
    scenario = json.load(open(os.environ["FAKE_PULUMI_SCENARIO"]))
    with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
        log.write(json.dumps({{"args": args, "cwd": os.getcwd(),
                              "backend": os.environ.get("PULUMI_BACKEND_URL"),
                              "token": os.environ.get("PULUMI_ACCESS_TOKEN")}}) + "\\n")
    if args == ["version"]:
        print("v" + scenario.get("version", "3.210.0"))
        sys.exit(0)
    stack = args[args.index("--stack") + 1]
    spec = scenario["stacks"].get(stack)
    if spec is None:
        print(f"error: no stack named '{{stack}}' found", file=sys.stderr)
        sys.exit(6)  # the real CLI's status for a missing stack (v3.274.1)
    if args[:2] == ["stack", "select"]:
        sys.exit(0)
    assert args[:2] == ["refresh", "--preview-only"], args
    mode = spec.get("mode", "events")
    if mode == "locked":
        # The real CLI (v3.274.1) takes no lock for `refresh --preview-only` on a file:// backend,
        # so this is what a backend that does lock, or a concurrent `up`, answers; the text is the real one.
        print("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) "
              "to end or delete the lock file with `pulumi cancel`.", file=sys.stderr)
        sys.exit(255)
    if mode == "leak":
        # A CLI (or plugin) that echoes its credentials in an error message.
        print(f"error: backend {{os.environ.get('PULUMI_BACKEND_URL')}} refused token={{os.environ.get('PULUMI_ACCESS_TOKEN')}} "
              f"passphrase={{os.environ.get('PULUMI_CONFIG_PASSPHRASE')}}", file=sys.stderr)
        sys.exit(255)
    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(spec["pid_file"], "w") as f:
            f.write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(600)
    started = time.time()
    if "barrier" in spec:
        # Wait (bounded) until `size` refreshes run at once: proves concurrency without timing.
        barrier = spec["barrier"]
        open(os.path.join(barrier["dir"], stack), "w").close()
        deadline = time.time() + 30
        while len(os.listdir(barrier["dir"])) < barrier["size"] and time.time() < deadline:
            time.sleep(0.01)
    with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
        log.write(json.dumps({{"refresh": stack, "start": started, "end": time.time()}}) + "\\n")
    events = [{{"preludeEvent": {{"config": {{}}}}}}] + spec["events"] + [
        {{"summaryEvent": {{"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": {{"same": 1}}}}}}]
    for n, event in enumerate(events):
        event.update(sequence=n, timestamp=int(time.time()))
    target = args[args.index("--event-log") + 1]
    if target.startswith("tcp://"):
        import grpc
        from pulumi.runtime.proto import events_pb2, events_pb2_grpc
        with grpc.insecure_channel(target[len("tcp://"):]) as channel:
            stub = events_pb2_grpc.EventsStub(channel)
            stub.StreamEvents(iter([events_pb2.EventRequest(event=json.dumps(e)) for e in events]))
    else:
        with open(target, "a") as f:
            for event in events + [{{"cancelEvent": {{}}, "sequence": len(events), "timestamp": 0}}]:
                f.write(json.dumps(event) + "\\n")
    print("Previewing refresh (" + stack + "):")
    """
)


def _json_outputs_event(op: str, name: str, old: dict | None, new: dict | None, detailed: dict[str, str]) -> dict:
    def st(values: dict | None) -> dict | None:
        if values is None:
            return None
        return {"type": INSTANCE, "urn": urn(name), "id": name, "parent": "", "provider": "", "inputs": values, "outputs": values}

    return {
        "resOutputsEvent": {
            "metadata": {
                "op": op,
                "urn": urn(name),
                "type": INSTANCE,
                "provider": "",
                "old": st(old),
                "new": st(new),
                "diffs": sorted({p.split(".")[0] for p in detailed}),
                "detailedDiff": {p: {"diffKind": k, "inputDiff": False} for p, k in detailed.items()},
            },
            "planning": True,
        }
    }


@dataclass(frozen=True)
class FakePulumi:
    """What `fake_pulumi` returns: called with the stacks' scenario it sets it and returns the call log;
    `work_dir` is the program folder (with its Pulumi.yaml) the stacks run in."""

    work_dir: Path
    scenario_file: Path
    log: Path

    def __call__(self, stacks: dict[str, dict], version: str = "3.210.0") -> Path:
        self.scenario_file.write_text(json.dumps({"version": version, "stacks": stacks}))
        return self.log


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    """Put a stand-in `pulumi` first on PATH; returns what sets its scenario."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "pulumi"
    exe.write_text(FAKE_PULUMI.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "pulumi-calls.jsonl"
    scenario_file = tmp_path / "scenario.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_SCENARIO", str(scenario_file))
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    work_dir = tmp_path / "program"
    work_dir.mkdir()
    (work_dir / "Pulumi.yaml").write_text("name: redis-fleet\nruntime: python\n")
    return FakePulumi(work_dir=work_dir, scenario_file=scenario_file, log=log)


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("version", ["3.210.0", "3.200.0"], ids=["grpc-event-stream", "event-log-file"])
def test_refresh_preview_through_the_automation_api(fake_pulumi: FakePulumi, version: str) -> None:
    live = with_changes(BASE, memorySizeGb=3, authString="[secret]")
    events = [
        _json_outputs_event("same", "redis-cache", BASE, BASE, {}),
        _json_outputs_event("update", "redis-sidekiq", BASE, live, {"memorySizeGb": "update", "currentLocationId": "update"}),
        _json_outputs_event("delete", "redis-sessions", BASE, None, {}),
    ]
    log = fake_pulumi({"staging": {"events": events}}, version=version)
    settings = PulumiSettings(work_dir=fake_pulumi.work_dir, stacks=("staging",), backend_url="file:///tmp/state")

    items = drift_pulumi.check_stack("staging", settings, IgnoreRules())

    assert sorted(items, key=lambda i: i.resource) == [
        DriftItem(resource="redis-sessions", kind="deleted"),
        DriftItem(resource="redis-sidekiq", kind="changed", properties=(PropertyDrift(path="memorySizeGb", expected=2, actual=3),)),
    ]
    refresh = [c for c in _calls(log) if c.get("args", [])[:1] == ["refresh"]]
    assert len(refresh) == 1
    args = refresh[0]["args"]
    assert args[:2] == ["refresh", "--preview-only"]
    assert args[args.index("--stack") + 1] == "staging"
    assert "--show-secrets" not in args
    assert refresh[0]["cwd"] == str(fake_pulumi.work_dir)
    assert refresh[0]["backend"] == "file:///tmp/state"


def test_locked_stack_is_a_transient_error(fake_pulumi: FakePulumi) -> None:
    fake_pulumi({"staging": {"mode": "locked"}})
    settings = PulumiSettings(work_dir=fake_pulumi.work_dir, stacks=("staging",))
    with pytest.raises(TransientError, match="stack is locked by another update"):
        drift_pulumi.check_stack("staging", settings, IgnoreRules())


def test_unknown_stack_is_a_permanent_error(fake_pulumi: FakePulumi) -> None:
    fake_pulumi({})
    settings = PulumiSettings(work_dir=fake_pulumi.work_dir, stacks=("staging",))
    with pytest.raises(PermanentError, match="no stack named 'staging' found"):
        drift_pulumi.check_stack("staging", settings, IgnoreRules())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of the CLI stays a zombie until its (also killed) parent is reaped.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_cli_and_its_children(fake_pulumi: FakePulumi, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    fake_pulumi({"staging": {"mode": "hang", "pid_file": str(pid_file)}})
    settings = PulumiSettings(work_dir=fake_pulumi.work_dir, stacks=("staging",), refresh_timeout_seconds=3)
    started = time.monotonic()
    with pytest.raises(TransientError, match="timed out after 3s"):
        drift_pulumi.check_stack("staging", settings, IgnoreRules())
    elapsed = time.monotonic() - started
    cli_pid, child_pid = (int(p) for p in pid_file.read_text().split())
    assert not _alive(cli_pid)
    assert not _alive(child_pid)
    assert elapsed < 3 + 10  # deadline plus the kill grace period, not the CLI's 600 s


STACKS_IN_LINE = ("a", "b", "c")


def _hung_scan(fake_pulumi: FakePulumi, tmp_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    """`redisguard drift-report` over three stacks, one at a time, whose CLIs hang; returns it
    once the first stack's CLI and its child run."""
    fake_pulumi({name: {"mode": "hang", "pid_file": str(tmp_path / f"pids-{name}")} for name in STACKS_IN_LINE})
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {fake_pulumi.work_dir}\n  stacks: [a, b, c]\nparallelism: 1\n")
    scan = subprocess.Popen(
        [sys.executable, "-m", "redisguard.daemon.cli", "drift-report", "--config", str(config), "--engine", "pulumi"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_file = tmp_path / "pids-a"
    try:
        wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, timeout=30, what="the CLI to start")
    except TimeoutError:
        scan.kill()
        raise
    cli_pid, child_pid = (int(p) for p in pid_file.read_text().split())
    return scan, cli_pid, child_pid


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_interrupting_a_scan_ends_it_at_once_with_the_cli_and_its_children(
    fake_pulumi: FakePulumi, tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    # The CLI runs in its own process group (for the timeout kill), where a Ctrl-C on the
    # terminal does not reach it; without help it would run on for the whole refresh timeout.
    scan, cli_pid, child_pid = _hung_scan(fake_pulumi, tmp_path)
    try:
        scan.send_signal(sig)
        _, stderr = scan.communicate(timeout=10 + 2)  # the kill grace period, not the 600 s refresh timeout
    finally:
        scan.kill()
    assert scan.returncode == status, stderr
    assert stderr.splitlines() == [
        f"redisguard drift-report: interrupted by {sig.name}; running checks were stopped, no report written"
    ]
    assert not _alive(cli_pid)
    assert not _alive(child_pid)
    # The queued stacks were dropped: no CLI was started for them after the interrupt.
    calls = _calls(tmp_path / "pulumi-calls.jsonl")
    assert {c["args"][c["args"].index("--stack") + 1] for c in calls if "--stack" in c.get("args", [])} == {"a"}


def test_a_scan_cancelled_from_another_thread_stops_its_cli_and_the_next_scan_runs_normally(
    fake_pulumi: FakePulumi, tmp_path: Path
) -> None:
    # A daemon stops a scan from its own thread (shutdown, a newer run): no signal, no main thread.
    pid_file = tmp_path / "pids"
    fake_pulumi({"a": {"mode": "hang", "pid_file": str(pid_file)}, "b": {"events": []}})
    config = config_from_mapping({"pulumi": {"work_dir": str(fake_pulumi.work_dir), "stacks": ["a", "b"]}, "parallelism": 1})
    cancel = CancelToken()
    done: list[StackReport] = []
    result: list[Any] = []
    scan = threading.Thread(target=lambda: result.append(run_scan(config, ["a", "b"], ["pulumi"], cancel=cancel, on_done=done.append)))
    scan.start()
    wait_for(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, timeout=30, what="the CLI to start")
    cli_pid, child_pid = (int(p) for p in pid_file.read_text().split())
    started = time.monotonic()
    cancel.cancel()
    scan.join(timeout=10)
    assert not scan.is_alive()
    assert time.monotonic() - started < 5  # the cancel grace, not the 600 s refresh timeout
    # No verdict for a stack whose check was cancelled, and the queued stack never started.
    assert result[0].stacks == () and done == []
    assert not _alive(cli_pid)
    assert not _alive(child_pid)
    assert {c["args"][c["args"].index("--stack") + 1] for c in _calls(tmp_path / "pulumi-calls.jsonl") if "--stack" in c.get("args", [])} == {"a"}

    # Nothing of the cancelled run sticks: the next scan, with its own token, checks every stack.
    fake_pulumi({"a": {"events": []}, "b": {"events": []}})
    report = run_scan(config, ["a", "b"], ["pulumi"])
    assert [(s.stack, s.status) for s in report.stacks] == [("a", "in_sync"), ("b", "in_sync")]


def test_a_killed_scan_takes_its_cli_with_it(fake_pulumi: FakePulumi, tmp_path: Path) -> None:
    scan, cli_pid, child_pid = _hung_scan(fake_pulumi, tmp_path)
    try:
        scan.kill()
        scan.communicate(timeout=10)
        wait_for(lambda: not _alive(cli_pid), timeout=10, what="the CLI to die with its parent")
    finally:
        # The CLI's own children (plugins) are its business; this stand-in's is cleaned up here.
        with contextlib.suppress(ProcessLookupError):
            os.kill(child_pid, signal.SIGKILL)


def test_parallel_stacks_report_each_their_own_status(fake_pulumi: FakePulumi) -> None:
    live = with_changes(BASE, memorySizeGb=3)
    fake_pulumi(
        {
            "staging": {"events": [_json_outputs_event("update", "redis-sidekiq", BASE, live, {"memorySizeGb": "update"})]},
            "production": {"mode": "locked"},
            "dev": {"events": [_json_outputs_event("same", "redis-cache", BASE, BASE, {})]},
        }
    )
    config = config_from_mapping(
        {"pulumi": {"work_dir": str(fake_pulumi.work_dir), "stacks": ["staging", "production", "dev"]}, "parallelism": 3}
    )
    report = run_scan(config, ["staging", "production", "dev"], ["pulumi"])
    status = {s.stack: s.status for s in report.stacks}
    assert status == {"staging": "drift", "production": "error", "dev": "in_sync"}
    assert report.exit_code == 1
    assert "locked" in (report.stacks[1].error or "")


@pytest.mark.parametrize("parallelism", [1, 3])
def test_stacks_run_in_parallel_up_to_the_configured_bound(fake_pulumi: FakePulumi, parallelism: int) -> None:
    stacks = ["a", "b", "c"]
    # Each refresh holds until `parallelism` of them have started: run together they overlap
    # whatever the machine's load; run one at a time (bound 1) they cannot.
    barrier_dir = fake_pulumi.work_dir.parent / "barrier"
    barrier = {"dir": str(barrier_dir), "size": parallelism}
    barrier_dir.mkdir()
    log = fake_pulumi({name: {"events": [], "barrier": barrier} for name in stacks})
    config = config_from_mapping(
        {"pulumi": {"work_dir": str(fake_pulumi.work_dir), "stacks": stacks}, "parallelism": parallelism}
    )
    report = run_scan(config, stacks, ["pulumi"])
    assert [s.status for s in report.stacks] == ["in_sync"] * 3
    runs = [c for c in _calls(log) if "refresh" in c]
    events = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    running = most = 0
    for _, delta in events:
        running += delta
        most = max(most, running)
    assert most == parallelism


def test_missing_cli_is_a_one_line_permanent_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi anywhere
    settings = PulumiSettings(work_dir=tmp_path, stacks=("staging",))
    with pytest.raises(PermanentError) as info:
        drift_pulumi.check_stack("staging", settings, IgnoreRules())
    message = str(info.value)
    assert "pulumi CLI was not found on PATH" in message
    assert "\n" not in message


def test_access_token_reaches_the_cli_and_nothing_else(
    fake_pulumi: FakePulumi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from redisguard.daemon.cli.main import main

    caplog.set_level("DEBUG")
    token = "pul-0123456789abcdef-not-for-logs"
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", token)
    live = with_changes(BASE, memorySizeGb=3)
    log = fake_pulumi({"staging": {"events": [_json_outputs_event("update", "redis-sidekiq", BASE, live, {"memorySizeGb": "update"})]}})
    config = tmp_path / "redisguard.yaml"
    config.write_text(f"pulumi:\n  work_dir: {fake_pulumi.work_dir}\n  stacks: [staging]\n  backend_url: https://api.pulumi.com\n")
    for fmt in ("table", "json", "markdown"):
        code = main(["--log-level", "DEBUG", "drift-report", "--config", str(config), "--engine", "pulumi", "--format", fmt])
        assert code == 2
        captured = capsys.readouterr()
        assert "memorySizeGb" in captured.out
        assert token not in captured.out + captured.err
    assert "effective config" in caplog.text and "'access_token': '[set]'" in caplog.text
    assert token not in caplog.text
    assert {c["token"] for c in _calls(log) if "args" in c} == {token}


def test_credentials_a_cli_echoes_never_reach_the_report_or_stderr(
    fake_pulumi: FakePulumi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from redisguard.daemon.cli.main import main

    token, passphrase, password = "pul-SECRETTOKEN123", "correct-horse-battery", "hunter3pw"
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", token)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", passphrase)
    fake_pulumi({"staging": {"mode": "leak"}})
    config = tmp_path / "redisguard.yaml"
    config.write_text(
        f"pulumi:\n  work_dir: {fake_pulumi.work_dir}\n  stacks: [staging]\n"
        f"  backend_url: https://user:{password}@api.example.internal\n"
    )
    code = main(["drift-report", "--config", str(config), "--engine", "pulumi", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 1
    [stack] = json.loads(captured.out)["stacks"]
    assert stack["error"] == (
        "pulumi refresh failed: backend https://user:[redacted]@api.example.internal refused token=[redacted] "
        "passphrase=[redacted]"
    )
    for secret in (token, passphrase, password):
        assert secret not in captured.out + captured.err
