# SPDX-License-Identifier: Apache-2.0
# docs/PRIVILEGES.md and docs/API.md stay in step with the daemon's routes.
import json
import os
import re
import subprocess

from conftest import build_dir

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vmcryptd(*args):
    exe = os.path.join(build_dir(), "manager", "vmcryptd")
    return subprocess.run([exe, *args], check=True, capture_output=True, text=True).stdout


def test_privileges_doc_matches_daemon():
    table = vmcryptd("--print-privileges")
    with open(os.path.join(TOP, "docs", "PRIVILEGES.md")) as f:
        doc = f.read()
    assert table in doc, "regenerate the table: vmcryptd --print-privileges"


def test_every_route_is_in_api_doc():
    routes = json.loads(vmcryptd("--print-routes"))
    with open(os.path.join(TOP, "docs", "API.md")) as f:
        doc = f.read()
    documented = set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/api/v1/[^`?\[ ]*)", doc))
    missing = [(r["method"], r["path"]) for r in routes
               if (r["method"], r["path"]) not in documented]
    assert not missing, f"routes missing from docs/API.md: {missing}"
