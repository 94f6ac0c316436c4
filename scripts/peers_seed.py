"""Seeds the real Keystone started by scripts/peers.sh for the contract tests.

Registers Glance as the `image` service in the catalog, and creates the
project `contract` with the user `contract-reader` (password as admin's)
holding the `reader` role on it. Usage: peers_seed.py KS_URL GL_URL PASSWORD
"""

import json
import sys
import urllib.request

ks, gl, password = sys.argv[1:4]


def call(method, path, body=None, token=None, ok=(200, 201, 204)):
    req = urllib.request.Request(ks + path, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(req, data) as resp:
        if resp.status not in ok:
            raise SystemExit(f"{method} {path}: HTTP {resp.status}")
        raw = resp.read()
        return resp.headers, (json.loads(raw) if raw else None)


headers, _ = call("POST", "/auth/tokens", {"auth": {
    "identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
token = headers["X-Subject-Token"]

_, svc = call("POST", "/services", {"service": {"type": "image", "name": "glance", "enabled": True}}, token)
for interface in ("public", "internal", "admin"):
    call("POST", "/endpoints", {"endpoint": {
        "service_id": svc["service"]["id"], "interface": interface,
        "region_id": "RegionOne", "url": gl}}, token)

_, proj = call("POST", "/projects", {"project": {
    "name": "contract", "domain_id": "default", "enabled": True}}, token)
_, user = call("POST", "/users", {"user": {
    "name": "contract-reader", "domain_id": "default", "password": password,
    "default_project_id": proj["project"]["id"], "enabled": True}}, token)
_, roles = call("GET", "/roles?name=reader", token=token)
reader = roles["roles"][0]["id"]
call("PUT", f"/projects/{proj['project']['id']}/users/{user['user']['id']}/roles/{reader}", token=token)
print("peers: seeded Keystone (image endpoint, project contract, user contract-reader)", file=sys.stderr)
