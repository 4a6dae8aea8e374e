"""`sgdp import huawei` (SPEC S4): saved Huawei Cloud API responses become a topology `check` accepts.

The expected values are worked out by hand from the sample exports in examples/import/ (see its
README) and from the small responses written inline below, not from the importer's output.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from sgdp import cli

from sgdp.topology import huawei
from sgdp.errors import InputError
from sgdp.topology.model import load_topology, topology_from_data

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "import"
SAMPLE_FILES = ["vpcs.json", "subnets.json", "address_groups.json", "security_groups.json", "servers.json",
                "ports.json"]

VPC = "3ec3b33f-ac1c-4630-ad1c-7dba1ed79d85"
SG_WEB, SG_APP, SG_DB = ("0552091e-b83a-49dd-88a7-4a5c86fd9ec3", "16b6e77a-08fa-42c7-aa8b-106c048884e6",
                         "a7c1f2b4-9d3e-4f6a-8b5c-2e1d0f9a8b77")
NEUTRON_SUBNET_WEB = "b5a8a0e0-5b5f-4a5e-8c1f-0e2b7f0e4c11"


def samples(*names: str) -> list[str]:
    return [str(SAMPLES / n) for n in (names or SAMPLE_FILES)]


def load_sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """`sgdp ARGV` through sgdp.cli.main: exit code, stdout, stderr."""
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def write(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return str(path)


def by_name(items: list[dict], name: str) -> dict:
    return next(x for x in items if x["name"] == name)


def rule(topo: dict, group: str, rid: str) -> dict:
    return next(r for r in by_name(topo["security_groups"], group)["security_group_rules"] if r["id"] == rid)


# ---------------------------------------------------------------------------------- the samples


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_samples_import_and_pass_check(tmp_path, capsys, suffix):
    out = tmp_path / f"topology{suffix}"
    rc, stdout, stderr = run_cli(["import", "huawei", *samples(), "-o", str(out)], capsys)
    assert rc == 0, stderr
    assert out.exists()
    text = out.read_text()
    data = yaml.safe_load(text) if suffix == ".yaml" else json.loads(text)
    if suffix == ".json":
        assert text.lstrip().startswith("{")
    # every report line is prefixed; the summary counts them
    assert stderr and all(line.startswith("sgdp: import: ") for line in stderr.splitlines())
    assert "1 item(s) not mapped exactly, 3 note(s)" in stderr.splitlines()[-1]
    assert "written" in stdout
    # `sgdp check` accepts the file (exit 0; findings are fine)
    topo = load_topology(out)
    assert sorted(topo.instances) == ["ecs-app-01", "ecs-db-01", "ecs-web-01"]
    assert cli.main(["check", str(out)]) == 0
    assert data["version"] == 1


def test_sample_values_worked_out_by_hand():
    topo, lines = huawei.import_huawei(samples())
    # VPC and subnets: names kept (unique), ids kept, IPv6 CIDR from cidr_v6
    (vpc,) = topo["vpcs"]
    assert (vpc["name"], vpc["id"], vpc["cidr"]) == ("vpc-prod", VPC, "192.168.0.0/16")
    assert [s["name"] for s in vpc["subnets"]] == ["subnet-web", "subnet-app", "subnet-db"]
    web_subnet = by_name(vpc["subnets"], "subnet-web")
    assert web_subnet["ipv6_cidr"] == "2407:c080:802:1a0::/64"
    assert web_subnet["cidr"] == "192.168.1.0/24" and web_subnet["id"] == "4779ab1c-7c1a-44b1-a02e-93dfc361b32d"
    # address groups
    office = by_name(topo["address_groups"], "ipGroup-office")
    assert office["id"] == "dd18a501-fcd5-4adc-acfe-b0e2384baf08" and office["ip_version"] == 4
    assert office["ip_set"] == ["198.51.100.0/26", "198.51.100.77", "198.51.100.200-198.51.100.210"]
    # security groups: 8 / 4 / 5 rules, references by name
    counts = {g["name"]: len(g["security_group_rules"]) for g in topo["security_groups"]}
    assert counts == {"sg-web": 8, "sg-app": 4, "sg-db": 5}
    w1 = rule(topo, "sg-web", "f11a3824-ac19-4fad-b4f1-c5f4a6dd0a80")
    assert w1["multiport"] == "80,443" and w1["protocol"] == "tcp" and w1["remote_ip_prefix"] == "0.0.0.0/0"
    assert w1["action"] == "allow" and w1["priority"] == 1 and w1["created_at"] == "2020-08-13T07:12:36Z"
    w6 = rule(topo, "sg-web", "7b2f9c8e-1d4a-4b6e-9f3c-8a7e6d5c4b14")  # all protocols from the group itself
    assert w6["remote_group_id"] == "sg-web" and "protocol" not in w6 and w6["priority"] == 100
    assert rule(topo, "sg-web", "9a0b7d4e-6b3f-4f0a-9c2e-7f6c2a4b8d91")["action"] == "deny"
    assert rule(topo, "sg-web", "c4e3a1f0-2b9d-4e7f-8a6c-5d4b3a2f1e03")["ethertype"] == "IPv6"
    a1 = rule(topo, "sg-app", "2c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e47")
    assert a1["remote_group_id"] == "sg-web" and a1["multiport"] == "8080-8089"
    d2 = rule(topo, "sg-db", "0e1d2c3b-4a59-4687-b6c5-d4e3f2a1b092")
    assert d2["remote_address_group_id"] == "ipGroup-office" and d2["multiport"] == "22,3306"
    d4 = rule(topo, "sg-db", "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6fb4")
    assert d4["direction"] == "egress" and d4["remote_address_group_id"] == "ipGroup-mirrors"
    assert rule(topo, "sg-db", "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9cc5")["protocol"] == "udp"
    # instances
    web = by_name(topo["instances"], "ecs-web-01")
    assert web["flavor"] == "s6.large.2" and web["id"] == "4f4b3dfa-eb70-47cf-a60a-998a53bd598a"
    assert (web["subnet"], web["ip"], web["ipv6"]) == ("subnet-web", "192.168.1.10", "2407:c080:802:1a0::a")
    assert web["eip"] == "203.0.113.10"  # the floating address
    assert web["mac"] == "fa:16:3e:df:18:6d" and web["security_groups"] == ["sg-web"]
    assert web["ipv6_internet"] is True  # the port has an ipv6_bandwidth_id
    db = by_name(topo["instances"], "ecs-db-01")
    assert db["flavor"] == "s1.large" and db["ip"] == "192.168.3.30" and "eip" not in db
    app = by_name(topo["instances"], "ecs-app-01")
    assert [(n["subnet"], n["ip"], n["mac"]) for n in app["nics"]] == [
        ("subnet-app", "192.168.2.20", "fa:16:3e:5a:71:02"), ("subnet-db", "192.168.3.20", "fa:16:3e:5a:71:03")]
    # the model reads it as intended
    model = topology_from_data(topo)
    r = next(r for r in model.security_groups["sg-web"].rules if r.id == "f11a3824-ac19-4fad-b4f1-c5f4a6dd0a80")
    assert r.ports == ((80, 80), (443, 443)) and r.remote_kind == "prefix"
    assert model.instances["ecs-db-01"].family == "s1"
    assert not model.created_default


def test_port_security_group_order_wins_over_the_server_list():
    topo, lines = huawei.import_huawei(samples())
    app = by_name(topo["instances"], "ecs-app-01")
    # servers.json lists [sg-app, sg-db]; ports.json binds eth0 to [sg-app] and eth1 to [sg-db, sg-app]
    assert [n["security_groups"] for n in app["nics"]] == [["sg-app"], ["sg-db", "sg-app"]]
    assert any("ports[2].security_groups" in line and "['sg-db', 'sg-app'] is used" in line for line in lines)
    # without the ports export, both NICs get the server's list in its order
    topo2, _ = huawei.import_huawei(samples(*[f for f in SAMPLE_FILES if f != "ports.json"]))
    app2 = by_name(topo2["instances"], "ecs-app-01")
    assert [n["security_groups"] for n in app2["nics"]] == [["sg-app", "sg-db"], ["sg-app", "sg-db"]]
    web2 = by_name(topo2["instances"], "ecs-web-01")
    assert "ipv6_internet" not in web2  # unknown without the port, and said so
    assert any("ipv6_internet left false" in line for line in _)


def test_sample_reports_name_file_and_path(capsys, tmp_path):
    rc, _, stderr = run_cli(["import", "huawei", *samples(), "-o", str(tmp_path / "t.yaml")], capsys)
    assert rc == 0
    lines = stderr.splitlines()
    pair = [l for l in lines if "allowed address pair 172.17.0.0/16" in l]
    assert pair and pair[0].startswith(f"sgdp: import: {SAMPLES / 'ports.json'}: ports[1].allowed_address_pairs[0]: ")
    assert any("device_owner 'network:dhcp'" in l for l in lines)


def test_ports_fixed_ips_and_mac_win(tmp_path):
    servers = load_sample("servers.json")
    entry = servers["servers"][2]["addresses"][VPC][0]
    entry["addr"] = "192.168.3.99"  # the server's view disagrees with the port
    entry["OS-EXT-IPS-MAC:mac_addr"] = "fa:16:3e:00:00:99"
    files = samples("vpcs.json", "subnets.json", "security_groups.json", "address_groups.json", "ports.json")
    topo, lines = huawei.import_huawei(files + [write(tmp_path, "servers.json", servers)])
    db = by_name(topo["instances"], "ecs-db-01")
    assert db["ip"] == "192.168.3.30" and db["mac"] == "fa:16:3e:2b:9c:41"
    assert any("differ from the server's" in l for l in lines)


# ---------------------------------------------------------------------------- Neutron-style rules


def test_neutron_rules_are_accepted(tmp_path):
    rules = {"security_group_rules": [
        {"id": "n1", "security_group_id": SG_WEB, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
         "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": None,
         "tenant_id": "t", "description": ""},
        {"id": "n2", "security_group_id": SG_WEB, "direction": "ingress", "ethertype": "IPv4", "protocol": "6",
         "port_range_min": 1000, "port_range_max": 2000, "remote_ip_prefix": None, "remote_group_id": None},
        {"id": "n3", "security_group_id": SG_WEB, "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
         "port_range_min": 8, "port_range_max": 0, "remote_ip_prefix": None},
        {"id": "n4", "security_group_id": SG_WEB, "direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp",
         "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None},
        {"id": "n5", "security_group_id": SG_WEB, "direction": "ingress", "ethertype": "IPv6", "protocol": "icmp",
         "port_range_min": 128, "port_range_max": None, "remote_ip_prefix": "::/0"},
        {"id": "n6", "security_group_id": SG_WEB, "direction": "egress", "ethertype": "IPv4", "protocol": "sctp",
         "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None},
        {"id": "n7", "security_group_id": SG_WEB, "direction": "ingress", "ethertype": "IPv4", "protocol": "udp",
         "port_range_min": 1, "port_range_max": 65535, "remote_group_id": SG_APP, "remote_ip_prefix": None},
        {"id": "n8", "security_group_id": SG_WEB, "direction": "ingress", "ethertype": "IPv4", "protocol": 17,
         "port_range_min": 53, "port_range_max": None, "remote_ip_prefix": "192.168.0.0/16"},
    ]}
    files = samples("security_groups.json", "address_groups.json") + [write(tmp_path, "rules.json", rules)]
    topo, lines = huawei.import_huawei(files)
    web = by_name(topo["security_groups"], "sg-web")["security_group_rules"]
    got = {r["id"]: r for r in web if r["id"].startswith("n")}
    assert got["n1"] == {"id": "n1", "direction": "ingress", "action": "allow", "priority": 1, "ethertype": "IPv4",
                         "protocol": "tcp", "multiport": "22", "remote_ip_prefix": "10.0.0.0/8"}
    assert got["n2"]["multiport"] == "1000-2000" and "remote_ip_prefix" not in got["n2"]  # null = all addresses
    assert (got["n3"]["protocol"], got["n3"]["port_range_min"], got["n3"]["port_range_max"]) == ("icmp", 8, 0)
    assert got["n4"]["protocol"] == "icmpv6" and "port_range_min" not in got["n4"]
    assert got["n5"]["protocol"] == "icmpv6" and got["n5"]["port_range_min"] == 128  # Neutron: icmp + IPv6
    assert got["n6"]["protocol"] == 132
    assert got["n7"]["multiport"] == "1-65535" and got["n7"]["remote_group_id"] == "sg-app"
    assert got["n8"]["protocol"] == "udp" and got["n8"]["multiport"] == "53"
    # the sample rules and the Neutron ones are one group; sg-web's 8 rules have created_at, these do not
    assert len(web) == 16
    assert all("created_at" not in r for r in web)
    assert any("only 8 of its 16 rules have created_at" in l for l in lines)
    model = topology_from_data(topo)
    m = {r.id: r for r in model.security_groups["sg-web"].rules}
    assert m["n3"].icmp_type == 8 and m["n3"].icmp_code == 0 and m["n5"].protocol == 58
    assert m["n2"].ports == ((1000, 2000),) and m["n2"].remote_kind == "any"


def test_v1_security_groups_with_neutron_rules_inline(tmp_path):
    data = {"security_groups": [{
        "id": "ab12cd34-0000-4000-8000-000000000001", "name": "sg-legacy", "description": "", "vpc_id": VPC,
        "enterprise_project_id": "0",
        "security_group_rules": [
            {"id": "r-1", "description": "", "security_group_id": "ab12cd34-0000-4000-8000-000000000001",
             "direction": "ingress", "ethertype": "IPv4", "protocol": "TCP", "port_range_min": 3389,
             "port_range_max": 3389, "remote_ip_prefix": "0.0.0.0/0", "remote_group_id": None,
             "remote_address_group_id": None, "tenant_id": "t"},
            {"id": "r-2", "security_group_id": "ab12cd34-0000-4000-8000-000000000001", "direction": "egress",
             "ethertype": "IPv6", "protocol": None, "port_range_min": None, "port_range_max": None,
             "remote_ip_prefix": None, "remote_group_id": None, "tenant_id": "t"},
        ]}]}
    topo, lines = huawei.import_huawei([write(tmp_path, "v1.json", data)])
    (g,) = topo["security_groups"]
    assert g["security_group_rules"][0]["multiport"] == "3389" and g["security_group_rules"][0]["protocol"] == "tcp"
    assert g["security_group_rules"][1] == {"id": "r-2", "direction": "egress", "action": "allow", "priority": 1,
                                            "ethertype": "IPv6"}
    assert lines == ["0 item(s) not mapped exactly, 0 note(s)"]


def test_rules_only_export_names_the_group_by_its_id(tmp_path):
    rules = {"security_group_rules": [{"id": "x1", "security_group_id": "77777777-aaaa-4bbb-8ccc-dddddddddddd",
                                       "direction": "ingress", "protocol": "tcp", "multiport": "443", "action": "allow",
                                       "priority": 1, "ethertype": "IPv4", "remote_ip_prefix": "0.0.0.0/0"}]}
    topo, lines = huawei.import_huawei([write(tmp_path, "rules.json", rules)])
    (g,) = topo["security_groups"]
    assert g["name"] == g["id"] == "77777777-aaaa-4bbb-8ccc-dddddddddddd"
    assert any("known only from its rules" in l for l in lines)


# --------------------------------------------------------------------------------- what is reported


def test_unmappable_items_are_reported_not_dropped(tmp_path):
    groups = load_sample("security_groups.json")
    web_rules = groups["security_groups"][0]["security_group_rules"]
    missing_sg = "99999999-1111-4222-8333-444444444444"
    missing_ag = "88888888-1111-4222-8333-444444444444"
    web_rules.append(dict(web_rules[1], id="rg-missing", remote_group_id=missing_sg))  # remote group not exported
    web_rules.append(dict(web_rules[2], id="ag-missing", remote_address_group_id=missing_ag))
    web_rules.append(dict(web_rules[4], id="icmp-mp", multiport="8"))  # ICMP with a port list
    web_rules.append(dict(web_rules[0], id="odd-field", some_future_field=True))
    servers = load_sample("servers.json")
    stray = copy.deepcopy(servers["servers"][2])
    stray.update(id="dddddddd-0000-4000-8000-000000000001", name="ecs-elsewhere",
                 addresses={"ffffffff-0000-4000-8000-00000000000f": [
                     {"version": "4", "addr": "10.9.0.5", "OS-EXT-IPS:type": "fixed",
                      "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01", "OS-EXT-IPS:port_id": "p-elsewhere"}]})
    servers["servers"].append(stray)
    ports = load_sample("ports.json")
    ports["ports"][3]["port_security_enabled"] = False
    ports["ports"].append(dict(ports["ports"][3], id="p-orphan", device_id="eeeeeeee-0000-4000-8000-000000000001",
                               mac_address="fa:16:3e:00:00:02",
                               fixed_ips=[{"subnet_id": "f3e4d5c6-7b8a-4d9c-ae0f-1b2c3d4e5f73",
                                           "ip_address": "192.168.3.77"}]))
    vpcs = load_sample("vpcs.json")
    vpcs["page_info"]["next_marker"] = VPC
    files = [write(tmp_path, "security_groups.json", groups), write(tmp_path, "servers.json", servers),
             write(tmp_path, "ports.json", ports), write(tmp_path, "vpcs.json", vpcs)]
    files += samples("subnets.json", "address_groups.json")
    topo, lines = huawei.import_huawei(files)

    def line(*words):
        found = [l for l in lines if all(w in l for w in words)]
        assert found, (words, lines)
        return found[0]

    # remote group not exported: an empty placeholder keeps the rule (and its quota use) meaningful
    line("security_groups[0].security_group_rules[8].remote_group_id", missing_sg, "not exported")
    placeholder = by_name(topo["security_groups"], missing_sg)
    assert placeholder["security_group_rules"] == [] and rule(topo, "sg-web", "rg-missing")["remote_group_id"] == missing_sg
    line("security_group_rules[9].remote_address_group_id", missing_ag, "not exported")
    assert by_name(topo["address_groups"], missing_ag)["ip_set"] == []
    # a rule that cannot be represented is left out, and said so
    line("security_group_rules[10].multiport", "rule left out")
    assert not any(r["id"] == "icmp-mp" for r in by_name(topo["security_groups"], "sg-web")["security_group_rules"])
    line("security_group_rules[11].some_future_field", "not modelled")
    # a server whose only address is in a VPC that was not exported
    line("servers[3]", "ffffffff-0000-4000-8000-00000000000f", "not exported", "NIC left out")
    line("servers[3]", "ecs-elsewhere", "left out")
    assert "ecs-elsewhere" not in [i["name"] for i in topo["instances"]]
    # semantics sgdp has no model for
    line("ports[3].port_security_enabled", "port security is disabled")
    line("ports[1].allowed_address_pairs[0]", "172.17.0.0/16")
    line("ports[5]", "eeeeeeee-0000-4000-8000-000000000001", "not exported")
    line("page_info.next_marker", "later pages are missing")
    summary = lines[-1]
    assert summary.startswith("10 item(s) not mapped exactly"), lines
    topology_from_data(topo)  # still a valid topology


def test_unknown_top_level_key_is_reported(tmp_path, capsys):
    other = write(tmp_path, "eips.json", {"publicips": [{"id": "x", "public_ip_address": "203.0.113.9"}],
                                         "request_id": "r"})
    out = tmp_path / "t.yaml"
    rc, _, stderr = run_cli(["import", "huawei", *samples(), other, "-o", str(out)], capsys)
    assert rc == 0
    assert f"sgdp: import: {other}: publicips: unknown top-level key: not imported" in stderr
    assert f"sgdp: import: {other}: no recognised top-level key: nothing imported from this file" in stderr
    assert "3 item(s) not mapped exactly" in stderr.splitlines()[-1]
    load_topology(out)


def test_placeholder_group_from_a_port_keeps_membership(tmp_path):
    """A NIC bound to a group that was not exported keeps the binding (an empty group)."""
    ports = load_sample("ports.json")
    ports["ports"][0]["security_groups"] = [SG_WEB, "12121212-3434-4565-8787-909090909090"]
    files = samples("vpcs.json", "subnets.json", "address_groups.json", "security_groups.json", "servers.json")
    topo, lines = huawei.import_huawei(files + [write(tmp_path, "ports.json", ports)])
    web = by_name(topo["instances"], "ecs-web-01")
    assert web["security_groups"] == ["sg-web", "12121212-3434-4565-8787-909090909090"]
    assert any("12121212-3434-4565-8787-909090909090" in l and "placeholder" in l for l in lines)


def test_duplicate_names_are_disambiguated_deterministically(tmp_path):
    groups = {"security_groups": [
        {"id": "aaaa1111-0000-4000-8000-000000000001", "name": "web", "security_group_rules": []},
        {"id": "bbbb2222-0000-4000-8000-000000000002", "name": "web", "security_group_rules": [
            {"id": "d1", "direction": "ingress", "ethertype": "IPv4", "protocol": None,
             "remote_group_id": "aaaa1111-0000-4000-8000-000000000001", "action": "allow", "priority": 1}]}]}
    subnets = load_sample("subnets.json")
    subnets["subnets"][1]["name"] = "subnet-web"  # two subnets named alike
    servers = {"servers": [
        {"id": "cccc3333-0000-4000-8000-000000000003", "name": "ecs", "flavor": {"id": "s6.small.1", "name": "s6.small.1"},
         "addresses": {VPC: [{"version": 4, "addr": "192.168.1.5", "OS-EXT-IPS:type": "fixed"}]},
         "security_groups": [{"id": "bbbb2222-0000-4000-8000-000000000002", "name": "web"}]},
        {"id": "dddd4444-0000-4000-8000-000000000004", "name": "ecs", "flavor": {"id": "s6.small.1", "name": "s6.small.1"},
         "addresses": {VPC: [{"version": 4, "addr": "192.168.2.5", "OS-EXT-IPS:type": "fixed"}]},
         "security_groups": [{"id": "aaaa1111-0000-4000-8000-000000000001", "name": "web"}]}]}
    files = [write(tmp_path, "sg.json", groups), write(tmp_path, "subnets.json", subnets),
             write(tmp_path, "servers.json", servers)] + samples("vpcs.json")
    topo, lines = huawei.import_huawei(files)
    assert [g["name"] for g in topo["security_groups"]] == ["web-aaaa1111", "web-bbbb2222"]
    assert topo["security_groups"][1]["security_group_rules"][0]["remote_group_id"] == "web-aaaa1111"
    assert [s["name"] for s in topo["vpcs"][0]["subnets"]] == ["subnet-web-4779ab1c", "subnet-web-8d5a2f4b", "subnet-db"]
    insts = topo["instances"]
    assert [(i["name"], i["subnet"], i["security_groups"]) for i in insts] == [
        ("ecs-cccc3333", "subnet-web-4779ab1c", ["web-bbbb2222"]), ("ecs-dddd4444", "subnet-web-8d5a2f4b", ["web-aaaa1111"])]
    assert sum("is shared by 2 objects: renamed" in l for l in lines) == 3
    # the same input in the same order gives the same output
    assert huawei.import_huawei(files)[0] == topo


def test_virtual_ip_and_source_dest_check_from_allowed_address_pairs(tmp_path):
    ports = load_sample("ports.json")
    vip = {"id": "vip-port-1", "name": "vip-web", "device_id": "", "device_owner": "neutron:VIP_PORT",
           "mac_address": "fa:16:3e:aa:bb:cc", "fixed_ips": [{"subnet_id": NEUTRON_SUBNET_WEB, "ip_address": "192.168.1.100"}],
           "security_groups": [SG_WEB], "allowed_address_pairs": [], "network_id": "4779ab1c-7c1a-44b1-a02e-93dfc361b32d"}
    ports["ports"].append(vip)
    ports["ports"][0]["allowed_address_pairs"] = [{"ip_address": "192.168.1.100"}, {"ip_address": "1.1.1.1/0"}]
    files = samples("vpcs.json", "subnets.json", "address_groups.json", "security_groups.json", "servers.json")
    topo, lines = huawei.import_huawei(files + [write(tmp_path, "ports.json", ports)])
    assert topo["virtual_ips"] == [{"id": "vip-port-1", "ip": "192.168.1.100", "subnet": "subnet-web",
                                    "instances": ["ecs-web-01"]}]
    assert by_name(topo["instances"], "ecs-web-01")["source_dest_check"] is False
    assert not any("allowed address pair 192.168.1.100" in l for l in lines)
    model = topology_from_data(topo)
    assert model.virtual_ips[0].instances == ("ecs-web-01",)


# ------------------------------------------------------------------------------------------ errors


def test_malformed_json_is_a_clean_error_naming_file_and_position(tmp_path, capsys):
    bad = write(tmp_path, "broken.json", '{\n  "security_groups": [\n    {"id": "x", "name": "a",}\n  ]\n}\n')
    with pytest.raises(InputError) as exc:
        huawei.import_huawei([bad])
    assert str(exc.value).startswith(f"{bad}: invalid JSON at line 3 column 29")
    rc, stdout, stderr = run_cli(["import", "huawei", bad, "-o", str(tmp_path / "t.yaml")], capsys)
    assert rc == 2
    assert stderr.count("\n") == 1 and stderr.startswith(f"sgdp: error: {bad}: invalid JSON at line 3")
    assert "Traceback" not in stderr and not (tmp_path / "t.yaml").exists()


@pytest.mark.parametrize("mutate, path, names", [
    (lambda d: d["security_groups"][0]["security_group_rules"][3].update(direction="sideways"),
     "security_groups[0].security_group_rules[3].direction", "security group sg-web, rule 9a0b7d4e-"),
    (lambda d: d["security_groups"][1]["security_group_rules"][1].update(multiport="80-70"),
     "security_groups[1].security_group_rules[1].multiport", "security group sg-app, rule 2c9d8e7f-"),
    (lambda d: d["security_groups"][2]["security_group_rules"][0].update(remote_ip_prefix="10.0.0.0/33"),
     "security_groups[2].security_group_rules[0].remote_ip_prefix", "security group sg-db, rule 8f7e6d5c-"),
    (lambda d: d["security_groups"][0]["security_group_rules"][0].update(priority="high"),
     "security_groups[0].security_group_rules[0].priority", "security group sg-web, rule f11a3824-"),
    (lambda d: d["security_groups"][0].update(security_group_rules={"id": "x"}),
     "security_groups[0].security_group_rules", "security group sg-web)"),
    (lambda d: d.update(security_groups="none"), "security_groups", None),
])
def test_malformed_security_group_file_names_the_json_path(tmp_path, mutate, path, names):
    """The JSON path, then the objects on it by name (groups by name, rules by id), then the problem."""
    data = load_sample("security_groups.json")
    mutate(data)
    bad = write(tmp_path, "sg.json", data)
    with pytest.raises(InputError) as exc:
        huawei.import_huawei([bad])
    if names is None:
        assert str(exc.value).startswith(f"{bad}: {path}: "), str(exc.value)
    else:
        assert str(exc.value).startswith(f"{bad}: {path} ({names}"), str(exc.value)


def test_malformed_server_address_names_the_json_path(tmp_path):
    servers = load_sample("servers.json")
    servers["servers"][1]["addresses"][VPC][1]["addr"] = "192.168.3.300"
    bad = write(tmp_path, "servers.json", servers)
    with pytest.raises(InputError) as exc:
        huawei.import_huawei(samples("vpcs.json", "subnets.json") + [bad])
    assert str(exc.value).startswith(f'{bad}: servers[1].addresses["{VPC}"][1].addr (server ecs-app-01): ')


def test_top_level_must_be_an_object(tmp_path):
    bad = write(tmp_path, "list.json", [{"id": "x"}])
    with pytest.raises(InputError, match=r"list\.json: expected a JSON object"):
        huawei.import_huawei([bad])


def test_invalid_result_is_traced_back_to_the_source(tmp_path):
    """Two servers claiming one IP: the model's error is reported at the server that made it."""
    servers = load_sample("servers.json")
    servers["servers"][2]["addresses"][VPC][0]["addr"] = "192.168.3.20"  # ecs-app-01 eth1 has it already
    bad = write(tmp_path, "servers.json", servers)
    with pytest.raises(InputError) as exc:
        huawei.import_huawei(samples("vpcs.json", "subnets.json", "address_groups.json", "security_groups.json") + [bad])
    assert str(exc.value).startswith(f"{bad}: servers[2] (server ecs-db-01): ") and "192.168.3.20" in str(exc.value)


