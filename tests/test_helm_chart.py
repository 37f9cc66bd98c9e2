"""The Helm chart (deploy/helm/redisguard) with the real helm v4 and the Kubernetes API's own schema.

Nothing here has a cluster: `helm lint` and `helm template` run over the default values and the
variants users install (1 shard; 4 shards twice over, HA; TLS + basic auth + Workload Identity),
every rendered object goes through kubevalidate (the k8s.io/kubernetes module's OpenAPI schema,
strict; the Prometheus Operator's Go types for its objects), values.schema.json must refuse bad
values naming the key, and the PrometheusRule's expressions go through promtool. helm and
kubevalidate come from ./dev's build (tools/helm/build.py); without Go every test here is skipped.
"""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.alerting import RULES, run_tool
from tests.fixtures.repo import REPO, tool_module

CHART = REPO / "deploy" / "helm" / "redisguard"
BCRYPT = "$2y$10$" + "a" * 53  # the shape of a bcrypt hash; no password hashes to it
GCP_SA = "redisguard-reader@acme-ops.iam.gserviceaccount.com"

VARIANTS: dict[str, list[str]] = {
    "defaults": [],
    "one-shard": ["--set", "sharding.shards=1", "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"],
    "four-shards-ha": [
        "--set", "sharding.shards=4", "--set", "sharding.replicasPerShard=2",
        "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
        "--set", "scrapeAnnotations.enabled=true",
    ],
    "tls-basic-auth-workload-identity": [
        "--set", "web.tls.secretName=redisguard-tls",
        "--set-string", f"web.basicAuth.users.prometheus={BCRYPT}",
        "--set", f"workloadIdentity.gcpServiceAccount={GCP_SA}",
        "--set", "pulumiBackend.secretName=pulumi-backend",
        "--set", "serviceMonitor.enabled=true",
        "--set", "serviceMonitor.tlsConfig.serverName=redisguard",
        "--set", "serviceMonitor.basicAuth.username.name=scrape-auth",
        "--set", "serviceMonitor.basicAuth.username.key=username",
        "--set", "serviceMonitor.basicAuth.password.name=scrape-auth",
        "--set", "serviceMonitor.basicAuth.password.key=password",
    ],
}


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubevalidate: Path
    schema: Path
    home: Path

    def run(self, binary: Path, argv: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        # helm's own folders in a tmp home: no user config, cache or repositories.
        env = {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": str(self.home / "cache"),
               "HELM_CONFIG_HOME": str(self.home / "config"), "HELM_DATA_HOME": str(self.home / "data")}
        return subprocess.run([str(binary), *argv], input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False)

    def template(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.helm, ["template", "rg", str(CHART), "--namespace", "ops", *args])

    def rendered(self, *args: str) -> list[dict[str, Any]]:
        result = self.template(*args)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def validate(self, manifest: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.kubevalidate, ["-schema", str(self.schema)], stdin=manifest)


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tools]:
    build = tool_module("helm/build.py")
    bin_dir, schema = build.bin_dir(), build.schema_file()
    if bin_dir is None:
        pytest.skip("go is not installed: helm and kubevalidate cannot be built (./dev test builds them)")
    if not (bin_dir / "helm").is_file() or schema is None or not schema.is_file():
        pytest.skip(f"helm {build.helm_version()} and kubevalidate are not built yet: run ./dev helm (or ./dev test)")
    yield Tools(bin_dir / "helm", bin_dir / "kubevalidate", schema, tmp_path_factory.mktemp("helm-home"))


