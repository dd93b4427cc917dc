"""Deployment files (compose, Prometheus, Grafana, Kubernetes) against the code they deploy.

No Docker engine is needed: files are parsed and cross-checked with the config schema and the
Prometheus metrics the code registers. `docker compose config` and `promtool` run when present.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from sightline.config import ApiSettings, MetricsSettings, SightlineConfig, load_config
from streams.settings import DevSettings

REPO = Path(__file__).resolve().parent.parent
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
CONFIG_FILE = COMPOSE_DIR / "sightline.yaml"
K8S_DIR = COMPOSE_DIR / "k8s"
DASHBOARDS = COMPOSE_DIR / "grafana" / "dashboards"

# Services running the sightline image, and the sub-command each runs.
SIGHTLINE_SERVICES = {
    "decoder": ["decode"],
    "inference": ["infer"],
    "inference-gpu": ["infer"],
    "alerts": ["alerts", "run"],
    "api": ["api"],
    "drift": ["drift"],
    "evidence": ["evidence"],
}
ONE_SHOT = {"topics", "setup"}
# Variables named SIGHTLINE_* that are not config fields, and the module that reads each.
NON_CONFIG_ENV = {
    "SIGHTLINE_CONFIG": "sightline/config/__init__.py",
    "SIGHTLINE_CACHE": "streams/paths.py",
    "SIGHTLINE_WORKER_ID": "inference/worker.py",
}
# Prometheus job -> the port (config defaults) its Sightline target listens on.
JOB_PORTS = {
    "sightline-decoder": MetricsSettings().decoder_port,
    "sightline-inference": MetricsSettings().inference_port,
    "sightline-alerts": MetricsSettings().alerts_port,
    "sightline-drift": SightlineConfig().drift.metrics_port,
    "sightline-evidence": MetricsSettings().evidence_port,
    "sightline-api": ApiSettings().port,
}
SERVICE_PORTS = {
    "decoder": JOB_PORTS["sightline-decoder"],
    "inference": JOB_PORTS["sightline-inference"],
    "inference-gpu": JOB_PORTS["sightline-inference"],
    "alerts": JOB_PORTS["sightline-alerts"],
    "api": JOB_PORTS["sightline-api"],
    "drift": JOB_PORTS["sightline-drift"],
    "evidence": JOB_PORTS["sightline-evidence"],
}
# Dashboard metrics that come from outside the Sightline code, with the compose service exporting them.
EXTERNAL_METRICS = {"up": "prometheus", "kafka_consumergroup_lag": "kafka-exporter"}
# Packages whose modules define Prometheus metrics (all their submodules are imported).
METRICS_MODULES = ("decoders.metrics", "inference.metrics", "alerts.metrics")
METRICS_PACKAGES = ("sightline.api", "sightline.drift", "sightline.evidence")


# -- helpers --------------------------------------------------------------------------------
def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _yaml(COMPOSE_FILE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _field_path(name: str) -> list[str]:
    """`SIGHTLINE_KAFKA__BOOTSTRAP_SERVERS` -> ["kafka", "bootstrap_servers"], checked against the schema."""
    assert name.startswith("SIGHTLINE_"), name
    parts = name.removeprefix("SIGHTLINE_").lower().split("__")
    model: type[BaseModel] | None = SightlineConfig
    for i, part in enumerate(parts):
        assert model is not None, f"{name}: {'.'.join(parts[:i])} is not a section"
        fields = model.model_fields
        assert part in fields, f"{name}: {part!r} is not a field of {model.__name__} ({sorted(fields)})"
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    assert model is None, f"{name} names a whole section, not a field"
    return parts


def _check_env_overrides(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, where: str) -> SightlineConfig:
    """Every SIGHTLINE_* variable is a real config field (or read by the code) and takes effect."""
    config_vars = {}
    for name, value in env.items():
        if not name.startswith("SIGHTLINE_"):
            continue
        if name in NON_CONFIG_ENV:
            assert name in (REPO / NON_CONFIG_ENV[name]).read_text(), f"{name} is not read by the code"
            continue
        config_vars[name] = (_field_path(name), value)
    for name, (_, value) in config_vars.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SIGHTLINE_CONFIG", raising=False)
    config = load_config(CONFIG_FILE)
    for name, (path, value) in config_vars.items():
        actual: Any = config
        for part in path:
            actual = getattr(actual, part)
        assert str(actual) == value, f"{where}: {name}={value} did not override the config (got {actual!r})"
    return config


# -- docker compose -------------------------------------------------------------------------
def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    expected = {
        "kafka", "redis", "topics", "setup", "decoder", "inference", "inference-gpu", "alerts", "api",
        "evidence", "prometheus", "grafana", "kafka-exporter",
    }  # fmt: skip
    assert expected <= set(_services(compose))


def test_kafka_is_a_single_kraft_node(compose: dict[str, Any]) -> None:
    kafka = _services(compose)["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"  # exactly-once workers
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for name in SIGHTLINE_SERVICES:
        bootstrap = _env(_services(compose)[name])["SIGHTLINE_KAFKA__BOOTSTRAP_SERVERS"]
        assert f"PLAINTEXT://{bootstrap}" in advertised, f"{name} bootstraps from {bootstrap}"


def _cli_commands() -> set[tuple[str, ...]]:
    import typer

    from sightline.cli import app

    found: set[tuple[str, ...]] = set()

    def walk(command: Any, path: tuple[str, ...]) -> None:  # typer's (vendored) click objects
        found.add(path)
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_commands_used_by_the_deployments_exist() -> None:
    commands = _cli_commands()
    used = {tuple(c) for c in SIGHTLINE_SERVICES.values()} | {("assets", "fetch"), ("models", "fetch")}
    missing = sorted(" ".join(c) for c in used - commands)
    assert not missing, (
        f"compose/k8s run `sightline {', '.join(missing)}`, which sightline.cli does not mount"
    )


def test_sightline_services_run_the_cli(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, command in SIGHTLINE_SERVICES.items():
        service = services[name]
        assert service["command"][: len(command)] == command, name
        assert "entrypoint" not in service, f"{name} must use the image's `sightline` entrypoint"
        redis_host = _env(service)["SIGHTLINE_REDIS__URL"].split("//")[1].split(":")[0]
        assert redis_host in services, f"{name}: redis host {redis_host} is not a compose service"
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["sightline"]' in dockerfile
    assert re.search(r"^USER (?!root|0)", dockerfile, re.MULTILINE), "the image must not run as root"
    gpu = (COMPOSE_DIR / "Dockerfile.gpu").read_text()
    assert "nvidia/cuda" in gpu and 'ENTRYPOINT ["sightline"]' in gpu
    assert "optional-dependencies']['gpu']" in gpu, "the GPU image installs the `gpu` extra"


@pytest.mark.parametrize("name", sorted(SIGHTLINE_SERVICES) + sorted(ONE_SHOT))
def test_env_overrides_are_config_fields(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _services(compose)[name]
    env = _env(service)
    config = _check_env_overrides(env, monkeypatch, f"compose service {name}")
    # The config the container reads is the mounted compose/sightline.yaml.
    mounted = _bind_mounts(service)
    assert mounted[PurePosixPath(env["SIGHTLINE_CONFIG"])] == CONFIG_FILE
    assert config.metrics.host == "0.0.0.0", f"{name}: metrics must listen beyond the container"
    assert str(config.inference.registry_dir) in {str(p) for p in _volume_targets(service)}


def _bind_mounts(service: dict[str, Any]) -> dict[PurePosixPath, Path]:
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[PurePosixPath(target)] = (COMPOSE_DIR / source).resolve()
    return mounts


def _volume_targets(service: dict[str, Any]) -> list[PurePosixPath]:
    return [PurePosixPath(v.split(":")[1]) for v in service.get("volumes", [])]


def test_ports_match_config_defaults(compose: dict[str, Any]) -> None:
    services = _services(compose)
    config = load_config(CONFIG_FILE)
    assert config.metrics.model_dump(exclude={"host"}) == MetricsSettings().model_dump(exclude={"host"})
    assert config.api.port == ApiSettings().port
    for name, port in SERVICE_PORTS.items():
        probe = json.dumps(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/" in probe, f"{name} healthcheck should probe port {port}"
    assert f"{ApiSettings().port}:{ApiSettings().port}" in services["api"]["ports"]


def test_mounted_files_and_build_contexts_exist(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name} mounts {source} at {target}, which is not in the repo"
        build = service.get("build")
        if build:
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert context == REPO, f"{name}: build context should be the repo root"
            assert (context / build["dockerfile"]).is_file()
    ignored = (REPO / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "sightline", "streams", "decoders", "inference", "alerts", "schemas"):
        assert needed not in ignored, f".dockerignore must not exclude {needed}"


def test_inference_has_replicas_and_a_gpu_profile(compose: dict[str, Any]) -> None:
    services = _services(compose)
    cpu, gpu = services["inference"], services["inference-gpu"]
    assert cpu["deploy"]["replicas"] >= 2
    assert "profiles" not in cpu
    assert gpu["profiles"] == ["gpu"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["dockerfile"] == "compose/Dockerfile.gpu"
    assert _env(gpu)["SIGHTLINE_INFERENCE__PROVIDER"] in {"cuda", "tensorrt"}
    # One consumer group: no service overrides the group id from sightline.yaml.
    for service in (cpu, gpu):
        assert "SIGHTLINE_INFERENCE__GROUP_ID" not in _env(service)


def test_depends_on_uses_conditions_that_can_be_met(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs the long form with conditions"
        for target, spec in depends.items():
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target}, which has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must be a one-shot job"
            else:
                pytest.fail(f"{name} -> {target}: unexpected condition {condition}")
    for name in SIGHTLINE_SERVICES:
        assert {"kafka", "redis", "topics"} <= set(services[name]["depends_on"]), name
        assert "healthcheck" in services[name]


def test_docker_compose_config_validates() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on PATH; `docker compose config -q` not run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        reason = (probe.stderr or probe.stdout).strip().splitlines()[0]
        pytest.skip(f"the docker client has no compose plugin ({reason}); `docker compose config -q` not run")
    for extra in ([], ["--profile", "gpu"]):
        result = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE_FILE), *extra, "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr


# -- Prometheus -----------------------------------------------------------------------------
def _jobs(path: Path) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in _yaml(path)["scrape_configs"]}


def _job_ports(job: dict[str, Any]) -> set[int]:
    ports = {int(t.rsplit(":", 1)[1]) for sc in job.get("static_configs", []) for t in sc["targets"]}
    ports |= {int(sd["port"]) for sd in job.get("dns_sd_configs", [])}
    return ports


def test_prometheus_scrapes_every_service_on_the_config_ports(compose: dict[str, Any]) -> None:
    services = _services(compose)
    jobs = _jobs(COMPOSE_DIR / "prometheus.yml")
    for job_name, port in JOB_PORTS.items():
        job = jobs[job_name]
        assert _job_ports(job) == {port}, job_name
        hosts = {t.rsplit(":", 1)[0] for sc in job.get("static_configs", []) for t in sc["targets"]}
        hosts |= {n for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
        assert hosts and hosts <= set(services), f"{job_name} scrapes {hosts}"
    assert set(jobs["sightline-inference"]["dns_sd_configs"][0]["names"]) >= {"inference", "inference-gpu"}
    assert "kafka-exporter" in jobs
    mounts = _bind_mounts(services["prometheus"])
    assert mounts[PurePosixPath("/etc/prometheus/prometheus.yml")] == COMPOSE_DIR / "prometheus.yml"


def test_local_prometheus_has_the_same_jobs_on_loopback() -> None:
    compose_jobs = _jobs(COMPOSE_DIR / "prometheus.yml")
    local_jobs = _jobs(COMPOSE_DIR / "prometheus.local.yml")
    for job_name, port in JOB_PORTS.items():
        job = local_jobs[job_name]
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        assert targets == [f"127.0.0.1:{port}"], job_name
        assert job.get("metrics_path", "/metrics") == compose_jobs[job_name].get("metrics_path", "/metrics")


def test_promtool_accepts_the_configs() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`, `make setup`)")
    for name in ("prometheus.yml", "prometheus.local.yml"):
        result = subprocess.run(
            [promtool, "check", "config", str(COMPOSE_DIR / name)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


# -- Grafana --------------------------------------------------------------------------------
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "inf", "nan",
}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (no full parser: strings, matchers and ranges removed)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^{}]*\}", "", text)
    text = re.sub(r"\[[^\[\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        if match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def test_promql_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, endpoint) (rate(a_seconds_bucket{x=~"$cam", y="b c"}[5m]))) '
        "/ on (job) group_left (z) sum without (le) (b_total offset 5m) > bool 1e3"
    )
    assert promql_metric_names(expr) == {"a_seconds_bucket", "b_total"}


def _dashboards() -> list[dict[str, Any]]:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, "no Grafana dashboards"
    return [json.loads(f.read_text()) for f in files]


def dashboard_exprs() -> list[str]:
    exprs = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    for dashboard in _dashboards():
        walk(dashboard["panels"])
    return exprs


def _dashboard_metric_names() -> set[str]:
    names = set().union(*(promql_metric_names(e) for e in dashboard_exprs()))
    for dashboard in _dashboards():
        for var in dashboard.get("templating", {}).get("list", []):
            query = var.get("query")
            query = query.get("query", "") if isinstance(query, dict) else query or ""
            names |= set(re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,", query))
    return names


def _import_package(name: str) -> None:
    """The package and all its submodules: metrics are defined at module level wherever they are used."""
    module = importlib.import_module(name)
    for info in pkgutil.walk_packages(module.__path__, prefix=f"{name}."):
        importlib.import_module(info.name)


def exported_metric_names() -> set[str]:
    """Every sample name the Sightline code can export, read from prometheus_client's registry."""
    from prometheus_client import REGISTRY

    for module in METRICS_MODULES:
        importlib.import_module(module)
    for package in METRICS_PACKAGES:
        _import_package(package)
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def test_dashboard_metrics_are_exported_by_the_code(compose: dict[str, Any]) -> None:
    exported = exported_metric_names()
    wanted = _dashboard_metric_names()
    assert {
        "sightline_decoder_frames_published_total",
        "sightline_inference_frame_age_seconds_bucket",
    } <= wanted
    for prefix in ("sightline_api_", "sightline_drift_", "kafka_consumergroup_lag"):
        assert any(name.startswith(prefix) for name in wanted), f"no panel shows {prefix}*"
    for name in sorted(wanted):
        if name in EXTERNAL_METRICS:
            assert EXTERNAL_METRICS[name] in _services(compose), f"{name} needs {EXTERNAL_METRICS[name]}"
            continue
        assert name in exported, f"the dashboard queries {name}, which no Sightline module exports"