def test_unwritable_output_is_an_error(tmp_path, capsys):
    rc, _, stderr = run_cli(["import", "huawei", *samples(), "-o", str(tmp_path / "no" / "such" / "t.json")], capsys)
    assert rc == 2 and "cannot write" in stderr


def test_output_option_is_required(capsys):
    rc, _, stderr = run_cli(["import", "huawei", *samples()], capsys)
    assert rc == 2 and "-o" in stderr


def test_file_order_does_not_change_the_result():
    forward, _ = huawei.import_huawei(samples())
    backward, lines = huawei.import_huawei(samples(*reversed(SAMPLE_FILES)))

    def norm(topo):
        return {k: sorted(json.dumps(x, sort_keys=True) for x in v) for k, v in topo.items() if isinstance(v, list)}

    assert norm(forward) == norm(backward)
    assert lines[-1] == "1 item(s) not mapped exactly, 3 note(s)"


def test_non_string_subnet_gateway_is_a_clean_error(tmp_path, capsys):
    subnets = load_sample("subnets.json")
    subnets["subnets"][0]["gateway_ip"] = 1
    bad = write(tmp_path, "subnets.json", subnets)
    rc, _, stderr = run_cli(["import", "huawei", *samples("vpcs.json"), bad, "-o", str(tmp_path / "t.yaml")], capsys)
    assert rc == 2 and "Traceback" not in stderr
    assert stderr.count("\n") == 1 and stderr.startswith(f"sgdp: error: {bad}: subnets[0].gateway_ip (subnet subnet-web): expected a string")