def kinds(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        out.setdefault(obj["kind"], []).append(obj)
    return out


# --- lint, template, the Kubernetes schema -------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_passes(tools: Tools, variant: str) -> None:
    result = tools.run(tools.helm, ["lint", "--strict", str(CHART), *VARIANTS[variant]])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_object_is_valid_against_the_kubernetes_api_schema(tools: Tools, variant: str) -> None:
    rendered = tools.template(*VARIANTS[variant])
    assert rendered.returncode == 0, rendered.stderr
    result = tools.validate(rendered.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    count = len([d for d in yaml.safe_load_all(rendered.stdout) if d])
    assert result.stdout.strip() == f"{count} objects valid"


def test_kubevalidate_refuses_what_the_api_server_would(tools: Tools) -> None:
    objects = tools.rendered()
    statefulset = kinds(objects)["StatefulSet"][0]
    statefulset["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True  # a typo
    statefulset["spec"]["replicas"] = "four"
    pdb = kinds(objects)["PodDisruptionBudget"][0]
    del pdb["metadata"]["name"]
    service = kinds(objects)["Service"][0]
    service["spec"]["ports"][0].pop("port")
    result = tools.validate(yaml.safe_dump_all(objects))
    assert result.returncode == 1
    assert 'readOnlyRootFileSystem in body is a forbidden property' in result.stdout
    assert "spec.replicas in body must be of type integer" in result.stdout
    assert "PodDisruptionBudget/: metadata.name is required" in result.stdout
    assert "spec.ports[0].port in body is required" in result.stdout
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
               "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "30s"}]}}
    result = tools.validate(yaml.safe_dump(monitor))
    assert result.returncode == 1 and 'unknown field "intervall"' in result.stdout


def test_the_chart_runs_this_version_of_redisguard() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


# --- what each variant must say ------------------------------------------------------------------


def test_defaults_run_one_shard_non_root_on_a_read_only_root_with_writable_home_and_tmp(tools: Tools) -> None:
    by_kind = kinds(tools.rendered())
    assert set(by_kind) == {"ServiceAccount", "ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget", "NetworkPolicy"}
    (statefulset,) = by_kind["StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert statefulset["spec"]["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PULUMI_HOME"].startswith("/var/lib/redisguard/") and "emptyDir" in volumes[mounts["/var/lib/redisguard"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["automountServiceAccountToken"] is False
    (service,) = by_kind["Service"]
    assert service["spec"]["clusterIP"] == "None"
    config = yaml.safe_load(by_kind["ConfigMap"][0]["data"]["redisguard.yaml"])
    assert config["server"] == {"listen": ":9464"}


@pytest.mark.parametrize(("shards", "per_shard"), [(1, 1), (4, 2)])
def test_each_statefulset_runs_one_pod_per_shard_and_tells_the_daemon_the_total(tools: Tools, shards: int, per_shard: int) -> None:
    args = ["--set", f"sharding.shards={shards}", "--set", f"sharding.replicasPerShard={per_shard}"]
    statefulsets = kinds(tools.rendered(*args))["StatefulSet"]
    assert [s["metadata"]["name"] for s in statefulsets] == ["rg-redisguard-a", "rg-redisguard-b"][:per_shard]
    for statefulset in statefulsets:
        assert statefulset["spec"]["replicas"] == shards
        argv = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
        # The ordinal comes from the pod's name (kube-state-metrics' --pod), the total from the values.
        assert argv[argv.index("--shard") + 1] == "auto"
        assert argv[argv.index("--total-shards") + 1] == str(shards)
        assert argv[argv.index("--pod") + 1] == "$(POD_NAME)"
        env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in env
        selector = statefulset["spec"]["selector"]["matchLabels"]
        assert selector.items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()


def test_every_pod_of_four_shards_twice_is_the_shard_of_its_ordinal_to_the_real_daemon(tools: Tools, tmp_path: Path) -> None:
    """The StatefulSets' command line, with the pod names Kubernetes gives, through `redisguard`'s own
    parser and sharding: pod N of each replica set is shard N of 4, so both sets cover every shard once."""
    from redisguard.daemon.cli.main import build_parser
    from redisguard.daemon.config import load_config
    from redisguard.daemon.service.app import sharding_flags
    from redisguard.daemon.sharding import Shard

    by_kind = kinds(tools.rendered(*VARIANTS["four-shards-ha"], "--set", "config.pulumi.stacks={staging}"))
    config = yaml.safe_load(by_kind["ConfigMap"][0]["data"]["redisguard.yaml"])
    config["pulumi"]["work_dir"] = str(REPO / "program")  # the image's /app/program
    config_file = tmp_path / "redisguard.yaml"
    config_file.write_text(yaml.safe_dump(config))
    loaded = load_config(config_file)
    for statefulset in by_kind["StatefulSet"]:
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        shards = []
        for ordinal in range(statefulset["spec"]["replicas"]):
            pod = f"{statefulset['metadata']['name']}-{ordinal}"
            argv = [arg.replace("$(POD_NAME)", pod) for arg in container["args"]]
            args = build_parser().parse_args(argv)
            assert args.command == "daemon" and args.config == "/etc/redisguard/redisguard.yaml"
            shards.append(Shard.of(loaded.with_sharding(sharding_flags(args)).sharding))
        assert shards == [Shard(n, 4) for n in range(4)]


def test_tls_basic_auth_and_workload_identity_come_from_secrets_and_no_key_file(tools: Tools) -> None:
    by_kind = kinds(tools.rendered(*VARIANTS["tls-basic-auth-workload-identity"]))
    (account,) = by_kind["ServiceAccount"]
    assert account["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": GCP_SA}
    pod = by_kind["StatefulSet"][0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["nodeSelector"] == {"iam.gke.io/gke-metadata-server-enabled": "true"}
    assert all(e["name"] != "GOOGLE_APPLICATION_CREDENTIALS" for e in container["env"])
    assert container["envFrom"] == [{"secretRef": {"name": "pulumi-backend"}}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "redisguard-tls"
    (web_secret,) = [s for s in by_kind["Secret"] if s["metadata"]["name"] == "rg-redisguard-web"]
    web = yaml.safe_load(web_secret["stringData"]["web-config.yml"])
    assert web == {
        "tls_server_config": {"cert_file": "/etc/redisguard/tls/tls.crt", "key_file": "/etc/redisguard/tls/tls.key"},
        "basic_auth_users": {"prometheus": BCRYPT},
    }
    config = yaml.safe_load(by_kind["ConfigMap"][0]["data"]["redisguard.yaml"])
    assert config["server"]["web_config_file"] == "/etc/redisguard/web/web-config.yml"
    (monitor,) = by_kind["ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["scheme"] == "https"


def test_the_daemon_accepts_the_rendered_config_and_web_config(tools: Tools, tmp_path: Path) -> None:
    from redisguard.daemon.config import load_config
    from redisguard.daemon.service.webconfig import load_web_config

    by_kind = kinds(tools.rendered(*VARIANTS["tls-basic-auth-workload-identity"], "--set", "config.pulumi.stacks={staging}"))
    config_file = tmp_path / "redisguard.yaml"
    config = yaml.safe_load(by_kind["ConfigMap"][0]["data"]["redisguard.yaml"])
    config["pulumi"]["work_dir"] = str(REPO / "program")  # the image's /app/program
    config["server"]["web_config_file"] = None
    config_file.write_text(yaml.safe_dump(config))
    assert load_config(config_file).server.listen == ":9464"
    web = yaml.safe_load(by_kind["Secret"][0]["stringData"]["web-config.yml"])
    web.pop("tls_server_config")  # its files live in the cluster's Secret
    web_file = tmp_path / "web-config.yml"
    web_file.write_text(yaml.safe_dump(web))
    load_web_config(web_file)


# --- values.schema.json --------------------------------------------------------------------------


SCHEMA_REFUSES = "values don't meet the specifications of the schema(s)"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--set", "sharding.shards=0"], "at '/sharding/shards': minimum: got 0, want 1"),
        (["--set", "sharding.shards=51"], "at '/sharding/shards': maximum: got 51, want 50"),
        (["--set", "sharding.replicasPerShard=3"], "at '/sharding/replicasPerShard'"),
        (["--set", "shards=4"], "additional properties 'shards' not allowed"),
        (["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
        (["--set-string", "web.basicAuth.users.prometheus=hunter2"], "at '/web/basicAuth/users/prometheus': minLength: got 7, want 60"),
        (["--set", "workloadIdentity.gcpServiceAccount=key.json"], "at '/workloadIdentity/gcpServiceAccount'"),
        (["--set", "port=80"], "at '/port': minimum: got 80, want 1,024"),
    ],
)
def test_values_schema_refuses_bad_values_naming_the_key(tools: Tools, args: list[str], says: str) -> None:
    result = tools.template(*args)
    assert result.returncode == 1
    assert SCHEMA_REFUSES in result.stderr and says in result.stderr, result.stderr
    assert "hunter2" not in result.stderr, "a password never appears in an error"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--set-string", "web.basicAuth.users.prometheus=" + "p" * 60], "web.basicAuth.users.prometheus: not a bcrypt hash"),
        (["--set", "extraEnv[0].name=GOOGLE_APPLICATION_CREDENTIALS", "--set", "extraEnv[0].value=/k.json"],
         "extraEnv[0].name: GOOGLE_APPLICATION_CREDENTIALS (a key file) is refused: set workloadIdentity.gcpServiceAccount"),
        (["--set", "config.server.listen=127.0.0.1:9464"], "config.server: the chart sets it"),
    ],
)
def test_the_chart_refuses_what_the_schema_cannot_word_naming_the_key(tools: Tools, args: list[str], says: str) -> None:
    result = tools.template(*args)
    assert result.returncode == 1
    assert says in result.stderr, result.stderr
    assert "p" * 60 not in result.stderr, "a password never appears in an error"


# --- the PrometheusRule is the shipped alerts ----------------------------------------------------


def test_a_packaged_chart_still_holds_the_shipped_alerts(tools: Tools, tmp_path: Path) -> None:
    """files/rules.yml links to alerts/rules.yml: `helm package` must carry its contents, not the link."""
    result = tools.run(tools.helm, ["package", str(CHART), "--destination", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    (package,) = tmp_path.glob("redisguard-*.tgz")
    rendered = tools.run(tools.helm, ["template", "rg", str(package), "--set", "prometheusRule.enabled=true"])
    assert rendered.returncode == 0, rendered.stderr
    (rule,) = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_prometheus_rule_holds_exactly_the_shipped_alerts_and_promtool_accepts_it(tools: Tools, tmp_path: Path) -> None:
    (rule,) = kinds(tools.rendered("--set", "prometheusRule.enabled=true"))["PrometheusRule"]
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = run_tool(["promtool", "check", "rules", str(rules_file)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
