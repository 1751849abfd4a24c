"""The CRDs: generated from the models, structural, valid apiextensions.k8s.io/v1 objects, and
enforcing the same rules as ``backup-gen validate`` (schema and CEL rules, evaluated here with
cel-python) on the golden inputs and a table of bad objects.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import ApiClient

from generator.crds import CATEGORY, crds
from generator.errors import ValidationFailed
from generator.generate import crd_texts, validate_texts
from generator.yamlio import dump_documents
from tests.generator.conftest import GOLDEN, ROOT, UPDATE, crd_problems, load_yaml

CRDS = ROOT / "crds"
#: Keywords a structural schema may not use (or only in forms the generator never emits).
FORBIDDEN = {"$ref", "definitions", "$defs", "allOf", "anyOf", "oneOf", "not", "uniqueItems"}


def test_crds_directory_is_up_to_date() -> None:
    expected = crd_texts()
    if UPDATE:
        for name, text in expected.items():
            (CRDS / name).write_text(text)
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert on_disk == expected, "crds/ is stale: run `backup-gen crds -o crds/`"


@pytest.mark.parametrize("crd", crds(), ids=lambda c: c["metadata"]["name"])
def test_crd_is_an_apiextensions_v1_object(crd: dict[str, Any]) -> None:
    # The official client's models check required fields as they deserialize, and keep only the
    # fields apiextensions.k8s.io/v1 has: the round trip proves no key is unknown to it.
    client = ApiClient()
    model = client.deserialize(json.dumps(crd), "V1CustomResourceDefinition", "application/json")
    assert client.sanitize_for_serialization(model) == crd
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == f"{names['plural']}.{crd['spec']['group']}"
    assert CATEGORY in names["categories"]
    assert names["shortNames"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]][-1] == "Age"


def _structural_problems(node: Any, path: str) -> list[str]:
    problems = []
    if not isinstance(node, dict):
        return [f"{path}: not a schema"]
    for key in FORBIDDEN & node.keys():
        problems.append(f"{path}: uses {key}")
    special = node.get("x-kubernetes-int-or-string") or node.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if "type" not in node and not special:
        problems.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties")
    for key, sub in node.get("properties", {}).items():
        problems.extend(_structural_problems(sub, f"{path}.{key}"))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            problems.extend(_structural_problems(node[key], f"{path}[{key}]"))
    return problems


@pytest.mark.parametrize("crd", crds(), ids=lambda c: c["metadata"]["name"])
def test_crd_schema_is_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _structural_problems(schema, "") == []
    # `kubectl apply` (client-side) stores the object in a 256 KiB annotation.
    assert len(json.dumps(crd)) < 256 * 1024


def test_pod_template_schema_is_typed_not_opaque() -> None:
    run = next(c for c in crds() if c["spec"]["names"]["kind"] == "BackupRun")
    spec = run["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    pod = spec["properties"]["template"]["properties"]["spec"]
    container = pod["properties"]["containers"]["items"]["properties"]
    assert {"name", "image", "command", "env", "volumeMounts", "resources"} <= container.keys()
    assert {"volumes", "tolerations", "affinity", "initContainers"} <= pod["properties"].keys()


def test_defaults_match_the_seed() -> None:
    schedule = next(c for c in crds() if c["spec"]["names"]["kind"] == "BackupSchedule")
    spec = schedule["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert props["concurrencyPolicy"]["default"] == "Replace"
    assert props["successfulRunsHistoryLimit"]["default"] == 3
    assert props["failedRunsHistoryLimit"]["default"] == 1
    run_spec = props["template"]["properties"]["spec"]["properties"]
    assert run_spec["retainPolicy"]["default"] == "Retain"
    compression = run_spec["compression"]["properties"]
    assert compression["algorithm"]["default"] == "gzip"
    # A defaulted level would make the API server refuse every algorithm: none.
    assert "default" not in compression["level"]


def _inputs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{p.name}#{i}", d)
        for p in sorted(GOLDEN.glob("*.in.yaml"))
        for i, d in enumerate(load_yaml(p))
    ]


@pytest.mark.parametrize(("name", "doc"), _inputs(), ids=lambda v: str(v)[:50])
def test_golden_inputs_pass_the_crd_schemas_and_cel_rules(name: str, doc: dict[str, Any]) -> None:
    assert crd_problems(doc) == []


# --- the same bad objects, refused by the CRD and by backup-gen ----------------------------

STORAGE: dict[str, Any] = load_yaml(GOLDEN / "seed.in.yaml")[0]
SCHEDULE: dict[str, Any] = load_yaml(GOLDEN / "seed.in.yaml")[1]
RUN: dict[str, Any] = {
    "apiVersion": "backup-operator.io/v1",
    "kind": "BackupRun",
    "metadata": {"name": "run"},
    "spec": copy.deepcopy(SCHEDULE["spec"]["template"]["spec"]),
}
Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()
_RUN_POD = "spec.template.spec"
_CONTAINER = f"{_RUN_POD}.containers.0"

REFUSED_BY_BOTH = [
    pytest.param(RUN, _set("spec.backup.container", "mysql2"),
                 "backup.container must be one of", id="backup-container-unknown"),
    pytest.param(RUN, _set("spec.restore.container", "db"),
                 "restore.container must be one of", id="restore-container-unknown"),
    pytest.param(RUN, lambda d: [d["spec"].pop("backup"), d["spec"].pop("restore")],
                 "a run needs backup or restore", id="no-action"),
    pytest.param(RUN, _set("spec.encryption", {"recipients": ["age1x"]}),
                 "needs encryption.decryptionKey", id="encrypted-restore-without-key"),
    pytest.param(RUN, _set(f"{_CONTAINER}.command", _DELETE),
                 "every container needs a command", id="container-without-command"),
    pytest.param(RUN, _set(f"{_CONTAINER}.name", "main"), "reserved", id="reserved-name"),
    pytest.param(RUN, _set(f"{_RUN_POD}.initContainers", [{"name": "wait", "image": "busybox"}]),
                 "reserved", id="reserved-init-container-name"),
    pytest.param(RUN, _set("spec.compression", {"level": 10}), "10",
                 id="level-too-high"),
    pytest.param(RUN, _set("spec.compression", {"level": -3}), "-3",
                 id="level-too-low"),
    pytest.param(RUN, _set("spec.compression", {"algorithm": "zstd"}), "zstd",
                 id="unknown-compression"),
    pytest.param(RUN, _set("spec.compression", {"algorithm": "none", "level": 6}),
                 "level applies to gzip only", id="level-without-compression"),
    pytest.param(RUN, _set("spec.retainPolicy", "Keep"), "Keep", id="bad-retain-policy"),
    pytest.param(RUN, _set("spec.backup.deadlineSeconds", 0), "0", id="zero-deadline"),
    pytest.param(RUN, _set(f"{_RUN_POD}.restartPolicy", "Always"), "Always",
                 id="restart-always"),
    pytest.param(RUN, _set(f"{_RUN_POD}.containers", []), "", id="no-containers"),
    pytest.param(RUN, _set("spec.storage", {"name": "minio"}), "path", id="no-path"),
    pytest.param(SCHEDULE, _set("spec.schedule", "every day"), "every day", id="bad-cron"),
    pytest.param(SCHEDULE, _set("spec.retention", {}), "retention needs at least one of",
                 id="empty-retention"),
    pytest.param(SCHEDULE, _set("spec.concurrencyPolicy", "Sometimes"), "Sometimes",
                 id="bad-concurrency"),
    pytest.param(SCHEDULE, _set("spec.failedRunsHistoryLimit", -1), "-1",
                 id="negative-history"),
    pytest.param(SCHEDULE, _set("spec.template.spec.backup", _DELETE),
                 "needs a backup action", id="schedule-without-backup"),
    pytest.param(STORAGE, _set("spec.parameters", {"endpoint": "http://x"}),
                 "'bucket' is a required property", id="storage-without-bucket"),
    pytest.param(STORAGE, _set("spec.parameters.acl", "public"), "unknown field",
                 id="storage-unknown-parameter"),
    pytest.param(STORAGE, _set("spec.parameters.insecure", "yes"), "yes",
                 id="storage-insecure-not-boolean"),
    pytest.param(STORAGE, _set("spec.parameters.bucket", "My_Bucket"), "My_Bucket",
                 id="storage-bad-bucket"),
    pytest.param(RUN, _set("spec.retention", 3), "unknown field", id="unknown-spec-field"),
    pytest.param(RUN, _set(f"{_CONTAINER}.imagePullPolicyy", "Always"), "unknown field",
                 id="unknown-container-field"),
    pytest.param(STORAGE, _set("spec.type", "gcs"), "gcs", id="storage-type"),
    pytest.param(STORAGE, _set("spec.credentials", {"name": "x"}), "namespace",
                 id="credentials-without-namespace"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "mutate", "message"), REFUSED_BY_BOTH)
def test_crd_and_backup_gen_refuse_the_same_objects(
    base: dict[str, Any], mutate: Mutation, message: str
) -> None:
    doc = copy.deepcopy(base)
    mutate(doc)
    problems = crd_problems(doc)
    assert problems, "the CRD accepted it"
    assert any(message in p for p in problems), problems
    docs = [doc] if doc["kind"] == "BackupStorage" else [STORAGE, doc]
    with pytest.raises(ValidationFailed) as failed:
        validate_texts([("case.yaml", dump_documents(docs))])
    assert failed.value.problems


@pytest.mark.parametrize("base", [STORAGE, SCHEDULE, RUN], ids=lambda d: d["kind"])
def test_unmodified_bases_are_accepted_by_both(base: dict[str, Any]) -> None:
    assert crd_problems(base) == []
    docs = [base] if base["kind"] == "BackupStorage" else [STORAGE, base]
    assert validate_texts([("case.yaml", dump_documents(docs))])
