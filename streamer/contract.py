"""The contract between the generator and the streamer, in one place both import.

The generator writes ``streamer`` command lines, environment variables and Argo output
parameters that only the streamer reads. Spelling them twice lets a rename on one side pass
every test of each side alone and break every run in a cluster; so each name is spelled here,
once. This module imports nothing but the standard library: the generator learns the contract
without loading the data plane's native libraries (ISA-L, zlib-ng, pyrage).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_LEVEL",
    "ENCODED_TEMPLATE_PREFIX",
    "FAILURES",
    "FAILURE_OUTPUTS",
    "LOCK_MODES",
    "LOCK_OUTPUTS",
    "MAX_LEVEL",
    "MAX_LOCK_DAYS",
    "MIN_LEVEL",
    "OUTPUTS",
    "Env",
    "Failure",
    "Flag",
    "Output",
    "Subcommand",
]


class Subcommand:
    """The streamer's subcommands."""

    BACKUP: Final = "backup"
    RESTORE: Final = "restore"
    VERIFY: Final = "verify"


class Flag:
    """The flags the generator writes into the streamer's command line."""

    POD: Final = "--pod"
    NAMESPACE: Final = "--namespace"
    CONTAINER: Final = "--container"
    ENDPOINT_URL: Final = "--endpoint-url"
    REGION: Final = "--region"
    PATH_STYLE: Final = "--path-style"
    INSECURE: Final = "--insecure"
    COMPRESSION: Final = "--compression"
    LEVEL: Final = "--level"
    RECIPIENT: Final = "--recipient"
    IDENTITY: Final = "--identity"
    PATH_TEMPLATE: Final = "--path-template"
    VAR: Final = "--var"
    OUTPUTS: Final = "--outputs"
    #: restore and verify: fail unless the stored object has this SHA-256 (empty: no check).
    SHA256: Final = "--sha256"
    DEADLINE: Final = "--deadline"
    #: Object Lock of the stored backup: a mode of LOCK_MODES and a number of days, which
    #: come together (the retain-until date is the upload's start plus the days), and a legal
    #: hold, alone or with them. The bucket must have Object Lock enabled.
    OBJECT_LOCK_MODE: Final = "--object-lock-mode"
    OBJECT_LOCK_DAYS: Final = "--object-lock-days"
    LEGAL_HOLD: Final = "--legal-hold"
    #: A restore's check: a command run after the restore command succeeded, in the same
    #: container unless CHECK_CONTAINER names another (exec source); its exit code decides.
    #: Repeated, one argument each: ``--check mysql --check -e --check 'SELECT 1'``.
    CHECK: Final = "--check"
    CHECK_CONTAINER: Final = "--check-container"
    #: Separates the streamer's options from the user's command.
    END_OF_OPTIONS: Final = "--"


class Env:
    """Environment variables the streamer reads and the generated Pods set."""

    #: The Pod the streamer runs in (the downward API), the default of ``--pod``.
    POD_NAME: Final = "POD_NAME"
    #: Its namespace, the default of ``--namespace`` and the ``namespace`` template variable.
    POD_NAMESPACE: Final = "POD_NAMESPACE"
    #: An age identity itself (not a file), the alternative to ``--identity``.
    AGE_IDENTITY: Final = "AGE_IDENTITY"
    AWS_ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
    AWS_SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 -- a variable's name
    AWS_SESSION_TOKEN: Final = "AWS_SESSION_TOKEN"  # noqa: S105 -- a variable's name
    AWS_REGION: Final = "AWS_REGION"
    AWS_ENDPOINT_URL_S3: Final = "AWS_ENDPOINT_URL_S3"
    #: ``when_required`` stops the CRC32 each uploaded part carries (see S3Settings).
    AWS_REQUEST_CHECKSUM_CALCULATION: Final = "AWS_REQUEST_CHECKSUM_CALCULATION"
    #: Where Argo reads a step's progress (``N/M``) from.
    ARGO_PROGRESS_FILE: Final = "ARGO_PROGRESS_FILE"


