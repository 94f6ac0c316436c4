"""Seeds the real Nova API, Cinder API and Neutron started by scripts/peers.sh with a known site.

Runs in .venv-nova (nova 34, cinder 29, neutron 29), after Keystone, Nova,
Cinder and Neutron answer:

- Keystone (REST, as peers_seed.py): the services' own user (role `service`
  on project `service`, named by --service-user / --service-project); the `compute`, `volumev3` /
  `block-storage` and `network` services and endpoints; the projects of the site with their
  VO properties (`egi.VO`, `VO`, `egi.eu:VO`, and one without a VO); the users
  `alice` and `bob` (password as admin's) with the `member` role.
- Neutron (REST, as admin): an external network `public` (172.24.4.0/24), a
  shared network `private` (192.168.10.0/24) and a router between them; a port
  for each server (its project's, its device_id), floating IPs on some (fixed addresses),
  one left unassociated by its server's deletion and one never associated.
  Neutron stamps these with the time of the run, not the site's November.
- Nova, through nova.objects with an admin RequestContext (not SQL): a compute
  service, compute node and host mapping (`compute-1`); public flavors with the
  benchmark (`accounting:benchmark_type` / `accounting:benchmark_value`) and
  accelerator (`Accelerator:*`) extra specs fedsite reads, a private flavor
  with flavor access, a flavor deleted after a server used it; servers in the
  cell `cell1` (with their instance mappings) ACTIVE, SHUTOFF, PAUSED,
  SUSPENDED, SHELVED_OFFLOADED, DELETED and one resized, with launched_at /
  terminated_at and the instance actions and events real Nova records (create,
  stop/start, pause/unpause, suspend/resume, resize/confirmResize, shelve,
  delete), their network info cache built from their Neutron ports. Nova's and
  Cinder's timestamps are fixed (November 2026) through oslo's time override,
  so every run seeds the same site apart from the generated ids.
- Cinder, through cinder.objects: volumes in-use (attached to a server, with
  its block device mapping on the Nova side), available, and deleted.

The ids it made are written as JSON to stdout (projects, users, servers,
flavors, volumes, ports and floating IPs by name), for tests that compare values.

Usage: peers_seed_nova.py --keystone KS_URL --password PW --nova NOVA_URL
       --cinder CINDER_URL --neutron NEUTRON_URL --service-user NAME
       --service-project NAME --nova-config NOVA_CONF --cinder-config CINDER_CONF
"""

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings

from oslo_utils import timeutils

# The fixed times go through timeutils' override (deprecated for tests, still there).
warnings.filterwarnings("ignore", category=DeprecationWarning)


def at(text):
    """A fixed UTC instant, e.g. at('2026-11-02T08:00:00'), naive as Nova stores it."""
    return dt.datetime.fromisoformat(text)


def cinder_part(config):
    """The child: makes the volumes of the plan on stdin through cinder.objects."""
    from cinder import context as cinder_context
    from cinder import objects as cinder_objects
    from cinder.common import config as _cinder_config  # noqa: F401  (registers the options)
    from cinder.volume import volume_types
    from oslo_config import cfg

    cfg.CONF(["--config-file", config], project="cinder")
    cinder_objects.register_all()
    ctx = cinder_context.get_admin_context()
    vtype = volume_types.get_default_volume_type(ctx)
    made = {}
    for p in json.load(sys.stdin):
        created = at(p["created"])
        timeutils.set_time_override(created)
        attached = p["instance_uuid"] is not None
        v = cinder_objects.Volume(
            ctx, display_name=p["name"], display_description=p["name"], size=p["size"],
            status=p["status"], attach_status="attached" if attached else "detached",
            project_id=p["project_id"], user_id=p["user_id"], availability_zone="nova",
            volume_type_id=vtype["id"], host="cinder-1@lvm#lvm",
            launched_at=created + dt.timedelta(seconds=20), bootable=False, multiattach=False,
            metadata={"fedsite": "peers"})
        v.create()
        attachment = None
        if attached:
            when = created + dt.timedelta(minutes=5)
            timeutils.set_time_override(when)
            a = cinder_objects.VolumeAttachment(
                ctx, volume_id=v.id, instance_uuid=p["instance_uuid"], attached_host=p["host"],
                mountpoint="/dev/vdb", attach_time=when, attach_status="attached", attach_mode="rw")
            a.create()
            attachment = a.id
        if p["deleted_at"]:
            timeutils.set_time_override(at(p["deleted_at"]))
            v.status = "deleting"
            v.save()
            v.destroy()
        made[p["name"]] = (v.id, attachment)
    timeutils.clear_time_override()
    json.dump(made, sys.stdout)


