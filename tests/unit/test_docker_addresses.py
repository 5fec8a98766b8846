"""The host's address on a Docker network, read the way every engine state reports it."""

from worker.sandbox.llm_relay import host_address_in


def test_a_named_gateway_is_the_hosts_address():
    ipam = {"Config": [{"Subnet": "10.88.0.0/16", "Gateway": "10.88.0.254"}]}
    assert host_address_in(ipam) == "10.88.0.254"


def test_an_engines_first_start_lists_only_the_subnet_and_the_host_has_its_first_address():
    # What `docker network inspect bridge` shows right after dockerd first creates docker0.
    ipam = {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.17.0.0/16"}]}
    assert host_address_in(ipam) == "172.17.0.1"


def test_ipv6_entries_are_passed_over_for_the_ipv4_address():
    ipam = {
        "Config": [
            {"Subnet": "fd00:dead:beef::/64", "Gateway": "fd00:dead:beef::1"},
            {"Subnet": "192.168.240.0/20"},
        ]
    }
    assert host_address_in(ipam) == "192.168.240.1"


def test_a_network_without_ipv4_has_no_host_address():
    assert host_address_in({"Config": [{"Subnet": "fd00::/64"}]}) is None
    assert host_address_in({"Config": None}) is None
    assert host_address_in({}) is None