class Output:
    """The values a backup reports, one file each under ``--outputs`` (Argo output parameters)."""

    PATH: Final = "path"
    URL: Final = "url"
    SIZE_IN_BYTES: Final = "sizeInBytes"
    SIZE: Final = "size"
    PLAINTEXT_BYTES: Final = "plaintextBytes"
    SHA256: Final = "sha256"
    DURATION_SECONDS: Final = "durationSeconds"
    COMPRESSED: Final = "compressed"
    ENCRYPTED: Final = "encrypted"
    #: When the stored object's retention ends (ISO 8601, UTC; empty with a legal hold alone).
    RETAIN_UNTIL: Final = "retainUntil"
    #: ``true`` when the stored object is under a legal hold.
    LEGAL_HOLD: Final = "legalHold"
    #: ``true`` when the stored object carries at least the lock the backup asked for.
    LOCKED: Final = "locked"
    #: Written on failure only (with ``--outputs``): one of :data:`FAILURES`, and the error's
    #: message (which never holds a secret), so a drill's Workflow says why it failed.
    FAILURE: Final = "failure"
    FAILURE_MESSAGE: Final = "failureMessage"


class Failure:
    """Why a run failed, the value of :attr:`Output.FAILURE`."""

    #: The stored object's SHA-256 is not the one expected (``--sha256``).
    DIGEST_MISMATCH: Final = "DigestMismatch"
    #: age decryption failed: wrong or missing identity, or a corrupted object.
    DECRYPT_FAILED: Final = "DecryptFailed"
    #: The data is not valid gzip, or is truncated.
    DECOMPRESS_FAILED: Final = "DecompressFailed"
    #: The backup or restore command ran and failed (its exit code is the streamer's).
    COMMAND_FAILED: Final = "CommandFailed"
    #: The restore succeeded and the ``--check`` command failed (its exit code is the streamer's).
    CHECK_FAILED: Final = "CheckFailed"
    #: The command could not be started, reached or waited for, or hit its deadline.
    SOURCE_FAILED: Final = "SourceFailed"
    #: The object to read does not exist.
    NOT_FOUND: Final = "ObjectNotFound"
    #: The storage refused or failed (bucket, credentials, network).
    STORAGE_FAILED: Final = "StorageFailed"
    #: A termination signal stopped the run.
    INTERRUPTED: Final = "Interrupted"
    #: A flag, URL, key or template is invalid.
    CONFIG: Final = "ConfigError"


#: Every value of :attr:`Output.FAILURE`.
FAILURES: Final = (
    Failure.DIGEST_MISMATCH,
    Failure.DECRYPT_FAILED,
    Failure.DECOMPRESS_FAILED,
    Failure.COMMAND_FAILED,
    Failure.CHECK_FAILED,
    Failure.SOURCE_FAILED,
    Failure.NOT_FOUND,
    Failure.STORAGE_FAILED,
    Failure.INTERRUPTED,
    Failure.CONFIG,
)
#: Written by a failed run instead of OUTPUTS (declare them with an empty default).
FAILURE_OUTPUTS: Final = (Output.FAILURE, Output.FAILURE_MESSAGE)


#: Every output, in the order the streamer writes them; it writes each one on every success.
OUTPUTS: Final = (
    Output.PATH,
    Output.URL,
    Output.SIZE_IN_BYTES,
    Output.SIZE,
    Output.PLAINTEXT_BYTES,
    Output.SHA256,
    Output.DURATION_SECONDS,
    Output.COMPRESSED,
    Output.ENCRYPTED,
)

#: Written besides OUTPUTS by a backup that asks for Object Lock, and only by one: declare
#: them (Argo output parameters) only for runs given the Object Lock flags. A backup stored
#: but not locked as asked writes them too (``locked`` false) and then fails.
LOCK_OUTPUTS: Final = (Output.RETAIN_UNTIL, Output.LEGAL_HOLD, Output.LOCKED)

#: The values of ``--object-lock-mode`` (S3's retention modes; COMPLIANCE is the stronger).
LOCK_MODES: Final = ("GOVERNANCE", "COMPLIANCE")
#: The longest retention ``--object-lock-days`` takes (S3's limit for default retention).
MAX_LOCK_DAYS: Final = 36500

#: A ``--path-template`` value starting with this is base64 of the template: Argo resolves
#: ``{{ … }}`` in container arguments itself and rejects the tags it does not know.
ENCODED_TEMPLATE_PREFIX: Final = "base64:"

#: gzip levels the streamer takes: -1 the default, 0 store, 1 fastest … 9 smallest, -2 Huffman only.
MIN_LEVEL: Final = -2
MAX_LEVEL: Final = 9
DEFAULT_LEVEL: Final = -1