def test_grafana_provisioning_matches_the_mounts(compose: dict[str, Any]) -> None:
    grafana = _services(compose)["grafana"]
    mounts = _bind_mounts(grafana)
    provisioning = mounts[PurePosixPath("/etc/grafana/provisioning")]
    [datasource] = _yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    [provider] = _yaml(provisioning / "dashboards" / "sightline.yml")["providers"]
    dashboards_dir = PurePosixPath(provider["options"]["path"])
    assert mounts[dashboards_dir] == DASHBOARDS
    home = PurePosixPath(_env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.parent == dashboards_dir and (DASHBOARDS / home.name).is_file()
    for dashboard in _dashboards():
        assert dashboard["uid"]
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


# -- Kubernetes -----------------------------------------------------------------------------
# Kubernetes versions the manifests are validated against (schemas shipped by kubernetes-validate).
K8S_VERSIONS = ("1.30.0", "1.34.0")
# The only kustomization fields the fallback renderer below understands.
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "labels", "images", "resources", "configMapGenerator"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}
# Workload -> (its kind, the sightline sub-command it runs).
K8S_WORKLOADS = {
    "sightline-decoder": ("Deployment", ["decode"]),
    "sightline-inference": ("Deployment", ["infer"]),
    "sightline-alerts": ("StatefulSet", ["alerts", "run"]),
    "sightline-drift": ("Deployment", ["drift"]),
    "sightline-evidence": ("Deployment", ["evidence"]),
    "sightline-api": ("Deployment", ["api"]),
}
# Every workload's server has /healthz and /readyz (sightline/api/routes/health.py for the API,
# streams/http_health.py on the metrics port of the others).
K8S_HEALTH_ENDPOINTS = set(K8S_WORKLOADS)
# Those whose /healthz watches a main loop's heartbeat (streams/health.py `Health.loop`).
K8S_HEARTBEAT = {"sightline-decoder", "sightline-inference", "sightline-alerts", "sightline-evidence"}


