"""Cross-checks docker-compose.yml against the Keycloak realm it imports.

Run by scripts/check-deploy.sh as

    check_stack.py COMPOSE_YML RESOLVED_JSON REALM_JSON

where RESOLVED_JSON is `docker compose config --format json` of COMPOSE_YML. It checks
what `config -q` cannot: that the values spread over several services agree with each
other and with the realm (issuer, audience, role, ports), and that the realm keeps the
settings the token walk-through in docs/deployment.md depends on. Prints one line per
problem and exits 1 if there is any; silent otherwise.
"""

import json
import os
import re
import sys
from urllib.parse import urlsplit

# The configuration contract both pixmill services are started with.
CONTRACT = [
    "PIXMILL_SERVER__ADDR", "PIXMILL_WORKER__ADMIN_ADDR", "PIXMILL_METADATA__URL",
    "PIXMILL_OBJECTS__URL", "PIXMILL_OBJECTS__ACCESS_KEY", "PIXMILL_OBJECTS__SECRET_KEY",
    "PIXMILL_OBJECTS__REGION", "PIXMILL_QUEUE__URL", "PIXMILL_CACHE__URL",
    "PIXMILL_AUTH__ISSUER", "PIXMILL_AUTH__AUDIENCE", "PIXMILL_LOG__FORMAT",
]
GATEWAY_NEEDS = {"postgres", "redis", "rabbitmq", "minio", "keycloak"}
STATEFUL = {"postgres": "/var/lib/postgresql/data", "minio": "/data"}

problems = []


def check(ok, message):
    if not ok:
        problems.append(message)


def published(service, target):
    """Host port published for a container port, or None."""
    for port in service.get("ports", []):
        if int(port.get("target", 0)) == target:
            return port.get("published")
    return None


def check_compose(raw_text, stack):
    check(not re.search(r"^version\s*:", raw_text, re.M), "compose: drop the `version:` key")
    services = stack.get("services", {})
    for name, svc in services.items():
        check(svc.get("restart") == "unless-stopped", f"{name}: restart is not unless-stopped")
        check(bool(svc.get("healthcheck", {}).get("test")), f"{name}: no healthcheck")
        for dep, cond in svc.get("depends_on", {}).items():
            check(cond.get("condition") == "service_healthy",
                  f"{name}: depends_on {dep} does not wait for service_healthy")
        for mount in svc.get("volumes", []):
            # A missing bind source would be created as an empty directory.
            check(mount.get("type") != "bind" or os.path.exists(mount.get("source", "")),
                  f"{name}: bind source {mount.get('source')} does not exist")
    for name, path in STATEFUL.items():
        mounts = [v for v in services.get(name, {}).get("volumes", [])
                  if v.get("target") == path]
        check(any(v.get("type") == "volume" for v in mounts),
              f"{name}: {path} is not on a named volume")

    gateway, worker = services.get("gateway", {}), services.get("worker", {})
    check(gateway.get("command") == ["gateway"], "gateway: command is not [gateway]")
    check(worker.get("command") == ["worker"], "worker: command is not [worker]")
    check(gateway.get("image") == worker.get("image"), "gateway and worker run different images")
    check("build" in gateway and "build" in worker, "gateway and worker must both build the image")
    check(published(gateway, 8080) is not None, "gateway: 8080 is not published")
    check(not worker.get("ports"), "worker: published ports break --scale worker=N")
    check("container_name" not in worker, "worker: container_name breaks --scale worker=N")
    check(GATEWAY_NEEDS <= set(gateway.get("depends_on", {})),
          f"gateway: must wait for {sorted(GATEWAY_NEEDS)}")
    for name, svc in (("gateway", gateway), ("worker", worker)):
        env = svc.get("environment", {})
        for key in CONTRACT:
            check(env.get(key), f"{name}: {key} is not set")
    return services


