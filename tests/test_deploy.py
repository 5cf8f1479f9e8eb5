"""The Kubernetes manifests (deploy/kubernetes) are valid Kubernetes and agree with the engine
they run: its port, probe path, user, settings, secrets and shutdown time, read from the engine
itself; and the Dockerfile agrees with the README's environment table and with the Deployment.

Every manifest is checked against the strict schemas (no unknown field) that kubernetes-validate
ships inside its package, so nothing is fetched. Docker is not available where the tests run:
the image is never built here, the Dockerfile is read as text, instruction by instruction."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from starlette.testclient import TestClient

from engine.api.app import create_app
from engine.language.loader import load_module, validate
from engine.serving import longest_stop
from engine.settings import VARIABLES, Settings
from engine.storage.locations import canonical_protocol, check_allowed

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
BENCHMARKS = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")

# the oldest Kubernetes the manifests are for, and the newest the validator ships
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
KUSTOMIZE = "kustomize.config.k8s.io/v1beta1"
# what the pods may set beside the engine's own variables
OTHER_VARIABLES = {"TMPDIR"}
# exit codes of `engine backups verify` after which another try finds the same answer:
# 1 damaged, 2 usage error, 3 incomplete (4, storage unreachable, is worth a retry)
VERIFY_FINAL_CODES = {1, 2, 3}
SHUTDOWN_MARGIN = 5  # seconds between the engine's longest stop and Kubernetes' SIGKILL


# --------------------------------------------------------------------------- reading


def _documents() -> list[tuple[str, dict[str, Any]]]:
    """(file#index, document) of every YAML document in deploy/kubernetes."""
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if document is not None:
                found.append((f"{path.name}#{index}", document))
    return found


DOCUMENTS = _documents()
MANIFESTS = [(name, doc) for name, doc in DOCUMENTS if doc.get("apiVersion") != KUSTOMIZE]


def _one(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in MANIFESTS if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _pod_specs() -> dict[str, dict[str, Any]]:
    """The pod template of every workload, by kind."""
    return {
        "Deployment": _one("Deployment")["spec"]["template"],
        "CronJob": _one("CronJob")["spec"]["jobTemplate"]["spec"]["template"],
    }


def _engine() -> dict[str, Any]:
    """The Deployment's one container."""
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def _container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or a Service's port, by name or number, as the container's port number."""
    numbers = {entry["containerPort"] for entry in container["ports"]}
    if isinstance(port, int):
        assert port in numbers, f"port {port} is none of the container's ports {numbers}"
        return port
    named = [entry["containerPort"] for entry in container["ports"] if entry.get("name") == port]
    assert named, f"the container has no port named {port!r}"
    return int(named[0])


def _config() -> dict[str, str]:
    return dict(_one("ConfigMap")["data"])


def _secret() -> dict[str, str]:
    secret = _one("Secret")
    return dict(secret.get("stringData", {})) | dict(secret.get("data", {}))


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    match = re.fullmatch(r"([\d.]+)([KMG]i)?", quantity)
    assert match, f"not a memory quantity: {quantity}"
    number, unit = match.groups()
    return float(number) * units[unit] if unit else float(number) / (1 << 20)


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = DOCKERFILE.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile()
    last = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last + 1 :]


def _docker_env() -> dict[str, str]:
    env = {}
    for keyword, rest in _final_stage():
        if keyword == "ENV":
            env |= dict(pair.split("=", 1) for pair in shlex.split(rest))
    return env


def _docker(keyword: str) -> str:
    (found,) = [rest for word, rest in _final_stage() if word == keyword]
    return found


def _readme_table() -> dict[str, tuple[str, str]]:
    """The README's environment table: name -> (default, meaning)."""
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \| (.*) \|$", README, re.MULTILINE)
    return {name: (default.strip("`"), meaning) for name, default, meaning in rows}


# --------------------------------------------------------------------------- Kubernetes schemas


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("name", "document"), MANIFESTS, ids=[name for name, _ in MANIFESTS])
def test_every_manifest_is_valid_kubernetes_under_strict_schemas(name, document, version):
    # SchemaNotFoundError (an unknown kind or apiVersion) fails the test too
    kubernetes_validate.validate(document, version, strict=True)


def test_the_validator_refuses_a_misspelled_field():
    deployment = json.loads(json.dumps(_one("Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_kustomization_lists_every_manifest_file():
    (kustomization,) = [doc for _, doc in DOCUMENTS if doc.get("apiVersion") == KUSTOMIZE]
    files = {path.name for path in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


# --------------------------------------------------------------------------- the Deployment


def test_the_api_runs_at_least_two_replicas_and_rolls_without_dropping_below():
    spec = _one("Deployment")["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert _selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"])


def test_every_probe_asks_healthz_on_the_port_the_engine_listens_on():
    container = _engine()
    port = Settings.from_env(_config()).port
    probes = {kind: container[kind] for kind in container if kind.endswith("Probe")}
    assert {"readinessProbe", "livenessProbe"} <= probes.keys()
    for kind, probe in probes.items():
        assert probe["httpGet"]["path"] == "/healthz", kind
        assert _container_port(container, probe["httpGet"]["port"]) == port, kind


def test_healthz_answers_without_the_api_token_the_api_needs():
    settings = Settings.from_env(_config() | _secret())
    assert settings.api_token
    app = create_app(load_module(ROOT / "modules" / "kinto"), settings)
    client = TestClient(app)  # no lifespan: neither call reaches a task or the SaaS
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/version").status_code == 401


@pytest.mark.parametrize("workload", ["Deployment", "CronJob"])
def test_pods_run_as_the_images_non_root_user_with_a_read_only_root(workload):
    uid = int(_docker("USER").split(":")[0])
    pod = _pod_specs()[workload]["spec"]
    assert uid != 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context.get("runAsUser", uid) == uid
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context.get("seccompProfile", {"type": "RuntimeDefault"})["type"] == "RuntimeDefault"


@pytest.mark.parametrize("workload", ["Deployment", "CronJob"])
def test_tmpdir_is_a_writable_empty_dir(workload):
    pod = _pod_specs()[workload]["spec"]
    empty = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    for container in pod["containers"]:
        env = {entry["name"]: entry.get("value") for entry in container["env"]}
        mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
        mount = mounts[env["TMPDIR"]]
        assert mount["name"] in empty
        assert not mount.get("readOnly", False)


def test_the_grace_period_outlasts_the_prestop_hook_and_the_engines_own_shutdown():
    pod = _one("Deployment")["spec"]["template"]["spec"]
    pre_stop = _engine()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # the engine's stop, from its own settings code and the ConfigMap's ENGINE_SHUTDOWN_GRACE
    stop = longest_stop(Settings.from_env(_config()))
    assert float(pre_stop[1]) + stop + SHUTDOWN_MARGIN <= pod["terminationGracePeriodSeconds"]


def test_requests_and_limits_hold_the_benchmarked_peak_memory():
    peaks = [float(mib) for mib in re.findall(r"\| peak memory[^|]*\| ([\d.]+) MiB \|", BENCHMARKS)]
    assert peaks, "docs/benchmarks.md lists no peak memory"
    resources = _engine()["resources"]
    assert _mebibytes(resources["requests"]["memory"]) >= max(peaks)
    # a pod runs several tasks at once
    assert _mebibytes(resources["limits"]["memory"]) >= 2 * max(peaks)
    assert resources["requests"]["cpu"]


def test_the_deployment_and_the_cronjob_run_the_same_image():
    images = {c["image"] for pod in _pod_specs().values() for c in pod["spec"]["containers"]}
    assert len(images) == 1
    assert not images.pop().endswith(":latest")


# --------------------------------------------------------------------------- Service and PDB


def test_the_service_targets_the_engines_port_and_selects_only_api_pods():
    service = _one("Service")["spec"]
    pods = _pod_specs()
    (port,) = service["ports"]
    assert _container_port(_engine(), port["targetPort"]) == Settings.from_env(_config()).port
    assert _selects(service["selector"], pods["Deployment"]["metadata"]["labels"])
    assert not _selects(service["selector"], pods["CronJob"]["metadata"]["labels"])


def test_the_disruption_budget_selects_the_api_pods_and_lets_one_go_at_a_time():
    budget = _one("PodDisruptionBudget")["spec"]
    deployment = _one("Deployment")["spec"]
    pods = _pod_specs()
    assert budget["selector"]["matchLabels"] == deployment["selector"]["matchLabels"]
    assert _selects(budget["selector"]["matchLabels"], pods["Deployment"]["metadata"]["labels"])
    assert not _selects(budget["selector"]["matchLabels"], pods["CronJob"]["metadata"]["labels"])
    # a budget of every replica would block node drains forever
    assert 1 <= budget["minAvailable"] < deployment["replicas"]


# --------------------------------------------------------------------------- settings, secrets


def test_the_configmap_holds_engine_settings_that_parse():
    config = _config()
    assert set(config) <= {variable.name for variable in VARIABLES.values()}
    settings = Settings.from_env(config)
    assert settings.host == "0.0.0.0"
    assert settings.module is not None
    module = ROOT / settings.module.relative_to("/app")
    assert [str(p) for p in validate([module]) if not p.warning] == []


def test_replicas_may_use_only_storage_they_share():
    # a local folder is one pod's, memory:// one process's: a task there cannot be resumed
    # by another replica, and its lease holds only within the pod
    allowed = Settings.from_env(_config()).allowed_storage
    assert {canonical_protocol(prefix) for prefix in allowed} <= {"s3", "gs"}


@pytest.mark.parametrize("workload", ["Deployment", "CronJob"])
def test_every_secret_key_the_pods_name_exists_and_every_variable_is_the_engines(workload):
    secret_name = _one("Secret")["metadata"]["name"]
    known = {variable.name for variable in VARIABLES.values()} | OTHER_VARIABLES
    for container in _pod_specs()[workload]["spec"]["containers"]:
        for entry in container["env"]:
            assert entry["name"] in known
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference["name"] == secret_name
                assert reference["key"] in _secret()
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] == _one("ConfigMap")["metadata"]["name"]


def test_the_secret_holds_settings_that_parse():
    secret = _secret()
    assert set(secret) <= {variable.name for variable in VARIABLES.values()}
    settings = Settings.from_env(secret)
    assert settings.storage_options
    assert settings.api_token


# --------------------------------------------------------------------------- the CronJob


def test_the_cronjob_verifies_an_allowed_backup_reading_its_data():
    cronjob = _one("CronJob")["spec"]
    job = cronjob["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["engine", "backups", "verify"]
    assert "--read-data" in command
    (url,) = [word for word in command[3:] if not word.startswith("-")]
    check_allowed(url, Settings.from_env(_config()).allowed_storage)
    assert cronjob["concurrencyPolicy"] == "Forbid"


def test_the_cronjob_retries_only_what_another_try_could_change():
    job = _one("CronJob")["spec"]["jobTemplate"]["spec"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    final = [rule for rule in job["podFailurePolicy"]["rules"] if rule["action"] == "FailJob"]
    (rule,) = final
    assert rule["onExitCodes"]["operator"] == "In"
    assert set(rule["onExitCodes"]["values"]) == VERIFY_FINAL_CODES


# --------------------------------------------------------------------------- the Dockerfile


def test_the_image_installs_from_the_lock_file_without_dev_dependencies():
    instructions = _dockerfile()
    syncs = [rest for keyword, rest in instructions if keyword == "RUN" and "uv sync" in rest]
    assert syncs
    for sync in syncs:
        words = shlex.split(sync)
        assert {"--frozen", "--no-dev"} <= set(words)
        assert "--extra s3" in sync
        assert "--extra gcs" in sync
        assert "--all-groups" not in words
    assert not [rest for keyword, rest in instructions if "pip install" in rest]
    # uv is the official binary of a pinned release, and both stages run the same Python
    assert re.search(r"^FROM ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ ", DOCKERFILE, re.MULTILINE)
    pythons = {rest for keyword, rest in instructions if keyword == "FROM" and "uv:" not in rest}
    assert {python.split()[0] for python in pythons} == {"${PYTHON_IMAGE}"}


def test_the_containers_environment_matches_the_readme_table():
    env = _docker_env()
    table = _readme_table()
    engine_names = {variable.name for variable in VARIABLES.values()}
    for name, value in env.items():
        assert name in engine_names or not name.startswith("ENGINE_"), name
        if name in engine_names:
            default, meaning = table[name]
            # a value the image sets in place of the documented default is documented too
            assert default in ("-", value) or f"`{value}`" in meaning, name
    settings = Settings.from_env(env)
    assert settings.host == "0.0.0.0"
    assert settings.module is not None
    assert (ROOT / settings.module.relative_to("/app") / "module.yaml").is_file()
    assert "runs `engine serve`" in README


def test_the_image_and_the_deployment_agree_on_port_user_and_command():
    env = _docker_env()
    container = _engine()
    pod = _one("Deployment")["spec"]["template"]["spec"]
    exposed = int(_docker("EXPOSE").split("/")[0])
    assert exposed == int(env["PORT"]) == Settings.from_env(_config()).port
    assert _container_port(container, "http") == exposed
    assert int(_docker("USER").split(":")[0]) == pod["securityContext"]["runAsUser"]
    assert json.loads(_docker("CMD")) == ["engine", "serve"]
    # the Deployment runs the image's own command
    assert "command" not in container
    assert "args" not in container
    assert "/app/.venv/bin" in env["PATH"].split(":")
