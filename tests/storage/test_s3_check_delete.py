"""S3Storage.check, S3Storage.delete and S3Storage.with_keys against the moto S3 server."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import boto3
import moto.settings
import pytest

from streamer.errors import StorageError
from streamer.storage.s3 import S3Storage
from tests.conftest import FAKE_SECRET, free_port, list_keys
from tests.storage.conftest import settings

#: Another recognisable secret, given to with_keys rather than taken from the environment.
OTHER_SECRET = "oThEr-SeCrEt-NeVeR-sHoWn-93b1d0"


@pytest.fixture
def iam_key(s3_env: str) -> tuple[str, str]:
    """A key of a moto user who may do anything in S3."""
    iam = boto3.client("iam", endpoint_url=s3_env, region_name="us-east-1")
    user = f"controller-{uuid.uuid4().hex[:12]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    created = iam.create_access_key(UserName=user)["AccessKey"]
    return created["AccessKeyId"], created["SecretAccessKey"]


@pytest.fixture
def enforce_auth(monkeypatch: pytest.MonkeyPatch, bucket: str) -> str:
    """Signatures are checked from now on; create the IAM key (iam_key) before this."""
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    return bucket


def test_check_passes_on_an_existing_bucket(s3_env: str, bucket: str) -> None:
    S3Storage(bucket, settings()).check()


def test_check_of_a_missing_bucket_says_so(s3_env: str) -> None:
    with pytest.raises(StorageError, match="the bucket 'no-such-bucket-here' does not exist"):
        S3Storage("no-such-bucket-here", settings()).check()


def test_delete_removes_the_object(s3_client: Any, bucket: str, s3_env: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="a/b.sql", Body=b"x")
    s3_client.put_object(Bucket=bucket, Key="a/other.sql", Body=b"y")
    S3Storage(bucket, settings()).delete("a/b.sql")
    assert list_keys(s3_client, bucket) == ["a/other.sql"]


def test_deleting_an_object_already_gone_counts_as_deleted(
    s3_client: Any, bucket: str, s3_env: str
) -> None:
    storage = S3Storage(bucket, settings())
    storage.delete("never-stored.sql")
    assert list_keys(s3_client, bucket) == []


def test_delete_in_a_missing_bucket_fails(s3_env: str) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        S3Storage("no-such-bucket-here", settings()).delete("k")


def test_with_keys_signs_with_the_given_keys_not_the_environment(
    iam_key: tuple[str, str], enforce_auth: str
) -> None:
    # The environment holds FAKE_ACCESS_KEY/FAKE_SECRET, which the server now rejects.
    with pytest.raises(StorageError, match="S3 rejected the credentials"):
        S3Storage(enforce_auth, settings()).check()
    storage = S3Storage.with_keys(
        enforce_auth, settings(), access_key_id=iam_key[0], secret_access_key=iam_key[1]
    )
    storage.check()


def test_a_wrong_secret_given_to_with_keys_is_never_shown(
    iam_key: tuple[str, str], enforce_auth: str
) -> None:
    storage = S3Storage.with_keys(
        enforce_auth, settings(), access_key_id=iam_key[0], secret_access_key=OTHER_SECRET
    )
    with pytest.raises(StorageError) as caught:
        storage.check()
    message = str(caught.value)
    assert "S3 rejected the credentials (SignatureDoesNotMatch)" in message
    assert OTHER_SECRET not in message
    assert FAKE_SECRET not in message
    assert storage._bucket.redact(f"x {OTHER_SECRET} y") == "x *** y"


@pytest.mark.parametrize(
    ("cancel", "attempts"),
    [pytest.param(False, 3, id="retried"), pytest.param(True, 1, id="cancelled")],
)
def test_a_cancelled_check_makes_no_further_attempt(
    s3_env: str, cancel: bool, attempts: int
) -> None:
    cancelled = threading.Event()
    if cancel:
        cancelled.set()
    calls: list[str] = []
    nowhere = settings(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=3)
    storage = S3Storage("bucket", nowhere)
    storage.client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda **_: calls.append("head")
    )
    with pytest.raises(StorageError, match="cannot connect"):
        storage.check(cancelled=cancelled)
    assert len(calls) == attempts