def kustomize_cli() -> list[str] | None:
    """A real Kustomize: `kubectl kustomize` or `kustomize build`, whichever is on PATH."""
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    return None


def render_with_kustomize(cli: list[str], directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run([*cli, str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _set_images(pod_spec: dict[str, Any], images: list[dict[str, str]]) -> None:
    for container in pod_spec.get("initContainers", []) + pod_spec.get("containers", []):
        name = re.split(r"[:@]", container["image"], maxsplit=1)[0]
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


def render_minimal(directory: Path) -> list[dict[str, Any]]:
    """Our kustomization rendered without Kustomize, for machines that have neither kubectl nor kustomize.

    Hand-written because no maintained Python port of Kustomize exists; it implements only the fields
    compose/k8s uses (KUSTOMIZE_FIELDS: file resources, namespace, `labels` without selectors, image
    overrides, hash-less ConfigMap generators from files) and fails on anything else.
    `test_minimal_render_matches_kustomize` checks it against the real one wherever that is installed.
    """
    kustomization = _yaml(directory / "kustomization.yaml")
    assert set(kustomization) <= KUSTOMIZE_FIELDS, (
        f"render_minimal lacks {set(kustomization) - KUSTOMIZE_FIELDS}"
    )
    docs = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((directory / name).read_text()) if d)
    for generator in kustomization.get("configMapGenerator", []):
        options = generator.get("options", {})
        assert set(generator) <= {"name", "files", "options"} and options.get("disableNameSuffixHash") is True
        data = {Path(f).name: (directory / f).read_text() for f in generator["files"]}
        metadata = {
            "name": generator["name"],
            **({"labels": options["labels"]} if "labels" in options else {}),
        }
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    for doc in docs:
        metadata = doc["metadata"]
        if doc["kind"] not in CLUSTER_SCOPED and "namespace" in kustomization:
            metadata["namespace"] = kustomization["namespace"]
        for label in kustomization.get("labels", []):
            assert not label.get("includeSelectors") and not label.get("includeTemplates"), label
            metadata["labels"] = {**metadata.get("labels", {}), **label["pairs"]}
        template = doc.get("spec", {}).get("template", {})
        if "spec" in template:
            _set_images(template["spec"], kustomization.get("images", []))
    return docs


@pytest.fixture(scope="module")
def k8s() -> list[dict[str, Any]]:
    """The kustomization as `kubectl apply -k` would send it (real Kustomize where installed)."""
    kustomization = _yaml(K8S_DIR / "kustomization.yaml")
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk, "every manifest is listed in kustomization.yaml"
    cli = kustomize_cli()
    docs = render_with_kustomize(cli, K8S_DIR) if cli else render_minimal(K8S_DIR)
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
    return docs


def _k8s(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _k8s_config(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> SightlineConfig:
    env = _k8s(docs, "ConfigMap", "sightline-env")["data"]
    return _check_env_overrides({k: str(v) for k, v in env.items()}, monkeypatch, "k8s sightline-env")


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    [container] = doc["spec"]["template"]["spec"]["containers"]
    return container


def test_minimal_render_matches_kustomize() -> None:
    cli = kustomize_cli()
    if cli is None:
        pytest.skip("neither kubectl nor kustomize on PATH: nothing to compare render_minimal with")

    def by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(d["kind"], d["metadata"]["name"]): d for d in docs}

    real, minimal = by_key(render_with_kustomize(cli, K8S_DIR)), by_key(render_minimal(K8S_DIR))
    assert real.keys() == minimal.keys()
    for key, doc in real.items():
        assert minimal[key] == doc, key


def validate_keda(doc: dict[str, Any]) -> None:
    """KEDA's CRD schema, as the cloudcoil models generated from it; unknown fields are errors too."""
    from cloudcoil.models.keda import v1alpha1

    assert doc["apiVersion"] == "keda.sh/v1alpha1", doc["apiVersion"]
    model = getattr(v1alpha1, doc["kind"])
    parsed = model.model_validate(doc).model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert parsed == doc, f"{doc['kind']}: fields unknown to KEDA's schema, or values of the wrong type"


def test_validate_keda_rejects_what_the_crd_rejects(k8s: list[dict[str, Any]]) -> None:
    scaled = _k8s(k8s, "ScaledObject", "sightline-inference")
    validate_keda(scaled)
    for spec in ({**scaled["spec"], "maxReplicas": 6}, {**scaled["spec"], "minReplicaCount": "1"}):
        with pytest.raises((AssertionError, ValueError)):
            validate_keda({**scaled, "spec": spec})


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_api_schemas(k8s: list[dict[str, Any]], version: str) -> None:
    import kubernetes_validate

    for doc in k8s:
        if doc["apiVersion"].startswith("keda.sh/"):
            validate_keda(doc)
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {where}: {exc.message} (k8s {version})")


def test_k8s_validation_catches_a_misplaced_field(k8s: list[dict[str, Any]]) -> None:
    import kubernetes_validate

    deployment = _k8s(k8s, "Deployment", "sightline-decoder")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["port"] = 9101
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_k8s_configmap_is_the_compose_config(k8s: list[dict[str, Any]]) -> None:
    embedded = _k8s(k8s, "ConfigMap", "sightline-config")["data"]["sightline.yaml"]
    assert yaml.safe_load(embedded) == _yaml(CONFIG_FILE), "compose/k8s/configmap.yaml is out of date"


def test_k8s_workloads(k8s: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    config = _k8s_config(k8s, monkeypatch)
    ports = {
        "sightline-decoder": config.metrics.decoder_port,
        "sightline-inference": config.metrics.inference_port,
        "sightline-alerts": config.metrics.alerts_port,
        "sightline-drift": config.drift.metrics_port,
        "sightline-evidence": config.metrics.evidence_port,
        "sightline-api": config.api.port,
    }
    for name, (kind, args) in K8S_WORKLOADS.items():
        workload = _k8s(k8s, kind, name)
        pod = workload["spec"]["template"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        container = _container(workload)
        assert container["args"] == args
        assert container["image"].startswith("registry.example.com/sightline:"), "kustomize sets the image"
        assert [p["containerPort"] for p in container["ports"]] == [ports[name]]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports[name])
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert {"configMapRef": {"name": "sightline-env"}} in container["envFrom"]
        for var in container.get("env", []):
            if var["name"] not in NON_CONFIG_ENV:
                _field_path(var["name"])
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert volumes[mounts["/etc/sightline"]]["configMap"]["name"] == "sightline-config"
        assert str(config.inference.registry_dir) in mounts
    service = _k8s(k8s, "Service", "sightline-api")
    assert service["spec"]["ports"][0]["port"] == config.api.port


def test_alert_processors_keep_their_member_id_across_reschedules(k8s: list[dict[str, Any]]) -> None:
    """Static membership needs a group.instance.id that survives a reschedule: a StatefulSet pod name."""
    assert not [d for d in k8s if d["kind"] == "Deployment" and d["metadata"]["name"] == "sightline-alerts"]
    alerts = _k8s(k8s, "StatefulSet", "sightline-alerts")
    env = {v["name"]: v for v in _container(alerts).get("env", [])}
    assert _field_path("SIGHTLINE_ALERTS__INSTANCE_ID") == ["alerts", "instance_id"]
    source = env["SIGHTLINE_ALERTS__INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert source == "metadata.name"
    service = _k8s(k8s, "Service", alerts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None", "a StatefulSet's governing Service is headless"
    assert service["spec"]["selector"].items() <= alerts["spec"]["template"]["metadata"]["labels"].items()


def test_keda_alone_scales_inference_on_the_frames_lag(
    k8s: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _k8s_config(k8s, monkeypatch)
    scaled = _k8s(k8s, "ScaledObject", "sightline-inference")
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment" and target["name"] == "sightline-inference"
    deployment = _k8s(k8s, "Deployment", "sightline-inference")
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count; `kubectl apply` would fight it"
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["topic"] == config.topics.frames.name
    assert meta["consumerGroup"] == config.inference.group_id
    assert meta["bootstrapServers"] == config.kafka.bootstrap_servers
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= config.topics.frames.partitions


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_probes_use_their_health_endpoints(k8s: list[dict[str, Any]]) -> None:
    from sightline.api.routes.health import router
    from streams.health import Health
    from streams.http_health import serve_health

    for name in K8S_HEALTH_ENDPOINTS:
        container = _container(_k8s(k8s, K8S_WORKLOADS[name][0], name))
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        port_names = {p["name"] for p in container["ports"]}
        assert {container[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe")} <= port_names
    for name in K8S_HEARTBEAT:
        container = _container(_k8s(k8s, K8S_WORKLOADS[name][0], name))
        assert container["livenessProbe"]["httpGet"]["port"] == "metrics", name
    assert {"/healthz", "/readyz"} <= {route.path for route in router.routes}
    # The drift server for real: liveness stays up while Kafka is down, readiness does not.
    health = Health("drift-probe-test")
    server = serve_health(health, "127.0.0.1", 0, "drift.metrics_port")
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        health.ok("kafka")
        assert (_http_status(f"{base}/healthz"), _http_status(f"{base}/readyz")) == (200, 200)
        health.degraded("kafka", "broker unreachable")
        assert (_http_status(f"{base}/healthz"), _http_status(f"{base}/readyz")) == (200, 503)
    finally:
        server.shutdown()


def test_heartbeat_probes_fail_on_a_silent_loop_only(k8s: list[dict[str, Any]]) -> None:
    """The probes of decoder/inference/alerts against the real server (tests/test_liveness.py
    runs real processes): /healthz turns 503 on a silent loop, /readyz on a dependency."""
    from streams.health import Health
    from streams.http_health import serve_health

    health = Health("probe-test")
    server = serve_health(health, "127.0.0.1", 0, "metrics.decoder_port", liveness_timeout_s=0.3)
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for name in K8S_HEARTBEAT:
            container = _container(_k8s(k8s, K8S_WORKLOADS[name][0], name))
            live, ready = (
                f"{base}{container[p]['httpGet']['path']}" for p in ("livenessProbe", "readinessProbe")
            )
            with health.loop(name) as heartbeat:
                health.ok("kafka")
                assert (_http_status(live), _http_status(ready), _http_status(f"{base}/metrics")) == (
                    200,
                    200,
                    200,
                )
                time.sleep(0.5)
                assert (_http_status(live), _http_status(ready), _http_status(f"{base}/metrics")) == (
                    503,
                    200,
                    200,
                )
                heartbeat.beat()
                health.degraded("kafka", "broker unreachable")
                assert (_http_status(live), _http_status(ready)) == (200, 503)
    finally:
        server.shutdown()


def _check_sightline_command(args: list[str]) -> None:
    from typer.testing import CliRunner

    from sightline.cli import app

    # --help after the arguments: unknown sub-commands and options still fail to parse.
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"`sightline {' '.join(args)}` is not a command: {result.output}"


def _check_python_module(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"python -m {module}: no such module"
    if spec.submodule_search_locations is not None:
        assert importlib.util.find_spec(f"{module}.__main__"), (
            f"python -m {module}: the package has no __main__"
        )
    else:
        assert '__name__ == "__main__"' in Path(spec.origin).read_text(), f"python -m {module} does nothing"


def test_k8s_containers_run_real_commands(k8s: list[dict[str, Any]]) -> None:
    for doc in k8s:
        pod = doc.get("spec", {}).get("template", {}).get("spec")
        for container in (pod or {}).get("containers", []):
            if not container["image"].startswith("registry.example.com/sightline:"):
                continue
            if "command" not in container:
                _check_sightline_command(container["args"])  # the image's ENTRYPOINT is `sightline`
                continue
            assert container["command"] == ["sh", "-c"], container["name"]
            [script] = container["args"]
            for step in script.split("&&"):
                words = shlex.split(step)
                if words[0] == "sightline":
                    _check_sightline_command(words[1:])
                elif words[0] == "python":
                    assert words[1] == "-m", step
                    _check_python_module(words[2])
                else:
                    assert words[0] in {"apt-get", "chown"}, (
                        f"unexpected command in {container['name']}: {step}"
                    )


def test_setup_job_fetches_the_configured_model(k8s: list[dict[str, Any]]) -> None:
    [script] = _container(_k8s(k8s, "Job", "sightline-setup"))["args"]
    assert "sightline models fetch nanodet-m" in script
    assert _yaml(CONFIG_FILE)["inference"]["model"] == "nanodet-m"


def test_k8s_grafana_admin_login_comes_from_a_secret(k8s: list[dict[str, Any]]) -> None:
    grafana = _container(_k8s(k8s, "Deployment", "sightline-grafana"))
    env = {v["name"]: v for v in grafana["env"]}
    for name in ("GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"):
        assert "value" not in env[name], f"{name} must not be written in the manifest"
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "sightline-grafana"
        assert not env[name]["valueFrom"]["secretKeyRef"].get("optional"), "no Secret, no Grafana"
    assert not [d for d in k8s if d["kind"] == "Secret"], "secrets are created in the cluster, not committed"


def test_k8s_grafana_serves_the_compose_dashboard(k8s: list[dict[str, Any]]) -> None:
    dashboards = _k8s(k8s, "ConfigMap", "sightline-grafana-dashboards")["data"]
    assert dashboards.keys() == {p.name for p in DASHBOARDS.glob("*.json")}
    for name, text in dashboards.items():
        assert text == (DASHBOARDS / name).read_text(), f"compose/k8s/grafana/{name} is out of date"
    provisioning = _k8s(k8s, "ConfigMap", "sightline-grafana-provisioning")["data"]
    [datasource] = yaml.safe_load(provisioning["datasource.yml"])["datasources"]
    assert datasource["uid"] == "prometheus" and datasource["type"] == "prometheus"
    [provider] = yaml.safe_load(provisioning["dashboards.yml"])["providers"]
    grafana = _container(_k8s(k8s, "Deployment", "sightline-grafana"))
    mounts = {m["mountPath"]: m["name"] for m in grafana["volumeMounts"]}
    assert mounts[provider["options"]["path"]] == "dashboards"
    env = {v["name"]: v.get("value") for v in grafana["env"]}
    assert datasource["url"] == "${PROMETHEUS_URL}" and env["PROMETHEUS_URL"].startswith("http")
    home = PurePosixPath(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == provider["options"]["path"] and home.name in dashboards


def test_k8s_kafka_exporter_speaks_the_brokers_version(
    k8s: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _k8s_config(k8s, monkeypatch)
    exporter = _container(_k8s(k8s, "Deployment", "sightline-kafka-exporter"))
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in exporter["args"])
    assert flags["kafka.server"] == config.kafka.bootstrap_servers
    broker = DevSettings().kafka_version  # the Kafka the project runs and tests against
    assert flags["kafka.version"].split(".")[:2] == broker.split(".")[:2], (flags["kafka.version"], broker)
    assert not exporter["image"].endswith(":latest") and ":" in exporter["image"]


def test_docs_exist() -> None:
    for name in ("deployment.md", "capacity.md"):
        assert (REPO / "docs" / name).is_file(), name


# -- make setup -----------------------------------------------------------------------------
# scripts/setup-lib.sh's checks, run by bash with a PATH holding only stand-in programs: what a bare
# Debian machine (no Java, an old python3) looks like to the script.
SETUP_LIB = REPO / "scripts" / "setup-lib.sh"


def _stand_in(directory: Path, name: str, prints: str, stderr: bool = False) -> Path:
    """A program that prints `prints` whatever it is asked (`python3 -c ...`, `java -version`)."""
    path = directory / name
    path.write_text(f"#!/bin/sh\necho {shlex.quote(prints)}{' >&2' if stderr else ''}\n")
    path.chmod(0o755)
    return path


def _setup_lib(call: str, path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash, "bash is needed for scripts/setup.sh"
    script = f"source {shlex.quote(str(SETUP_LIB))}; {call}"
    return subprocess.run(
        [bash, "-c", script], env={"PATH": str(path), **env}, capture_output=True, text=True, timeout=30
    )


def test_setup_refuses_an_old_python_and_says_what_to_install(tmp_path: Path) -> None:
    _stand_in(tmp_path, "python3", "3.9")
    result = _setup_lib("find_python", tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert "needs Python >= 3.11; found: python3 3.9" in result.stderr
    assert "PYTHON=/path/to/python3.11 make setup" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no python3 on PATH" in _setup_lib("find_python", empty).stderr


def test_setup_finds_a_new_enough_python(tmp_path: Path) -> None:
    _stand_in(tmp_path, "python3", "3.9")
    newer = _stand_in(tmp_path, "python3.12", "3.12")
    _stand_in(tmp_path, "python3.13", "3.13")
    result = _setup_lib("find_python", tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, str(newer))
    # A real interpreter as the only `python3`: the version check itself, not a stand-in's echo.
    real = tmp_path / "real"
    real.mkdir()
    (real / "python3").symlink_to(sys.executable)
    result = _setup_lib("find_python", real)
    assert (result.returncode, result.stdout.strip()) == (0, str(real / "python3")), result.stderr


def test_setup_takes_python_from_the_environment_or_fails(tmp_path: Path) -> None:
    old = _stand_in(tmp_path, "python-old", "3.10")
    _stand_in(tmp_path, "python3.12", "3.12")
    result = _setup_lib("find_python", tmp_path, PYTHON=str(old))
    assert result.returncode == 1 and f"PYTHON={old} is set" in result.stderr
    good = _stand_in(tmp_path, "python-good", "3.11")
    assert _setup_lib("find_python", tmp_path, PYTHON=str(good)).stdout.strip() == str(good)


@pytest.mark.parametrize(
    ("version_line", "major"),
    [
        ('openjdk version "17.0.12" 2024-07-16', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "11.0.22" 2024-01-16', 11),
        ('java version "1.8.0_292"', 8),
    ],
)
def test_setup_reads_the_java_version(tmp_path: Path, version_line: str, major: int) -> None:
    _stand_in(tmp_path, "java", version_line, stderr=True)
    _stand_in(tmp_path, "mvn", "Apache Maven 3.8.7")
    result = _setup_lib(
        "java_major; java_ok && echo ok || echo old; extra_apt_packages /opt/python3", tmp_path
    )
    lines = result.stdout.split()
    assert lines[:2] == [str(major), "ok" if major >= 17 else "old"], result.stderr
    assert lines[2:] == ([] if major >= 17 else ["default-jre-headless"])


def test_setup_installs_java_and_maven_on_a_bare_machine(tmp_path: Path) -> None:
    python = _stand_in(tmp_path, "python3", "3.11")
    result = _setup_lib(f"java_ok || echo no-java; extra_apt_packages {python}", tmp_path)
    assert result.stdout.split() == ["no-java", "default-jre-headless", "maven"], result.stderr


def test_setup_script_uses_the_checks() -> None:
    script = (REPO / "scripts" / "setup.sh").read_text()
    assert "source scripts/setup-lib.sh" in script
    for step in ("PY=$(find_python) || exit 1", "extra_apt_packages", "java_ok", '"$PY" -m venv .venv'):
        assert step in script, step
    bash = shutil.which("bash")
    assert bash
    for name in ("setup.sh", "setup-lib.sh"):
        result = subprocess.run([bash, "-n", str(REPO / "scripts" / name)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("candidate", "usable"), [("3.11.2-1+b1", True), ("3.13.5-1", True), ("3.9.2-3", False)]
)
def test_setup_installs_debians_python_only_when_new_enough(
    tmp_path: Path, candidate: str, usable: bool
) -> None:
    _stand_in(tmp_path, "apt-cache", f"python3:\n  Installed: (none)\n  Candidate: {candidate}\n")
    result = _setup_lib("apt_python_ok && echo yes || echo no", tmp_path)
    assert result.stdout.strip() == ("yes" if usable else "no"), result.stderr


def test_setup_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (Debian package `shellcheck`)")
    scripts = [str(REPO / "scripts" / name) for name in ("setup.sh", "setup-lib.sh")]
    command = [shellcheck, "-x", *scripts]  # -x: follow `source scripts/setup-lib.sh` from the repo root
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