# ------------------------------------------------------------------ bounded reading, like a topology


@pytest.mark.parametrize("text, needle", [
    ('{"security_groups": [], "security_groups": []}', "duplicate key 'security_groups' (first at line 1)"),
    ('{"vpcs": ' + "[" * 5000 + "]" * 5000 + "}", "nesting deeper than 100 levels"),
    ('{"count": ' + "9" * 5000 + "}", "a number of 5,000 digits"),
    ("\ufeff{\"request_id\": \"r\"}", None),  # a byte order mark is allowed
])
def test_json_is_read_by_the_bounded_reader(tmp_path, capsys, text, needle):
    """The importer reads each response through the topology's bounded reader: duplicate keys
    (which json.loads would keep silently, the last one winning), nesting and number length
    give one `sgdp: error:` line naming the file, exit 2."""
    bad = tmp_path / "r.json"
    bad.write_text(text, encoding="utf-8")
    rc, _, stderr = run_cli(["import", "huawei", str(bad), "-o", str(tmp_path / "t.yaml")], capsys)
    if needle is None:
        assert rc == 0 and "Traceback" not in stderr, stderr
        return
    assert rc == 2 and stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"sgdp: error: {bad}: ") and needle in stderr, stderr
    assert not (tmp_path / "t.yaml").exists()


def test_json_size_is_bounded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SGDP_MAX_INPUT_BYTES", "1000")
    bad = write(tmp_path, "big.json", {"security_groups": [{"id": f"g{i}", "name": f"g{i}"} for i in range(100)]})
    rc, _, stderr = run_cli(["import", "huawei", str(bad), "-o", str(tmp_path / "t.yaml")], capsys)
    assert rc == 2 and stderr.count("\n") == 1
    assert stderr.startswith(f"sgdp: error: {bad}: JSON file is larger than 1,000 bytes"), stderr


def test_report_lines_name_the_object(tmp_path):
    """What the importer reports names the object on the path (here a rule it leaves out, by its
    group's name and its id)."""
    groups = load_sample("security_groups.json")
    rules = groups["security_groups"][0]["security_group_rules"]
    rules.append(dict(rules[4], id="icmp-mp", multiport="8"))
    files = [write(tmp_path, "security_groups.json", groups)] + samples("address_groups.json")
    _, lines = huawei.import_huawei(files)
    found = [l for l in lines if "rule left out" in l]
    assert found and f"security_group_rules[{len(rules) - 1}].multiport (security group sg-web, rule icmp-mp): " in found[0], lines
