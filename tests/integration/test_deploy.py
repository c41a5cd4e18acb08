"""The deployment (docker-compose.yml, deploy/Caddyfile, the Dockerfile) agrees with the
settings the app reads.

No Docker engine runs here, so real parts stand in for it: docker-compose (Debian's, v1.29)
validates and resolves the Compose file, Debian's coturn runs coturn's command line from
it, and Caddy, where installed, adapts the Caddyfile. The resolved file is then checked
against the app's own settings table (`signaling.config.OPTIONS`, `Settings`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp import web
from aioice import stun
from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol

from signaling import ops
from signaling.config import OPTIONS, Settings, settings_from

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
DOCKERFILE = ROOT / "Dockerfile"
NODES = ("node-a", "node-b")
DOMAIN = "rooms.example.org"
TURN_SECRET = "turn-secret-for-the-deploy-test-0123456789"
# What a practice puts in .env (docs/deploy.md); dummy values.
REQUIRED = {
    "SESSIONROOM_DOMAIN": DOMAIN,
    "SESSIONROOM_SECRET": "link-secret-for-the-deploy-test-0123456789abcdef",
    "SESSIONROOM_API_KEYS": "api-key-one-for-the-deploy-test-01,api-key-two-for-the-deploy-test-01",
    "SESSIONROOM_TURN_SECRET": TURN_SECRET,
}
OPTION_ENV_NAMES = {o.env for o in OPTIONS}


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is missing: run scripts/setup --test (Debian's package).")
    return found


def compose(tmp_path: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """docker-compose on the project's file, with exactly `env` as the practice's settings:
    none inherited from this process, and an empty env file instead of any local .env."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SESSIONROOM_", "COMPOSE_", "DOCKER_")) and k != "TURN_EXTERNAL_IP"
    }
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    command = [
        _docker_compose(),
        "--project-directory", str(ROOT),
        "--file", str(COMPOSE_FILE),
        "--env-file", str(env_file),
        *args,
    ]  # fmt: skip
    return subprocess.run(
        command, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`docker-compose config` with the required variables set, as parsed YAML."""
    done = compose(tmp_path_factory.mktemp("compose"), REQUIRED, "config")
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def services(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = config["services"]
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, as a mapping whichever form Compose printed it in."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def volumes(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each mount: short `src:dst[:mode]` or long form."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v["target"])))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return out


def ports(service: Mapping[str, Any]) -> list[tuple[str, int | None, int, str]]:
    """(host ip, published port, container port, protocol) of each published port."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            published = p.get("published")
            out.append(
                (
                    str(p.get("host_ip") or ""),
                    int(published) if published not in (None, "") else None,
                    int(p["target"]),
                    str(p.get("protocol") or "tcp"),
                )
            )
        else:
            spec, _, protocol = str(p).partition("/")
            parts = spec.split(":")
            host_ip = parts[0] if len(parts) == 3 else ""
            published = int(parts[-2]) if len(parts) >= 2 else None
            out.append((host_ip, published, int(parts[-1]), protocol or "tcp"))
    return out


def node_settings(config: Mapping[str, Any], node: str) -> Settings:
    """The Settings a node starts with: the image's environment, then the Compose file's."""
    env = {**dockerfile_env(), **environment(services(config)[node])}
    return settings_from(argparse.Namespace(), env)


def dockerfile_env() -> dict[str, str]:
    """The `ENV` values of the Dockerfile's last stage (KEY=value form)."""
    last_stage = re.split(r"(?m)^FROM ", DOCKERFILE.read_text())[-1]
    joined = last_stage.replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def node_port(config: Mapping[str, Any]) -> int:
    """The port both nodes listen on (they must agree)."""
    found = {node_settings(config, node).port for node in NODES}
    assert len(found) == 1, f"the nodes listen on different ports: {found}"
    return found.pop()


def proxied_upstreams() -> list[str]:
    """The upstreams of the Caddyfile's reverse_proxy."""
    for line in CADDYFILE.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] == "reverse_proxy":
            return [w for w in words[1:] if w != "{"]
    raise AssertionError("deploy/Caddyfile has no reverse_proxy")


def flag_values(args: list[str], flag: str) -> list[str]:
    """Values of `--flag=value` in a command line."""
    return [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]


