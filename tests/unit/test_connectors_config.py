"""Source configuration of the SaaS kinds, and how a task resolves their Airflow connection."""

from __future__ import annotations

import pytest

from martech.ingest.sources import SourcesError, load_sources


def _load(tmp_path, body: str):
    path = tmp_path / "sources.yml"
    path.write_text("sources:\n" + body)
    return path, load_sources(path)


def test_defaults_and_normalised_shop(tmp_path, monkeypatch):
    monkeypatch.setenv("MARTECH_SHOPIFY_SHOP", "My-Store")
    _, loaded = _load(tmp_path, "  hs: {kind: hubspot}\n  sh: {kind: shopify, shop: '${MARTECH_SHOPIFY_SHOP}'}\n")
    assert (loaded["hs"].conn_id, loaded["hs"].objects) == ("hubspot", ("contacts", "deals"))
    assert loaded["sh"].shop == "my-store.myshopify.com"
    assert loaded["sh"].objects == ("customers", "orders", "abandoned_checkouts") and loaded["sh"].conn_id == "shopify"


@pytest.mark.parametrize(("body", "message"), [
    ("  hs: {kind: hubspot, objects: [contacts, tickets]}\n",
     "source 'hs', field objects: Value error, unknown hubspot object(s) tickets; known: contacts, deals"),
    ("  sh: {kind: shopify}\n", "source 'sh', field shop: Value error, required for kind shopify"),
    ("  sh: {kind: shopify, shop: 'evil.example.com'}\n", "source 'sh', field shop: Value error, expected"
                                                          " <name>.myshopify.com"),
    ("  sh: {kind: shopify, shop: s, api_version: '2025-02'}\n", "source 'sh', field api_version"),
    ("  f: {kind: files, objects: [orders]}\n", "source 'f', field objects: Value error, only sources of kind"),
    ("  hs: {kind: hubspot, token: abc}\n", "source 'hs', field token: Extra inputs are not permitted"),
])
def test_errors_name_the_file_source_and_field(tmp_path, body, message):
    path = tmp_path / "sources.yml"
    path.write_text("sources:\n" + body)
    with pytest.raises(SourcesError) as info:
        load_sources(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_a_disabled_shopify_source_needs_no_shop(tmp_path):
    _, loaded = _load(tmp_path, "  sh: {kind: shopify, enabled: false, shop: ''}\n")
    assert loaded["sh"].shop is None


def test_the_shipped_file_has_both_saas_sources_switched_off():
    loaded = load_sources()
    assert (loaded["hubspot"].kind, loaded["hubspot"].enabled, loaded["hubspot"].conn_id) == ("hubspot", False, "hubspot")
    assert (loaded["shopify"].kind, loaded["shopify"].enabled, loaded["shopify"].conn_id) == ("shopify", False, "shopify")


class _Conn:
    def __init__(self, password=None, extra=None, host=None):
        self.password, self.extra_dejson, self.host = password, extra or {}, host


@pytest.mark.parametrize(("conn", "expected"), [
    (_Conn(password="pw"), {"token": "pw", "host": None}),
    (_Conn(extra={"token": "ex"}, host="s.myshopify.com"), {"token": "ex", "host": "s.myshopify.com"}),
    (_Conn(extra={"access_token": "at"}), {"token": "at", "host": None}),
])
def test_saas_credentials_from_the_connection(monkeypatch, conn, expected):
    from airflow.sdk import BaseHook

    from martech import dagkit

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(lambda cls, conn_id: conn))
    assert dagkit.saas_credentials("hubspot") == expected


def test_saas_credentials_fall_back_to_the_environment(monkeypatch):
    from airflow.sdk import BaseHook

    from martech import dagkit

    def missing(cls, conn_id):
        raise LookupError(conn_id)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(missing))
    monkeypatch.setenv("MARTECH_HUBSPOT_TOKEN", "from-env")
    assert dagkit.saas_credentials("hubspot") == {"token": "from-env", "host": None}
