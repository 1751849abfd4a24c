"""The exec benchmark runs (small corpus, no targets checked): a smoke test so it cannot rot;
and its endpoint, in its own process, negotiates TLS as kube-apiserver does."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import run_python
from tests.exec.apiserver import process_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_exec_bench_quick_runs_and_reports_both_ratios() -> None:
    done = run_python("bench/exec.py", "--quick", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    for run in ("backup local", "backup exec", "restore local", "restore exec"):
        assert f"| {run} |" in done.stdout
    for step in ("backup", "restore"):
        assert f"{step:8} exec at " in done.stdout


def _negotiated_suite(tls_dir: Path, env: dict[str, str]) -> str:
    """Start the endpoint as the benchmark does; the TLS 1.3 suite a default client gets."""
    argv = [sys.executable, "-m", "tests.exec.apiserver", "--token", "t", "--tls-dir", str(tls_dir)]
    with subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True
    ) as endpoint:
        try:
            assert endpoint.stdout is not None
            url = urlsplit(endpoint.stdout.readline().strip())
            assert url.hostname is not None, url
            assert url.port is not None, url
            client = ssl.create_default_context(cafile=tls_dir / "apiserver.crt")
            with (
                socket.create_connection((url.hostname, url.port), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname=url.hostname) as tls,
            ):
                cipher = tls.cipher()
                assert cipher is not None
                assert cipher[1] == "TLSv1.3", cipher
                return cipher[0]
        finally:
            endpoint.terminate()


def test_the_benchmark_endpoint_picks_aes_128_gcm_like_kube_apiserver(tmp_path: Path) -> None:
    """Go's TLS server takes AES-128-GCM on AES hardware, whatever the client lists first;
    OpenSSL's default would take the client's first choice, AES-256-GCM."""
    assert _negotiated_suite(tmp_path, {}) == "TLS_AES_256_GCM_SHA384"
    assert _negotiated_suite(tmp_path, process_env(tmp_path)) == "TLS_AES_128_GCM_SHA256"
