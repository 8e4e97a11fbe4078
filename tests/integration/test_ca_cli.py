"""`ferry ca init` and `ferry ca issue` (docs/security.md#ferry-ca), checked with openssl."""

import datetime
import os
import stat
import subprocess

import pytest

from conftest import FERRY_BIN, require_tool


def ferry(*args, timeout=20):
    return subprocess.run([str(FERRY_BIN), *args], capture_output=True, text=True, timeout=timeout)


def openssl(*args):
    return subprocess.run([require_tool("openssl"), *args], capture_output=True, text=True,
                          timeout=20)


def not_after(pem_path) -> datetime.datetime:
    out = openssl("x509", "-in", str(pem_path), "-noout", "-enddate").stdout.strip()
    text = out.split("=", 1)[1]  # "Dec  8 16:49:00 2026 GMT"
    return datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").replace(
        tzinfo=datetime.timezone.utc)


@pytest.fixture
def ca_dir(tmp_path):
    d = tmp_path / "ca" / "nested"
    r = ferry("ca", "init", "--dir", str(d), "--trust-domain", "example.org")
    assert r.returncode == 0, r.stderr
    return d


def test_init_makes_a_root_and_a_private_key(ca_dir):
    assert stat.S_IMODE(os.stat(ca_dir / "ca.key").st_mode) == 0o600
    text = openssl("x509", "-in", str(ca_dir / "ca.pem"), "-noout", "-text").stdout
    assert "CA:TRUE" in text
    assert "URI:spiffe://example.org" in text
    assert "prime256v1" in text or "P-256" in text


def test_init_refuses_to_overwrite(ca_dir):
    before = (ca_dir / "ca.pem").read_bytes()
    r = ferry("ca", "init", "--dir", str(ca_dir), "--trust-domain", "other.org")
    assert r.returncode == 1
    assert "exists" in r.stderr
    assert (ca_dir / "ca.pem").read_bytes() == before


def test_issue_writes_a_leaf_that_verifies(ca_dir):
    r = ferry("ca", "issue", "--dir", str(ca_dir), "--service", "orders")
    assert r.returncode == 0, r.stderr
    assert "spiffe://example.org/service/orders" in r.stdout
    v = openssl("verify", "-CAfile", str(ca_dir / "ca.pem"), str(ca_dir / "orders.pem"))
    assert v.returncode == 0, v.stdout + v.stderr
    assert "OK" in v.stdout
    text = openssl("x509", "-in", str(ca_dir / "orders.pem"), "-noout", "-text").stdout
    assert "URI:spiffe://example.org/service/orders" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "Digital Signature" in text
    assert "CA:FALSE" in text
    assert stat.S_IMODE(os.stat(ca_dir / "orders.key").st_mode) == 0o600
    # The key belongs to the certificate.
    cert_pub = openssl("x509", "-in", str(ca_dir / "orders.pem"), "-noout", "-pubkey").stdout
    key_pub = openssl("pkey", "-in", str(ca_dir / "orders.key"), "-pubout").stdout
    assert cert_pub and cert_pub == key_pub
    # Leaf only: the bundle (ca.pem) travels separately.
    assert (ca_dir / "orders.pem").read_text().count("BEGIN CERTIFICATE") == 1


def test_issue_honours_the_ttl(ca_dir):
    now = datetime.datetime.now(datetime.timezone.utc)
    assert ferry("ca", "issue", "--dir", str(ca_dir), "--service", "a", "--ttl", "90m").returncode == 0
    assert ferry("ca", "issue", "--dir", str(ca_dir), "--service", "b").returncode == 0
    assert abs((not_after(ca_dir / "a.pem") - now).total_seconds() - 90 * 60) < 30
    assert abs((not_after(ca_dir / "b.pem") - now).total_seconds() - 24 * 3600) < 30


def test_issue_without_a_ca_fails_clearly(tmp_path):
    r = ferry("ca", "issue", "--dir", str(tmp_path), "--service", "a")
    assert r.returncode == 1
    assert "ca.pem" in r.stderr and "ferry ca init" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["ca"], "subcommand"),
    (["ca", "init", "--trust-domain", "example.org"], "--dir"),
    (["ca", "init", "--dir", "X"], "--trust-domain"),
    (["ca", "init", "--dir", "X", "--trust-domain", "Bad Domain"], "not a trust domain"),
    (["ca", "issue", "--dir", "X"], "--service"),
    (["ca", "issue", "--dir", "X", "--service", "a/b"], "not a service name"),
    (["ca", "issue", "--dir", "X", "--service", "a", "--ttl", "soon"], "--ttl"),
    (["ca", "issue", "--dir", "X", "--service", "a", "--ttl", "0s"], "at least 1s"),
    (["ca", "frobnicate"], "subcommand"),
])
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, args, message):
    args = [str(tmp_path / "d") if a == "X" else a for a in args]
    r = ferry(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("args", [["ca", "--help"], ["ca", "init", "--help"],
                                  ["ca", "issue", "--help"]])
def test_help_on_every_verb(args):
    r = ferry(*args)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout
