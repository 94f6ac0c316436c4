"""A Neutron stand-in for the real Nova API that scripts/peers.sh starts.

Nova's `servers/detail` and `servers/{id}` ask Neutron for the servers' ports
(`GET /v2.0/ports?device_id=...`) to show their security groups; an API-only
Nova has no Neutron, so this WSGI app answers: no ports, no security groups,
an empty list for any other `/v2.0/<collection>` and the version document at
`/`. It checks no token. It is not a Neutron for fedsite's own tests (those
use the simulator's Neutron): only what Nova's read paths need.
"""

import json
import re


def _reply(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
    if path == "/":
        host = environ.get("HTTP_HOST", "127.0.0.1")
        return _reply(start_response, "200 OK", {"versions": [{
            "id": "v2.0", "status": "CURRENT",
            "links": [{"rel": "self", "href": f"http://{host}/v2.0/"}]}]})
    m = re.fullmatch(r"/v2\.0/([a-z_-]+)(?:\.json)?", path)
    if environ.get("REQUEST_METHOD") == "GET" and m:
        return _reply(start_response, "200 OK", {m.group(1).replace("-", "_"): []})
    return _reply(start_response, "404 Not Found", {"NeutronError": {
        "type": "HTTPNotFound", "message": f"the peers' Neutron stub has no {path}", "detail": ""}})
