"""The command line: subcommands, --help, exit codes (0 ok, 1 bad config/runtime, 2 usage)."""

import re
import subprocess
import time

import pytest
import yaml

from conftest import FERRY_BIN, REPO_ROOT, basic_config


def ferry(*args, timeout=10):
    return subprocess.run([str(FERRY_BIN), *args], capture_output=True, text=True, timeout=timeout)


def test_version_prints_version_and_exits_0():
    r = ferry("version")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"ferry \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["validate", "--help"],
                                  ["version", "--help"]])
def test_help_exits_0_and_shows_usage(args):
    r = ferry(*args)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout


def test_run_help_mentions_config_option():
    assert "--config" in ferry("run", "--help").stdout


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["run"], ["validate"],
                                  ["run", "-c", "x.yaml", "--no-such-flag"],
                                  ["run", "-c", "x.yaml", "--log-level", "loud"]])
def test_bad_usage_exits_2(args):
    assert ferry(*args).returncode == 2


def test_validate_good_config_exits_0(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(basic_config(["127.0.0.1:7001"])))
    r = ferry("validate", "-c", str(path))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("name", ["minimal.yaml", "admin-only.yaml"])
def test_validate_example_configs_exit_0(name):
    r = ferry("validate", "-c", str(REPO_ROOT / "examples" / "configs" / name))
    assert r.returncode == 0, r.stdout + r.stderr


def test_validate_full_example_loads_its_tls_files():
    # full.yaml is valid as a config; validate also loads the certificate and key files it
    # names (under /etc/ferry, absent here), as the node would at start.
    r = ferry("validate", "-c", str(REPO_ROOT / "examples" / "configs" / "full.yaml"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "listener secure: private key /etc/ferry/tls/shop.key" in r.stderr, r.stderr


def test_validate_unknown_key_exits_1_with_file_line_col(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("admin:\n  listen: 127.0.0.1:0\n  colour: blue\n")
    r = ferry("validate", "-c", str(path))
    assert r.returncode == 1
    assert re.search(re.escape(str(path)) + r":3:\d+: .*colour", r.stdout + r.stderr), r.stderr


def test_validate_duplicate_yaml_key_exits_1(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("workers: 1\nworkers: 2\n")
    r = ferry("validate", "-c", str(path))
    assert r.returncode == 1
    assert re.search(re.escape(str(path)) + r":2:\d+: ", r.stdout + r.stderr), r.stderr


def test_validate_missing_file_exits_1(tmp_path):
    assert ferry("validate", "-c", str(tmp_path / "nope.yaml")).returncode == 1


def test_run_refuses_bad_config_with_exit_1(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(basic_config(["127.0.0.1:7001"], workers="many")))
    started = time.monotonic()
    r = ferry("run", "-c", str(path))
    assert r.returncode == 1
    assert time.monotonic() - started < 5
    assert re.search(re.escape(str(path)) + r":\d+:\d+: ", r.stdout + r.stderr), r.stderr


def test_run_exits_1_when_admin_address_is_taken(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = basic_config(["127.0.0.1:7001"])
        config["admin"]["listen"] = f"127.0.0.1:{port}"
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(config))
        r = ferry("run", "-c", str(path))
    assert r.returncode == 1
