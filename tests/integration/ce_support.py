"""CloudEvents checks for the bus tests: the official JavaScript SDK (npm `cloudevents`, pinned)
parsing what Ferry delivers, and our own check of the CloudEvents 1.0 attribute rules (the Python
SDK is not packaged for Debian).

The SDK is installed once into build/cloudevents-sdk (gitignored) and reused by later runs. A
failed install is a loud skip locally and a failure with CI=true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK_VERSION = "10.0.0"
SDK_DIR = ROOT / "build" / "cloudevents-sdk"
CHECK_SCRIPT = Path(__file__).resolve().parent / "cloudevents_sdk" / "check_events.js"


def _installed_version() -> str | None:
    package = SDK_DIR / "node_modules" / "cloudevents" / "package.json"
    try:
        return json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _unavailable(why: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CloudEvents JS SDK unavailable: {why}")
    pytest.skip(f"SKIPPED LOUDLY: CloudEvents JS SDK unavailable ({why}); "
                "these checks did not run")


class JsSdk:
    def parse(self, messages: list[dict]) -> list[dict]:
        """messages: [{"headers": {...}, "body": str}] -> [{"ok", "event" | "error"}]."""
        env = dict(os.environ, NODE_PATH=str(SDK_DIR / "node_modules"))
        out = subprocess.run(["node", str(CHECK_SCRIPT)], input=json.dumps(messages).encode(),
                             capture_output=True, env=env, timeout=60, check=True)
        return json.loads(out.stdout)


@pytest.fixture(scope="session")
def js_sdk() -> JsSdk:
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node or npm not installed (scripts/install-deps installs nodejs npm)")
    if _installed_version() != SDK_VERSION:
        SDK_DIR.mkdir(parents=True, exist_ok=True)
        try:
            r = subprocess.run(["npm", "install", "--prefix", str(SDK_DIR), "--no-audit",
                                "--no-fund", "--no-save", f"cloudevents@{SDK_VERSION}"],
                               capture_output=True, timeout=300)
        except subprocess.TimeoutExpired:
            _unavailable("npm install timed out")
        if r.returncode != 0 or _installed_version() != SDK_VERSION:
            _unavailable(f"npm install cloudevents@{SDK_VERSION} failed: "
                         f"{r.stderr.decode(errors='replace')[-500:]}")
    return JsSdk()


# --- our own check of the CloudEvents 1.0 rules -------------------------------------------------

_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
# RFC 3986 URI-reference: no spaces, controls or characters outside its set; a scheme, if any,
# starts with a letter.
_URI_REFERENCE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:)?[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")
_CONTEXT = {"specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject",
            "time"}


def cloudevent_problems(attributes: dict, *, has_data: bool = False,
                        has_data_base64: bool = False) -> list[str]:
    """The CloudEvents 1.0 rules an event (its attributes, without data) breaks; [] if none."""
    problems = []
    for name in ("id", "source", "specversion", "type"):
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            problems.append(f"required attribute {name} missing or empty: {value!r}")
    if attributes.get("specversion") not in (None, "1.0"):
        problems.append(f"specversion {attributes['specversion']!r}")
    source = attributes.get("source")
    if isinstance(source, str) and source and not _URI_REFERENCE.match(source):
        problems.append(f"source is not a URI-reference: {source!r}")
    time_ = attributes.get("time")
    if time_ is not None and (not isinstance(time_, str) or not _RFC3339.match(time_)):
        problems.append(f"time is not RFC 3339: {time_!r}")
    for name, value in attributes.items():
        if name in _CONTEXT:
            continue
        if not _EXTENSION_NAME.match(name):
            problems.append(f"attribute name {name!r} is not [a-z0-9]{{1,20}}")
        if not isinstance(value, (str, int, bool)):
            problems.append(f"attribute {name} has a value of type {type(value).__name__}")
    if has_data and has_data_base64:
        problems.append("both data and data_base64")
    return problems


def structured_problems(event: dict) -> list[str]:
    attributes = {k: v for k, v in event.items() if k not in ("data", "data_base64")}
    return cloudevent_problems(attributes, has_data="data" in event,
                               has_data_base64="data_base64" in event)


def binary_problems(headers: dict[str, str]) -> list[str]:
    """Binary mode: the ce-* headers are the attributes (content-type is datacontenttype)."""
    attributes = {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
    if "content-type" in headers:
        attributes["datacontenttype"] = headers["content-type"]
    return cloudevent_problems(attributes)
