"""Runs the real cloud-info-provider-service (1.2) unchanged, except for the one
URL it hard-codes: its GOCDB request goes to FEDSITE_GOCDB_URL (the simulator's
GOCDB) instead of https://goc.egi.eu/gocdbpi/public/."""
import os
import sys
import types

import requests
from cloud_info_provider import core
from cloud_info_provider.providers import utils

GOCDB = "https://goc.egi.eu/gocdbpi/public/"


def _get(url, *args, **kwargs):
    if url == GOCDB:
        url = os.environ["FEDSITE_GOCDB_URL"]
    return requests.get(url, *args, **kwargs)


utils.requests = types.SimpleNamespace(get=_get)
sys.argv[0] = "cloud-info-provider-service"
sys.exit(core.main())