def url_port(url: str, default: int = 3478) -> int:
    """The port of a STUN/TURN URL (`turn:host:port?transport=udp`)."""
    host_port = url.split(":", 1)[1].split("?", 1)[0]
    m = re.search(r":(\d+)$", host_port)
    return int(m.group(1)) if m else default


def url_host(url: str) -> str:
    host_port = url.split(":", 1)[1].split("?", 1)[0]
    return re.sub(r":\d+$", "", host_port)


# --- the file is valid, and refuses to start without its secrets ---------------------


def test_the_file_is_valid_with_the_required_settings(tmp_path: Path) -> None:
    done = compose(tmp_path, REQUIRED, "config", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", f"docker-compose warned: {done.stderr}"


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_missing_secret_or_domain_stops_it_by_name(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    done = compose(tmp_path, env, "config", "-q")
    assert done.returncode != 0
    assert missing in done.stderr, done.stderr


# --- the nodes against the app's settings ---------------------------------------------


def test_every_setting_given_to_a_node_is_one_the_app_reads(resolved: dict[str, Any]) -> None:
    for node in NODES:
        names = {k for k in environment(services(resolved)[node]) if k.startswith("SESSIONROOM_")}
        assert names <= OPTION_ENV_NAMES, f"{node}: not settings: {names - OPTION_ENV_NAMES}"
    image_names = {k for k in dockerfile_env() if k.startswith("SESSIONROOM_")}
    assert image_names <= OPTION_ENV_NAMES, image_names - OPTION_ENV_NAMES
    # And the values parse: each node's Settings can be built from them.
    for node in NODES:
        settings = node_settings(resolved, node)
        assert settings.host == "0.0.0.0"  # reachable by Caddy on the Compose network
        assert settings.public_url == f"https://{DOMAIN}"
        assert settings.api_keys == tuple(REQUIRED["SESSIONROOM_API_KEYS"].split(","))
        assert settings.secret == REQUIRED["SESSIONROOM_SECRET"]


def test_secrets_reach_the_nodes_from_the_environment_only() -> None:
    """No secret is written into the file: each comes from a required variable."""
    text = COMPOSE_FILE.read_text()
    for name in ("SESSIONROOM_SECRET", "SESSIONROOM_API_KEYS", "SESSIONROOM_TURN_SECRET"):
        assert re.search(rf"{name}: \$\{{{name}:\?[^}}]+\}}", text), name


def test_the_node_ids_differ(resolved: dict[str, Any]) -> None:
    ids = [environment(services(resolved)[node]).get("SESSIONROOM_NODE_ID") for node in NODES]
    assert all(ids) and len(set(ids)) == len(ids), ids


def test_both_nodes_share_one_recordings_volume_at_the_recordings_dir(
    resolved: dict[str, Any],
) -> None:
    mounts = []
    for node in NODES:
        settings = node_settings(resolved, node)
        assert settings.recordings_dir is not None
        target = str(settings.recordings_path)
        sources = [src for src, dst in volumes(services(resolved)[node]) if dst == target]
        assert len(sources) == 1, f"{node}: nothing mounted at {target}"
        mounts.append(sources[0])
    assert mounts[0] == mounts[1]
    # A named volume of the project's, not a folder of the host's.
    assert mounts[0] in (resolved.get("volumes") or {})


def test_the_nodes_use_the_redis_service(resolved: dict[str, Any]) -> None:
    all_services = services(resolved)
    redis_networks = set(all_services["redis"].get("networks") or {})
    for node in NODES:
        url = urlsplit(node_settings(resolved, node).redis_url)
        assert url.scheme == "redis"
        assert url.hostname == "redis" and (url.port or 6379) == 6379
        assert redis_networks & set(all_services[node].get("networks") or {})
    assert str(all_services["redis"]["image"]).startswith("redis:7")
    # Redis has no password: it is on an internal network only, and publishes nothing.
    assert not ports(all_services["redis"])
    for network in redis_networks:
        assert resolved["networks"][network].get("internal") is True


# --- Caddy -------------------------------------------------------------------------------


def test_caddy_proxies_to_the_port_the_nodes_listen_on(resolved: dict[str, Any]) -> None:
    port = node_port(resolved)
    assert sorted(proxied_upstreams()) == [f"{node}:{port}" for node in NODES]
    for node in NODES:
        # The loopback-only port for checking a node from the server reaches that port too.
        assert [p[2] for p in ports(services(resolved)[node])] == [port]
        assert all(p[0] == "127.0.0.1" for p in ports(services(resolved)[node]))
    assert re.search(rf"(?m)^EXPOSE {port}$", DOCKERFILE.read_text())


def test_caddy_checks_readiness_at_a_path_the_app_serves() -> None:
    text = CADDYFILE.read_text()
    health = re.search(r"(?m)^\s*health_uri\s+(\S+)", text)
    assert health is not None
    app = web.Application()
    ops.add_routes(app)
    paths = {r.get_info().get("path") for r in app.router.resources()}
    assert health.group(1) in paths
    assert health.group(1) == "/readyz"


def test_caddy_serves_https_for_the_domain(resolved: dict[str, Any]) -> None:
    caddy = services(resolved)["caddy"]
    published = {(p[1], p[2]) for p in ports(caddy) if p[3] == "tcp"}
    assert {(80, 80), (443, 443)} <= published
    mounts = dict((dst, src) for src, dst in volumes(caddy))
    assert Path(mounts["/etc/caddy/Caddyfile"]).resolve() == CADDYFILE.resolve()
    assert "/data" in mounts  # certificates survive a restart
    # The site address is the domain that the nodes' links point to.
    assert re.search(r"(?m)^\{\$SESSIONROOM_DOMAIN\} \{", CADDYFILE.read_text())
    assert environment(caddy)["SESSIONROOM_DOMAIN"] == DOMAIN
    for node in NODES:
        assert urlsplit(node_settings(resolved, node).public_url).hostname == DOMAIN


def test_caddy_reads_the_caddyfile(resolved: dict[str, Any]) -> None:
    if shutil.which("caddy") is None:
        pytest.fail("Caddy is missing: run scripts/test, which installs Debian's caddy.")
    done = subprocess.run(
        ["caddy", "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={**os.environ, "SESSIONROOM_DOMAIN": DOMAIN},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    adapted = json.dumps(json.loads(done.stdout))
    port = node_port(resolved)
    for node in NODES:
        assert f'"dial": "{node}:{port}"' in adapted
    assert '"uri": "/readyz"' in adapted
    assert f'"host": ["{DOMAIN}"]' in adapted


def test_the_nodes_believe_x_forwarded_for_from_caddy_alone(resolved: dict[str, Any]) -> None:
    """Every connection reaches a node from Caddy, so the limits per client address count by
    the address Caddy puts in X-Forwarded-For: the nodes must believe Caddy's header, and
    nobody else's (not the network's gateway, through which the loopback ports arrive)."""
    all_services = services(resolved)
    caddy_address = ipaddress.ip_address(all_services["caddy"]["networks"]["front"]["ipv4_address"])
    subnets = [
        ipaddress.ip_network(c["subnet"]) for c in resolved["networks"]["front"]["ipam"]["config"]
    ]
    assert any(caddy_address in subnet for subnet in subnets)
    for node in NODES:
        assert "front" in (all_services[node].get("networks") or {})
        trusted = node_settings(resolved, node).trusted_proxies
        assert trusted == (ipaddress.ip_network(caddy_address),), trusted
    # Caddy itself believes no incoming X-Forwarded-For (no trusted_proxies of its own): it
    # sends the nodes the address of whoever connected to it, so a client cannot choose one.
    assert "trusted_proxies" not in CADDYFILE.read_text()


# --- coturn ------------------------------------------------------------------------------


def test_coturn_shares_the_nodes_turn_secret_and_port(resolved: dict[str, Any]) -> None:
    coturn = services(resolved)["coturn"]
    args = [str(a) for a in coturn["command"]]
    entrypoint = " ".join(str(a) for a in coturn.get("entrypoint") or [])
    # The same variable as the nodes', written to coturn's static-auth-secret...
    assert environment(coturn)["SESSIONROOM_TURN_SECRET"] == TURN_SECRET
    for node in NODES:
        assert node_settings(resolved, node).turn_secret == TURN_SECRET
    assert "--use-auth-secret" in args
    assert re.search(r"static-auth-secret=%s.*\$\$SESSIONROOM_TURN_SECRET", entrypoint)
    # ...and never on the command line, which every user of the host can read.
    assert TURN_SECRET not in " ".join(args) + entrypoint

    listening = flag_values(args, "--listening-port")
    assert len(listening) == 1
    turn_port = int(listening[0])
    for node in NODES:
        settings = node_settings(resolved, node)
        assert settings.turn_urls, "the nodes get no TURN URLs"
        stun_urls = [u for s in settings.ice_servers for u in s.urls if u.startswith("stun")]
        assert stun_urls, "the nodes give browsers no STUN server"
        for url in (*settings.turn_urls, *stun_urls):
            assert url_port(url) == turn_port, url
            assert url_host(url) == DOMAIN, url
        transports = [urlsplit(u).query for u in settings.turn_urls]
        assert set(transports) == {"transport=udp", "transport=tcp"}
        # The node's own aiortc peer takes the first TURN URL only: UDP, to coturn.
        assert transports[0] == "transport=udp"
    assert flag_values(args, "--realm") == [DOMAIN]
    # On the host's network, or with the listening port published for UDP and TCP.
    if coturn.get("network_mode") != "host":
        published = {(p[1], p[3]) for p in ports(coturn)}
        assert {(turn_port, "udp"), (turn_port, "tcp")} <= published


def test_coturn_relays_to_no_private_address(resolved: dict[str, Any]) -> None:
    """TURN credentials go to anyone with a link: the relay must not reach inside."""
    args = [str(a) for a in services(resolved)["coturn"]["command"]]
    assert "--no-cli" in args
    denied = []
    for value in flag_values(args, "--denied-peer-ip"):
        low, _, high = value.partition("-")
        denied.append((ipaddress.ip_address(low), ipaddress.ip_address(high or low)))
    inside = [
        "10.1.2.3",  # private networks: the practice's own
        "172.17.0.1",  # Docker's bridge, and Compose networks (Redis)
        "172.20.0.5",
        "192.168.1.10",
        "127.0.0.1",  # this host
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::1",
        "fd00::1",  # IPv6 unique local
        "fe80::1",  # IPv6 link-local
        "::ffff:10.0.0.1",  # IPv4 inside IPv6
    ]
    for address in inside:
        ip = ipaddress.ip_address(address)
        assert any(
            low.version == ip.version and low <= ip <= high  # type: ignore[operator]
            for low, high in denied
        ), f"the relay may reach {address}"


# coturn's command line, run by Debian's coturn on 127.0.0.1 ----------------------------


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port: int = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def _answers_stun(port: int) -> bool:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.1)
        try:
            s.sendto(bytes(request), ("127.0.0.1", port))
            answer = stun.parse_message(s.recv(2048))
        except (OSError, ValueError):
            return False
    return answer.transaction_id == request.transaction_id


@pytest.fixture
def coturn(resolved: dict[str, Any], tmp_path: Path) -> Iterator[int]:
    """coturn started the way the Compose file starts it (its entrypoint script, its
    environment, its command line), with only where it listens changed: 127.0.0.1, a free
    port, files in the test's folder. Yields the port."""
    turnserver = shutil.which("turnserver")
    if turnserver is None:
        pytest.fail("turnserver is missing: run scripts/setup --test (Debian's coturn).")
    service = services(resolved)["coturn"]
    entrypoint = [str(a) for a in service["entrypoint"]]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    tmpfs = [str(t).split(":")[0] for t in service.get("tmpfs") or []]
    # `config` prints $ as $$ (as the file has it); the container's shell sees one.
    script = entrypoint[2].replace("$$", "$")
    for folder in tmpfs:
        script = script.replace(folder, str(tmp_path))
    port = _free_port()
    args = [
        *[str(a) for a in service["command"]],
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        f"--userdb={tmp_path / 'turndb'}",
        f"--pidfile={tmp_path / 'turnserver.pid'}",
    ]
    env = {**os.environ, **environment(service), "PATH": f"{Path(turnserver).parent}:/usr/bin:/bin"}
    log_path = tmp_path / "turnserver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script, *entrypoint[3:], *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 10
        while not _answers_stun(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"coturn did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _credentials(secret: str, name: str) -> tuple[str, str]:
    """coturn's shared-secret scheme: `<expiry>:<name>`, base64(HMAC-SHA1(secret, it))."""
    username = f"{int(time.time()) + 600}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


async def _allocate(
    port: int, username: str, password: str, transport: str
) -> TurnClientUdpProtocol | TurnClientTcpProtocol:
    loop = asyncio.get_running_loop()
    server = ("127.0.0.1", port)
    protocol: TurnClientUdpProtocol | TurnClientTcpProtocol
    if transport == "udp":
        _, protocol = await loop.create_datagram_endpoint(
            lambda: TurnClientUdpProtocol(
                server, username=username, password=password, lifetime=600,
                channel_refresh_time=500,
            ),
            remote_addr=server,
        )  # fmt: skip
    else:
        _, protocol = await loop.create_connection(
            lambda: TurnClientTcpProtocol(
                server, username=username, password=password, lifetime=600,
                channel_refresh_time=500,
            ),
            "127.0.0.1",
            port,
        )  # fmt: skip
    try:
        await protocol.connect()
    except BaseException:
        protocol.transport.close()
        raise
    return protocol


async def _permission_refused(
    protocol: TurnClientUdpProtocol | TurnClientTcpProtocol, address: str
) -> int | None:
    """The error code coturn answers a CreatePermission for `address` with, None if granted."""
    request = stun.Message(
        message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
    )
    request.attributes["XOR-PEER-ADDRESS"] = (address, 9)
    try:
        await protocol.request_with_retry(request)
    except stun.TransactionFailed as e:
        return e.response.error_code
    return None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_coturn_relays_with_credentials_from_the_nodes_secret(
    coturn: int, transport: str
) -> None:
    username, password = _credentials(TURN_SECRET, "p-1")
    protocol = await _allocate(coturn, username, password, transport)
    try:
        assert protocol.relayed_address is not None
    finally:
        await protocol.delete()


async def test_coturn_refuses_credentials_from_another_secret(coturn: int) -> None:
    username, password = _credentials("not-the-secret-coturn-was-given", "p-1")
    with pytest.raises(stun.TransactionFailed) as refused:
        await _allocate(coturn, username, password, "udp")
    assert refused.value.response.error_code == 401


async def test_coturn_opens_the_relay_to_the_internet_only(coturn: int) -> None:
    username, password = _credentials(TURN_SECRET, "p-1")
    protocol = await _allocate(coturn, username, password, "udp")
    try:
        # No packet is sent for a permission: the address only has to be allowed.
        assert await _permission_refused(protocol, "198.41.0.4") is None
        for inside in ("10.1.2.3", "172.20.0.5", "192.168.1.10", "169.254.169.254"):
            assert await _permission_refused(protocol, inside) == 403, inside
    finally:
        await protocol.delete()


# --- the image ---------------------------------------------------------------------------


def test_the_image_runs_the_installed_package_not_a_source_tree() -> None:
    """The page is package data: it is found in the installed package, so the image must
    install the project as a wheel (or `pip install .`), never editable, and must not
    copy the source tree into the image that runs."""
    text = DOCKERFILE.read_text()
    assert re.search(r"(?m)^FROM python:3\.11-slim", text)
    assert not re.search(r"pip install[^\n]*(\s-e\s|--editable)", text)
    stages = re.split(r"(?m)^FROM ", text)
    final = stages[-1]
    assert re.search(r"pip wheel[^\n]*\s\.$", text, re.M) or re.search(
        r"pip install[^\n]*\s\.(\s|$)", text
    )
    assert re.search(r"(?m)^RUN pip install /wheels/\*\.whl", final)
    for line in final.splitlines():
        if line.startswith(("COPY", "ADD")):
            assert "--from=" in line, f"the final stage copies from the source tree: {line}"
    users = re.findall(r"(?m)^USER (\S+)", final)
    assert users and users[-1] not in ("root", "0")
    assert dockerfile_env().get("SESSIONROOM_HOST") == "0.0.0.0"
    assert re.search(r"(?ms)^HEALTHCHECK .*?/healthz", final)
    assert re.search(r'(?m)^CMD \["sessionroom", "serve"\]$', final)


def test_the_build_context_leaves_out_secrets_media_and_local_trees() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "node_modules", "artifacts", ".env", "**/*.webm"} <= ignored
    # The packages the wheel is built from stay in.
    for package in ("signaling", "media", "recordings", "web"):
        assert package not in ignored and f"{package}/" not in ignored
