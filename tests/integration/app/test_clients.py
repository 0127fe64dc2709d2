"""API clients and their keys against a real database: made once, stored hashed,
checked in constant time, revocable; and the exports-admin commands around them."""

from __future__ import annotations

import json
import re

import psycopg
import pytest
from click.testing import CliRunner

from app.operators.cli import cli
from app.tenancy import clients


def test_a_new_key_is_random_prefixed_and_stored_only_as_a_hash(db: psycopg.Connection) -> None:
    client, key = clients.create_client(db, "backend")

    match = re.fullmatch(r"exp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", key)
    assert match and match[1] == client.key_prefix
    assert (client.name, client.tenant) == ("backend", "backend")  # tenant: the name
    row = db.execute("SELECT * FROM exports.api_clients WHERE id = %s", (client.id,)).fetchone()
    assert row["key_hash"] == clients.hash_key(key) != key
    assert all(match[2] not in str(value) for value in row.values())  # no secret at rest
    _, other = clients.create_client(db, "another")
    assert other != key and other.split("_")[1] != key.split("_")[1]


def test_authenticate_gives_the_client_of_a_live_key(db: psycopg.Connection) -> None:
    created, key = clients.create_client(db, "backend", tenant="acme")

    found = clients.authenticate(db, key)

    assert found is not None and found.id == created.id and found.tenant == "acme"
    last_used = db.execute(
        "SELECT last_used_at FROM exports.api_clients WHERE id = %s", (created.id,)
    ).fetchone()["last_used_at"]
    assert last_used is not None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: key[:-1] + ("x" if key[-1] != "x" else "y"),  # same prefix, other secret
        lambda key: key + "x",
        lambda key: key.upper(),
        lambda key: key.split("_", 2)[2],  # the secret alone
        lambda key: "",
        lambda key: "exp_000000000000_" + key.split("_", 2)[2],  # another prefix
    ],
    ids=["secret", "longer", "case", "no-prefix", "empty", "other-prefix"],
)
def test_anything_but_the_exact_key_is_refused(db: psycopg.Connection, mangle) -> None:
    _, key = clients.create_client(db, "backend")

    assert clients.authenticate(db, mangle(key)) is None


def test_a_revoked_key_is_refused(db: psycopg.Connection) -> None:
    created, key = clients.create_client(db, "backend")

    revoked = clients.revoke(db, created.key_prefix)
    again = clients.revoke(db, created.key_prefix)

    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at
    assert clients.authenticate(db, key) is None


def test_revoking_an_unknown_prefix_is_an_error(db: psycopg.Connection) -> None:
    with pytest.raises(clients.ClientNotFound):
        clients.revoke(db, "0123456789ab")


def test_names_are_unique_and_plain(db: psycopg.Connection) -> None:
    clients.create_client(db, "backend")

    with pytest.raises(clients.ClientNameTaken):
        clients.create_client(db, "backend", tenant="other")
    for bad in ("", "has space", "x" * 101, "ünïcode"):
        with pytest.raises(ValueError):
            clients.create_client(db, bad)
    with pytest.raises(ValueError):
        clients.create_client(db, "ok", tenant="not ok")


@pytest.mark.parametrize("tenant", ["..", ".", "a/b", "x" * 101, "tab\there"])
def test_a_tenant_must_be_able_to_name_a_storage_folder(
    db: psycopg.Connection, tenant: str
) -> None:
    # Issue 12: `create-key --tenant ..` was accepted, and every export of it then failed
    # with file storage after all its retries.
    with pytest.raises(ValueError, match="tenant"):
        clients.create_client(db, "backend", tenant=tenant)


def test_a_tenant_in_the_alphabet_of_owner_ids_is_fine(db: psycopg.Connection) -> None:
    client, _ = clients.create_client(db, "backend", tenant="acme:eu@2+x|y.z_w-1")
    assert client.tenant == "acme:eu@2+x|y.z_w-1"


def test_several_keys_may_share_a_tenant(db: psycopg.Connection) -> None:
    _, old = clients.create_client(db, "backend")
    _, new = clients.create_client(db, "backend-2", tenant="backend")

    tenants = {clients.authenticate(db, k).tenant for k in (old, new)}  # type: ignore[union-attr]

    assert tenants == {"backend"}
    assert [c.name for c in clients.list_clients(db)] == ["backend", "backend-2"]


# --- exports-admin -------------------------------------------------------------------------


def admin(database_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, list(args), env={"DATABASE_URL": database_url, "EXPORTS_ENV": "development"}
    )
    return result.exit_code, result.stdout, result.stderr


def test_create_list_and_revoke_keys_from_the_command_line(
    database_url: str, db: psycopg.Connection
) -> None:
    code, out, err = admin(database_url, "create-key", "--name", "backend")
    assert code == 0, err
    key = out.strip()  # stdout is the key alone, for scripts
    assert clients.authenticate(db, key) is not None
    prefix = key.split("_")[1]
    assert prefix in err and "only now" in err

    code, out, _ = admin(database_url, "list-keys", "--json")
    [listed] = json.loads(out)
    assert listed["key_prefix"] == prefix and listed["tenant"] == "backend"
    assert listed["revoked_at"] is None
    assert key.split("_", 2)[2] not in out and "hash" not in out

    code, out, _ = admin(database_url, "list-keys")
    assert code == 0 and prefix in out and "backend" in out

    code, out, _ = admin(database_url, "revoke-key", prefix)
    assert code == 0 and "revoked" in out
    assert clients.authenticate(db, key) is None
    assert json.loads(admin(database_url, "list-keys", "--json")[1])[0]["revoked_at"]


def test_command_line_errors_are_readable(database_url: str, db: psycopg.Connection) -> None:
    admin(database_url, "create-key", "--name", "backend")

    code, _, err = admin(database_url, "create-key", "--name", "backend")
    assert code != 0 and "exists already" in err
    code, _, err = admin(database_url, "create-key", "--name", "two words")
    assert code != 0 and "name must be" in err
    code, _, err = admin(database_url, "revoke-key", "0123456789ab")
    assert code != 0 and "no API key" in err
    code, _, err = admin(database_url, "create-key", "--name", "x", "--tenant", "default")
    assert code == 0
