"""The controller's S3 door against the moto S3 server: checks, deletions, errors, timeouts."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import moto.settings
import pytest

from generator.controller.objectstore import (
    ObjectStoreError,
    check_bucket,
    delete_object,
    s3_settings,
)
from generator.models import BackupStorageSpec
from tests.conftest import FAKE_ACCESS_KEY, FAKE_SECRET, free_port, list_keys


def storage_body(endpoint: str, bucket: str, **parameters: str) -> dict[str, Any]:
    return {
        "apiVersion": "backup-operator.io/v1",
        "kind": "BackupStorage",
        "metadata": {"name": "minio", "uid": "u-1"},
        "spec": {
            "type": "s3",
            "parameters": {"bucket": bucket, "endpoint": endpoint, **parameters},
            "credentials": {"name": "minio-credentials", "namespace": "minio"},
        },
    }


def secret_body(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "minio-credentials", "namespace": "minio"},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def default_secret(access: str = FAKE_ACCESS_KEY, secret: str = FAKE_SECRET) -> dict[str, Any]:
    return secret_body(AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)


def test_a_reachable_bucket_passes(s3_endpoint: str, bucket: str) -> None:
    check_bucket(storage_body(s3_endpoint, bucket), default_secret(), timeout=10)


def test_a_storage_asking_for_object_lock_needs_a_bucket_with_it(
    s3_endpoint: str, bucket: str, s3_client: Any
) -> None:
    def asking(name: str) -> dict[str, Any]:
        storage = storage_body(s3_endpoint, name)
        storage["spec"]["objectLock"] = {"mode": "GOVERNANCE", "days": 7}
        return storage

    with pytest.raises(ObjectStoreError) as caught:
        check_bucket(asking(bucket), default_secret(), timeout=10)
    assert f"the bucket {bucket!r} does not have Object Lock enabled" in str(caught.value)
    locked = f"locked-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    check_bucket(asking(locked), default_secret(), timeout=10)


def test_keys_named_by_the_parameters_are_used(
    s3_endpoint: str, bucket: str, iam_key: tuple[str, str], enforce_auth: None
) -> None:
    storage = storage_body(s3_endpoint, bucket, accessKey="id", secretKey="key")
    secret = secret_body(id=iam_key[0], key=iam_key[1], AWS_SECRET_ACCESS_KEY="unused-value-xx")
    check_bucket(storage, secret, timeout=10)


def test_a_missing_secret_names_it(s3_endpoint: str, bucket: str) -> None:
    with pytest.raises(ObjectStoreError) as caught:
        check_bucket(storage_body(s3_endpoint, bucket), None, timeout=10)
    assert str(caught.value) == (
        "the Secret minio/minio-credentials (spec.credentials of BackupStorage minio) does not "
        "exist: create it, or fix spec.credentials"
    )


@pytest.mark.parametrize(
    ("parameters", "data", "missing", "field"),
    [
        pytest.param(
            {},
            {"AWS_ACCESS_KEY_ID": "a"},
            "AWS_SECRET_ACCESS_KEY",
            "secretKey",
            id="default-secret-key",
        ),
        pytest.param(
            {"accessKey": "id"},
            {"AWS_SECRET_ACCESS_KEY": FAKE_SECRET},
            "id",
            "accessKey",
            id="named-access-key",
        ),
    ],
)
def test_a_missing_key_names_the_key_and_the_field(
    s3_endpoint: str,
    bucket: str,
    parameters: dict[str, str],
    data: dict[str, str],
    missing: str,
    field: str,
) -> None:
    with pytest.raises(ObjectStoreError) as caught:
        check_bucket(
            storage_body(s3_endpoint, bucket, **parameters), secret_body(**data), timeout=10
        )
    message = str(caught.value)
    assert f"has no key {missing!r}" in message
    assert f"spec.parameters.{field}" in message
    assert FAKE_SECRET not in message


def test_a_value_that_is_not_base64_is_reported_without_it(s3_endpoint: str, bucket: str) -> None:
    secret = default_secret()
    secret["data"]["AWS_SECRET_ACCESS_KEY"] = FAKE_SECRET + "!"
    with pytest.raises(ObjectStoreError, match=r"'AWS_SECRET_ACCESS_KEY'.*is not base64") as caught:
        check_bucket(storage_body(s3_endpoint, bucket), secret, timeout=10)
    assert FAKE_SECRET not in str(caught.value)


def test_a_missing_bucket_says_so(s3_endpoint: str) -> None:
    with pytest.raises(ObjectStoreError) as caught:
        check_bucket(storage_body(s3_endpoint, "no-such-bucket"), default_secret(), timeout=10)
    message = str(caught.value)
    assert message.startswith(
        "checking the bucket 'no-such-bucket' of BackupStorage minio: the bucket "
        "'no-such-bucket' does not exist"
    )
    assert message.endswith("create it, or fix spec.parameters.bucket")


def test_rejected_keys_are_reported_without_the_secret(
    s3_endpoint: str, bucket: str, iam_key: tuple[str, str], enforce_auth: None
) -> None:
    with pytest.raises(ObjectStoreError) as caught:
        check_bucket(storage_body(s3_endpoint, bucket), default_secret(iam_key[0]), timeout=10)
    message = str(caught.value)
    assert "S3 rejected the credentials (SignatureDoesNotMatch)" in message
    assert message.endswith(
        "check the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of the Secret "
        "minio/minio-credentials"
    )
    assert FAKE_SECRET not in message
    assert FAKE_SECRET not in repr(caught.value.__cause__)


def test_an_endpoint_that_refuses_connections_names_the_field() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ObjectStoreError) as caught:
        check_bucket(storage_body(endpoint, "backups"), default_secret(), timeout=30)
    message = str(caught.value)
    assert f"cannot connect to the S3 endpoint {endpoint}" in message
    assert message.endswith("check spec.parameters.endpoint and the network")


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_an_endpoint_that_does_not_answer_is_bounded_by_the_timeout(
    silent_endpoint: str,
) -> None:
    with pytest.raises(ObjectStoreError) as caught:
        check_bucket(storage_body(silent_endpoint, "backups"), default_secret(), timeout=0.5)
    assert str(caught.value) == (
        "checking the bucket 'backups' of BackupStorage minio: no answer within 0.5s; check "
        "the endpoint and the network"
    )


def test_delete_removes_the_object_and_a_gone_one_counts_as_deleted(
    s3_endpoint: str, bucket: str, s3_client: Any
) -> None:
    s3_client.put_object(Bucket=bucket, Key="backups/a.sql", Body=b"a")
    s3_client.put_object(Bucket=bucket, Key="backups/b.sql", Body=b"b")
    storage = storage_body(s3_endpoint, bucket)
    delete_object(storage, default_secret(), "backups/a.sql", timeout=10)
    assert list_keys(s3_client, bucket) == ["backups/b.sql"]
    delete_object(storage, default_secret(), "backups/a.sql", timeout=10)
    assert list_keys(s3_client, bucket) == ["backups/b.sql"]


def test_a_failed_delete_names_the_object(s3_endpoint: str) -> None:
    with pytest.raises(
        ObjectStoreError,
        match=r"deleting s3://no-such-bucket/k of BackupStorage minio: .*does not exist",
    ):
        delete_object(
            storage_body(s3_endpoint, "no-such-bucket"), default_secret(), "k", timeout=10
        )


@pytest.mark.parametrize(
    ("parameters", "path_style", "verify_tls"),
    [
        pytest.param({}, False, True, id="defaults"),
        pytest.param({"insecure": "true", "s3ForcePathStyle": "true"}, True, False, id="minio"),
        pytest.param({"insecure": "false", "s3ForcePathStyle": "false"}, False, True, id="false"),
    ],
)
def test_settings_follow_the_parameters(
    parameters: dict[str, str], path_style: bool, verify_tls: bool
) -> None:
    spec = BackupStorageSpec.model_validate(
        storage_body("http://minio.minio.svc:9000", "backups", region="eu-west-3", **parameters)[
            "spec"
        ]
    )
    settings = s3_settings(spec)
    assert settings.endpoint_url == "http://minio.minio.svc:9000"
    assert settings.region == "eu-west-3"
    assert settings.path_style is path_style
    assert settings.verify_tls is verify_tls


# -- authentication enforced by moto --------------------------------------------------------------


@pytest.fixture
def iam_key(s3_env: str) -> tuple[str, str]:
    """A key of a moto user who may do anything in S3 (created before enforce_auth)."""
    iam = boto3.client("iam", endpoint_url=s3_env, region_name="us-east-1")
    user = f"controller-{uuid.uuid4().hex[:12]}"
    iam.create_user(UserName=user)
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
    created = iam.create_access_key(UserName=user)["AccessKey"]
    return created["AccessKeyId"], created["SecretAccessKey"]


@pytest.fixture
def enforce_auth(monkeypatch: pytest.MonkeyPatch, bucket: str) -> None:
    """The (in-process) moto server checks signatures from now on."""
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