if "--cinder-part" in sys.argv:
    cinder_part(sys.argv[sys.argv.index("--cinder-config") + 1])
    raise SystemExit(0)


ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--keystone", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--nova", required=True)
ap.add_argument("--cinder", required=True)
ap.add_argument("--neutron", required=True)
ap.add_argument("--service-user", required=True)
ap.add_argument("--service-project", required=True)
ap.add_argument("--nova-config", required=True)
ap.add_argument("--cinder-config", required=True)
args = ap.parse_args()


T0 = time.monotonic()


def log(msg):
    print(f"peers: {msg} [{time.monotonic() - T0:.1f} s]", file=sys.stderr)


# ------------------------------------------------------------------- Keystone

def ks_call(method, path, body=None, token=None, base=None):
    req = urllib.request.Request((base or args.keystone) + path, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(req, data) as resp:
        raw = resp.read()
        return resp.headers, (json.loads(raw) if raw else None)


headers, _ = ks_call("POST", "/auth/tokens", {"auth": {
    "identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": args.password}}},
    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
TOKEN = headers["X-Subject-Token"]

# First the user the services check tokens with (before any authenticated call to them).
_, svc_project = ks_call("POST", "/projects", {"project": {
    "name": args.service_project, "domain_id": "default", "enabled": True}}, TOKEN)
_, svc_user = ks_call("POST", "/users", {"user": {
    "name": args.service_user, "domain_id": "default", "password": args.password, "enabled": True}}, TOKEN)
_, roles = ks_call("GET", "/roles?name=service", token=TOKEN)
ks_call("PUT", f"/projects/{svc_project['project']['id']}/users/{svc_user['user']['id']}/roles/"
        f"{roles['roles'][0]['id']}", token=TOKEN)

# The catalog: compute (no project id in the URL, as Nova advises since 2.18);
# block-storage without and volumev3 with the project id, as the sim's catalog.
for stype, name, url in (
        ("compute", "nova", args.nova),
        ("volumev3", "cinderv3", args.cinder + "/%(project_id)s"),
        ("block-storage", "cinder", args.cinder),
        ("network", "neutron", args.neutron)):
    _, svc = ks_call("POST", "/services", {"service": {"type": stype, "name": name, "enabled": True}}, TOKEN)
    for interface in ("public", "internal", "admin"):
        ks_call("POST", "/endpoints", {"endpoint": {
            "service_id": svc["service"]["id"], "interface": interface,
            "region_id": "RegionOne", "url": url}}, TOKEN)

# Projects: name -> extra (flat) properties; one of each VO property fedsite reads.
PROJECTS = {
    "vo-access": {"egi.VO": "vo.access.egi.eu"},
    "vo-biomed": {"VO": "biomed"},
    "vo-notebooks": {"egi.eu:VO": "vo.notebooks.egi.eu"},
    "local-ops": {},
}
project_ids = {}
for pname, props in PROJECTS.items():
    _, p = ks_call("POST", "/projects", {"project": {
        "name": pname, "domain_id": "default", "enabled": True,
        "description": f"fedsite peers: {pname}", **props}}, TOKEN)
    project_ids[pname] = p["project"]["id"]

_, roles = ks_call("GET", "/roles?name=member", token=TOKEN)
member = roles["roles"][0]["id"]
user_ids = {}
for uname, projects in (("alice", ("vo-access", "vo-biomed")), ("bob", ("vo-notebooks", "local-ops"))):
    _, u = ks_call("POST", "/users", {"user": {
        "name": uname, "domain_id": "default", "password": args.password,
        "default_project_id": project_ids[projects[0]], "enabled": True}}, TOKEN)
    user_ids[uname] = u["user"]["id"]
    for pname in projects:
        ks_call("PUT", f"/projects/{project_ids[pname]}/users/{u['user']['id']}/roles/{member}", token=TOKEN)
log(f"seeded Keystone (compute, volumev3, block-storage, network endpoints; projects {', '.join(PROJECTS)}; users alice, bob)")

# -------------------------------------------------------------------- Neutron


def nt(method, path, body=None):
    """A Neutron API call as admin; the answer's JSON."""
    return ks_call(method, path, body, TOKEN, base=args.neutron + "/v2.0")[1]


public_net = nt("POST", "/networks", {"network": {
    "name": "public", "router:external": True, "provider:network_type": "flat",
    "provider:physical_network": "physnet1"}})["network"]
public_subnet = nt("POST", "/subnets", {"subnet": {
    "network_id": public_net["id"], "name": "public-v4", "cidr": "172.24.4.0/24", "ip_version": 4,
    "enable_dhcp": False, "allocation_pools": [{"start": "172.24.4.100", "end": "172.24.4.200"}]}})["subnet"]
# One shared network for every project's ports (192.168.10.0/24) and its router with a
# gateway on `public` (one router: each costs seconds of Neutron's time).
private_net = nt("POST", "/networks", {"network": {"name": "private", "shared": True}})["network"]
private_subnet = nt("POST", "/subnets", {"subnet": {
    "network_id": private_net["id"], "name": "private-v4", "cidr": "192.168.10.0/24", "ip_version": 4}})["subnet"]
router = nt("POST", "/routers", {"router": {
    "name": "router", "external_gateway_info": {"network_id": public_net["id"]}}})["router"]
nt("PUT", f"/routers/{router['id']}/add_router_interface", {"subnet_id": private_subnet["id"]})
ports, floating_ips = {}, {}
# Allocated to a project and never associated.
floating_ips["spare"] = nt("POST", "/floatingips", {"floatingip": {
    "floating_network_id": public_net["id"], "project_id": project_ids["vo-notebooks"],
    "floating_ip_address": "172.24.4.50"}})["floatingip"]["id"]
log("seeded Neutron (networks public and private (shared), a router between them)")

# ----------------------------------------------------------------------- Nova

import nova.config  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import objects  # noqa: E402
from nova.compute import power_state, vm_states  # noqa: E402
from nova.network import model as network_model  # noqa: E402

nova.config.parse_args(["peers_seed_nova", "--config-file", args.nova_config])
objects.register_all()

admin = nova_context.get_admin_context()
cell1 = next(c for c in objects.CellMappingList.get_all(admin) if c.name == "cell1")
HOST = "compute-1"
# Not a real image: Nova's read paths never ask Glance about a server's image.
IMAGE = "6b2b3b3e-5b6a-4c6e-9d2e-000000000001"

timeutils.set_time_override(at("2026-10-01T00:00:00"))
with nova_context.target_cell(admin, cell1) as cctxt:
    service = objects.Service(cctxt, host=HOST, binary="nova-compute", topic="compute",
                              report_count=0, disabled=False)
    service.create()
    node = objects.ComputeNode(
        cctxt, service_id=service.id, host=HOST, hypervisor_hostname=HOST,
        vcpus=64, memory_mb=262144, local_gb=4000, vcpus_used=0, memory_mb_used=0,
        local_gb_used=0, hypervisor_type="fake", hypervisor_version=1000, cpu_info="{}",
        free_ram_mb=262144, free_disk_gb=4000, current_workload=0, running_vms=0,
        disk_available_least=4000, host_ip="127.0.0.1", supported_hv_specs=[],
        cpu_allocation_ratio=16.0, ram_allocation_ratio=1.5, disk_allocation_ratio=1.0,
        mapped=1, stats={}, metrics="[]", numa_topology=None, pci_device_pools=None)
    node.create()
objects.HostMapping(admin, host=HOST, cell_mapping=cell1).create()

# Flavors (API database).
BENCH = {"accounting:benchmark_type": "HEPscore23"}
FLAVORS = {
    # name: (vcpus, ram MiB, disk GiB, public, extra specs)
    "m1.small": (1, 2048, 20, True, {**BENCH, "accounting:benchmark_value": "10.5"}),
    "m1.large": (4, 8192, 40, True, {**BENCH, "accounting:benchmark_value": "12.25"}),
    "g1.v100": (8, 32768, 80, True, {
        **BENCH, "accounting:benchmark_value": "15",
        "Accelerator:Type": "GPU", "Accelerator:Vendor": "NVIDIA", "Accelerator:Model": "Tesla V100",
        "Accelerator:Number": "1", "Accelerator:Memory": "16384",
        "Accelerator:VirtualizationType": "pci-passthrough",
        "pci_passthrough:alias": "v100:1", "infiniband": "true"}),
    "p1.private": (2, 4096, 20, False, {**BENCH, "accounting:benchmark_value": "11"}),
    "m1.nobench": (2, 4096, 10, True, {}),
    "m1.retired": (2, 4096, 20, True, {**BENCH, "accounting:benchmark_value": "8"}),
}
flavors = {}
for i, (fname, (vcpus, ram, disk, public, specs)) in enumerate(FLAVORS.items(), start=1):
    f = objects.Flavor(admin, name=fname, flavorid=str(100 + i), vcpus=vcpus, memory_mb=ram,
                       root_gb=disk, ephemeral_gb=0, swap=0, rxtx_factor=1.0, vcpu_weight=0,
                       disabled=False, is_public=public, extra_specs=specs,
                       description=f"fedsite peers: {fname}")
    f.create()
    flavors[fname] = f
flavors["p1.private"].add_access(project_ids["vo-biomed"])
flavors["p1.private"].add_access(project_ids["vo-access"])

# Events of one action as nova's conductor and compute record them.
EVENTS = {
    "create": ["conductor_schedule_and_build_instances", "compute__do_build_and_run_instance"],
    "stop": ["compute_stop_instance"],
    "start": ["compute_start_instance"],
    "pause": ["compute_pause_instance"],
    "unpause": ["compute_unpause_instance"],
    "suspend": ["compute_suspend_instance"],
    "resume": ["compute_resume_instance"],
    "resize": ["conductor_migrate_server", "compute_prep_resize", "compute_resize_instance",
               "compute_finish_resize"],
    "confirmResize": ["compute_confirm_resize"],
    "shelve": ["compute_shelve_instance", "compute_shelve_offload_instance"],
    "delete": ["compute_terminate_instance"],
}


def record_action(inst, action, when, user):
    """An instance action at `when` with its events (each 1 s later, 4 s long)."""
    ctx = nova_context.RequestContext(user_id=user, project_id=inst.project_id, is_admin=False,
                                      timestamp=when, request_id="req-" + str(uuid.uuid4()))
    with nova_context.target_cell(ctx, cell1) as c:
        timeutils.set_time_override(when)
        objects.InstanceAction.action_start(c, inst.uuid, action, want_result=False)
        for k, event in enumerate(EVENTS[action]):
            timeutils.set_time_override(when + dt.timedelta(seconds=1 + 5 * k))
            host = None if event.startswith("conductor") else HOST
            objects.InstanceActionEvent.event_start(c, inst.uuid, event, want_result=False, host=host)
            timeutils.set_time_override(when + dt.timedelta(seconds=5 + 5 * k))
            objects.InstanceActionEvent.event_finish(c, inst.uuid, event, want_result=False)


def plug(name, project, iid, n, floating):
    """The server's Neutron port (its project's) on `private` (192.168.10.<10+n>) and, if
    `floating`, a floating IP 172.24.4.<10+n> on it; returns Nova's network info."""
    net, sub = private_net, private_subnet
    fixed = sub["cidr"].rsplit(".", 1)[0] + f".{10 + n}"
    port = nt("POST", "/ports", {"port": {
        "network_id": net["id"], "project_id": project_ids[project], "name": f"{name}-port",
        "device_id": iid, "device_owner": "compute:nova",
        "fixed_ips": [{"subnet_id": sub["id"], "ip_address": fixed}]}})["port"]
    ports[name] = port["id"]
    fips = []
    if floating:
        fip = nt("POST", "/floatingips", {"floatingip": {
            "floating_network_id": public_net["id"], "project_id": project_ids[project],
            "port_id": port["id"], "floating_ip_address": f"172.24.4.{10 + n}"}})["floatingip"]
        floating_ips[name] = fip["id"]
        fips = [network_model.IP(address=fip["floating_ip_address"], type="floating", version=4)]
    ip = network_model.FixedIP(address=fixed, type="fixed", version=4, floating_ips=fips)
    subnet = network_model.Subnet(cidr=sub["cidr"], ips=[ip], version=4,
                                  gateway=network_model.IP(address=sub["gateway_ip"], type="gateway"))
    network = network_model.Network(id=net["id"], label=net["name"], bridge="br-int", subnets=[subnet])
    vif = network_model.VIF(id=port["id"], address=port["mac_address"], network=network,
                            type="ovs", active=True, vnic_type="normal")
    return network_model.NetworkInfo([vif])


servers = {}


def server(name, project, user, flavor, created, history, final_state, old_flavor=None, floating=False):
    """A server built at `created` (ACTIVE one minute later), then the actions of `history`
    [(action, when)], ending in `final_state`: an (vm_state, power_state) pair, or
    'deleted' / 'shelved_offloaded'. A deleted server's port is deleted (its floating IP
    stays allocated to the project)."""
    pid, uid = project_ids[project], user_ids[user]
    n = len(servers) + 1
    iid = str(uuid.uuid4())
    nw_info = plug(name, project, iid, n, floating)
    launched = created + dt.timedelta(minutes=1)
    timeutils.set_time_override(created)
    with nova_context.target_cell(admin, cell1) as cctxt:
        first = old_flavor or flavor
        inst = objects.Instance(
            cctxt, uuid=iid, user_id=uid, project_id=pid, image_ref=IMAGE,
            kernel_id="", ramdisk_id="", display_name=name, display_description=name,
            hostname=name, host=HOST, node=HOST, compute_id=node.id, launched_on=HOST,
            availability_zone="nova", launch_index=0, key_name=None,
            vm_state=vm_states.ACTIVE, power_state=power_state.RUNNING, task_state=None,
            flavor=first, instance_type_id=first.id, vcpus=first.vcpus, memory_mb=first.memory_mb,
            root_gb=first.root_gb, ephemeral_gb=first.ephemeral_gb, launched_at=launched,
            metadata={"fedsite": "peers"}, system_metadata={"image_base_image_ref": IMAGE},
            info_cache=objects.InstanceInfoCache(network_info=nw_info),
            locked=False, config_drive="", root_device_name="/dev/vda")
        inst.create()
        objects.InstanceMapping(admin, instance_uuid=inst.uuid, cell_mapping=cell1, project_id=pid,
                                user_id=uid, queued_for_delete=False).create()
        objects.BlockDeviceMapping(
            cctxt, instance_uuid=inst.uuid, source_type="image", destination_type="local",
            image_id=IMAGE, boot_index=0, device_name="/dev/vda", delete_on_termination=True,
            device_type="disk", disk_bus="virtio", volume_id=None).create()
    record_action(inst, "create", created, uid)
    for action, when in history:
        record_action(inst, action, when, uid)
    with nova_context.target_cell(admin, cell1) as cctxt:
        inst = objects.Instance.get_by_uuid(cctxt, inst.uuid)
        last = history[-1][1] + dt.timedelta(seconds=30) if history else launched
        timeutils.set_time_override(last)
        if old_flavor is not None:
            inst.old_flavor, inst.new_flavor = None, None
            inst.flavor = flavor
            inst.instance_type_id, inst.vcpus, inst.memory_mb = flavor.id, flavor.vcpus, flavor.memory_mb
            inst.root_gb, inst.ephemeral_gb = flavor.root_gb, flavor.ephemeral_gb
        if final_state == "deleted":
            inst.vm_state, inst.power_state, inst.task_state = vm_states.DELETED, power_state.NOSTATE, None
            inst.terminated_at = last
            inst.info_cache.network_info = network_model.NetworkInfo([])
            inst.save()
            inst.destroy()
            nt("DELETE", f"/ports/{ports.pop(name)}")
            im = objects.InstanceMapping.get_by_instance_uuid(admin, inst.uuid)
            im.queued_for_delete = True
            im.save()
        elif final_state == "shelved_offloaded":
            inst.vm_state, inst.power_state, inst.task_state = vm_states.SHELVED_OFFLOADED, power_state.SHUTDOWN, None
            inst.system_metadata.update({"shelved_at": last.isoformat(), "shelved_image_id": IMAGE,
                                         "shelved_host": HOST})
            inst.host, inst.node, inst.compute_id = None, None, None
            inst.save()
        else:
            inst.vm_state, inst.power_state = final_state
            inst.save()
    servers[name] = inst.uuid
    return inst


T = at
F = flavors
server("web-active", "vo-access", "alice", F["m1.small"], T("2026-11-02T08:00:00"), [], (vm_states.ACTIVE, power_state.RUNNING),
       floating=True)
server("gpu-active", "vo-access", "alice", F["g1.v100"], T("2026-11-03T09:30:00"), [], (vm_states.ACTIVE, power_state.RUNNING),
       floating=True)
server("batch-shutoff", "vo-access", "alice", F["m1.large"], T("2026-11-04T10:00:00"),
       [("stop", T("2026-11-10T12:00:00")), ("start", T("2026-11-11T07:00:00")), ("stop", T("2026-11-20T18:00:00"))],
       (vm_states.STOPPED, power_state.SHUTDOWN))
server("resized", "vo-access", "alice", F["m1.large"], T("2026-11-05T11:00:00"),
       [("resize", T("2026-11-12T09:00:00")), ("confirmResize", T("2026-11-12T09:10:00"))],
       (vm_states.ACTIVE, power_state.RUNNING), old_flavor=F["m1.small"], floating=True)
server("paused", "vo-biomed", "alice", F["m1.small"], T("2026-11-06T12:00:00"),
       [("pause", T("2026-11-08T10:00:00")), ("unpause", T("2026-11-09T10:00:00")), ("pause", T("2026-11-21T10:00:00"))],
       (vm_states.PAUSED, power_state.PAUSED))
server("suspended", "vo-biomed", "alice", F["g1.v100"], T("2026-11-07T13:00:00"),
       [("suspend", T("2026-11-09T16:00:00")), ("resume", T("2026-11-10T08:00:00")), ("suspend", T("2026-11-22T16:00:00"))],
       (vm_states.SUSPENDED, power_state.SUSPENDED))
server("private-flavor", "vo-biomed", "alice", F["p1.private"], T("2026-11-08T14:00:00"), [], (vm_states.ACTIVE, power_state.RUNNING))
server("shelved", "vo-notebooks", "bob", F["m1.small"], T("2026-11-09T15:00:00"),
       [("shelve", T("2026-11-15T15:00:00"))], "shelved_offloaded")
server("deleted", "vo-notebooks", "bob", F["m1.retired"], T("2026-11-10T16:00:00"),
       [("stop", T("2026-11-14T09:00:00")), ("delete", T("2026-11-16T09:00:00"))], "deleted", floating=True)
server("deleted-early", "local-ops", "bob", F["m1.nobench"], T("2026-10-20T08:00:00"),
       [("delete", T("2026-10-25T08:00:00"))], "deleted")
server("ops-active", "local-ops", "bob", F["m1.nobench"], T("2026-11-11T17:00:00"), [], (vm_states.ACTIVE, power_state.RUNNING))

# The flavor of `deleted` is gone too: only the servers' embedded copies remain.
timeutils.set_time_override(T("2026-11-25T00:00:00"))
flavors["m1.retired"].destroy()
log(f"seeded Nova ({len(servers)} servers in cell1, {len(flavors)} flavors, one deleted)")

# ---------------------------------------------------------------------- Cinder

# cinder's and nova's options clash in one oslo.config CONF: the volumes are made by a
# second process (this script with --cinder-part), which reads what to make on stdin
# and answers the ids; the Nova side of an attachment (its block device mapping) here.
T = at
VOLUMES = [
    # name, project, user, size GiB, created, status, attached to, deleted at
    ("data-in-use", "vo-access", "alice", 50, "2026-11-02T08:30:00", "in-use", "web-active", None),
    ("scratch-available", "vo-biomed", "alice", 10, "2026-11-06T12:30:00", "available", None, None),
    ("notebooks-home", "vo-notebooks", "bob", 100, "2026-11-09T15:30:00", "available", None, None),
    ("deleted", "vo-notebooks", "bob", 20, "2026-11-10T16:30:00", "available", None, "2026-11-16T09:30:00"),
]
plan = [{"name": n, "project_id": project_ids[p], "user_id": user_ids[u], "size": size, "created": c,
         "status": st, "instance_uuid": servers[a] if a else None, "host": HOST, "deleted_at": d}
        for n, p, u, size, c, st, a, d in VOLUMES]
child = subprocess.run([sys.executable, __file__, "--cinder-part", "--cinder-config", args.cinder_config],
                       input=json.dumps(plan), capture_output=True, text=True)
sys.stderr.write(child.stderr)
if child.returncode != 0:
    raise SystemExit(f"seeding Cinder failed (exit {child.returncode})")
made = json.loads(child.stdout)
volumes = {}
for v in plan:
    vid, attachment = made[v["name"]]
    volumes[v["name"]] = vid
    if attachment:
        timeutils.set_time_override(T(v["created"]) + dt.timedelta(minutes=5))
        with nova_context.target_cell(admin, cell1) as cctxt:
            objects.BlockDeviceMapping(
                cctxt, instance_uuid=v["instance_uuid"], source_type="volume", destination_type="volume",
                volume_id=vid, attachment_id=attachment, boot_index=None, device_name="/dev/vdb",
                delete_on_termination=False, device_type="disk", disk_bus="virtio",
                volume_size=v["size"]).create()
timeutils.clear_time_override()
log(f"seeded Cinder ({len(volumes)} volumes: in use, available, deleted)")

json.dump({"projects": project_ids, "users": user_ids, "servers": servers,
           "flavors": {k: v.flavorid for k, v in flavors.items()}, "volumes": volumes,
           "ports": ports, "floating_ips": floating_ips, "networks": {"public": public_net["id"]}},
          sys.stdout, indent=1)
print()