def check_realm(realm):
    check(realm.get("realm") == "pixmill", "realm: name is not pixmill")
    check(realm.get("accessTokenLifespan") == 900, "realm: access tokens must live 15 min")
    # Declaring clientScopes stops Keycloak from creating its built-in scopes, among them
    # `basic` (the `sub` claim) and `roles` (realm_access.roles).
    check("clientScopes" not in realm, "realm: clientScopes would drop the built-in scopes")
    roles = {r["name"] for r in realm.get("roles", {}).get("realm", [])}
    check({"uploader", "pixmill-admin"} <= roles, "realm: roles uploader, pixmill-admin missing")

    clients = {c["clientId"]: c for c in realm.get("clients", [])}
    api, cli = clients.get("pixmill-api", {}), clients.get("pixmill-cli", {})
    check(api.get("bearerOnly") is True, "realm: pixmill-api must be bearer-only")
    check(cli.get("publicClient") is True and cli.get("directAccessGrantsEnabled") is True,
          "realm: pixmill-cli must be public with direct access grants")
    check("defaultClientScopes" not in cli, "realm: pixmill-cli must keep the default scopes")
    audiences = [m["config"].get("included.client.audience")
                 for m in cli.get("protocolMappers", [])
                 if m.get("protocolMapper") == "oidc-audience-mapper"
                 and m["config"].get("access.token.claim") == "true"]
    check("pixmill-api" in audiences, "realm: pixmill-cli tokens lack aud pixmill-api")

    expected = {"alice": "uploader", "bob": None, "ops": "pixmill-admin"}
    users = {u["username"]: u for u in realm.get("users", [])}
    for name, role in expected.items():
        user = users.get(name)
        if user is None:
            problems.append(f"realm: user {name} missing")
            continue
        # Keycloak's user profile requires these; without them the password grant answers
        # "Account is not fully set up".
        for field in ("email", "firstName", "lastName"):
            check(user.get(field), f"realm: {name} has no {field}")
        check(not user.get("requiredActions"), f"realm: {name} has required actions")
        creds = user.get("credentials", [])
        check(any(c.get("value") == name and c.get("temporary") is False for c in creds),
              f"realm: {name} needs the permanent password {name}")
        granted = set(user.get("realmRoles", []))
        check(role is None or role in granted, f"realm: {name} lacks role {role}")
    check("uploader" not in users.get("bob", {}).get("realmRoles", []),
          "realm: bob must not be an uploader (he shows the 403)")
    return {c for c, rep in clients.items() if rep.get("bearerOnly")}, roles


def check_agreement(services, realm, bearer_clients, roles):
    keycloak = services.get("keycloak", {})
    kc_env = keycloak.get("environment", {})
    frontend = kc_env.get("KC_HOSTNAME", "")
    host_port = published(keycloak, 8080)
    check(urlsplit(frontend).port == (int(host_port) if host_port else None),
          f"keycloak: KC_HOSTNAME {frontend} does not use the published port {host_port}")
    check(any(v.get("target", "").startswith("/opt/keycloak/data/import")
              for v in keycloak.get("volumes", [])), "keycloak: realm file is not mounted")
    check("--import-realm" in keycloak.get("command", []), "keycloak: --import-realm missing")
    check(kc_env.get("KC_HEALTH_ENABLED") == "true", "keycloak: health endpoints disabled")

    for name in ("gateway", "worker"):
        env = services.get(name, {}).get("environment", {})
        issuer = env.get("PIXMILL_AUTH__ISSUER", "")
        check(issuer == f"{frontend}/realms/{realm.get('realm')}",
              f"{name}: issuer {issuer} is not KC_HOSTNAME/realms/<realm>")
        jwks = env.get("PIXMILL_AUTH__JWKS_URL")
        check(jwks is None or urlsplit(jwks).hostname == "keycloak",
              f"{name}: JWKS URL must name the keycloak service")
        audience = env.get("PIXMILL_AUTH__AUDIENCE")
        check(audience in bearer_clients, f"{name}: audience {audience} is not a realm client")
        role = env.get("PIXMILL_AUTH__UPLOAD_ROLE")
        check(not role or role in roles, f"{name}: upload role {role} is not a realm role")


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        raw = f.read()
    with open(argv[2], encoding="utf-8") as f:
        stack = json.load(f)
    with open(argv[3], encoding="utf-8") as f:
        realm = json.load(f)

    services = check_compose(raw, stack)
    bearer_clients, roles = check_realm(realm)
    check_agreement(services, realm, bearer_clients, roles)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
