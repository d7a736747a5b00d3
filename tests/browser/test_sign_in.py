"""AUTH_MODE=entra in Chromium: the page signs the user in with MSAL (the authorization code
flow with PKCE) against the local OpenID Connect issuer in tests/ (over HTTPS, as MSAL
requires), then chats with the access token, which the relay checks against the issuer's
keys. config.json carries the client id, the authority and the scope, nothing secret."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from responses_relay.access.owner import Owners
from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from ..conftest import OWNER_SECRET, serve
from ..faulty_upstream import FaultyUpstream, Scenario
from ..oidc_issuer import ALICE, API_CLIENT_ID, SCOPE, OidcIssuer, serving
from .conftest import ARTIFACTS, ROOT, answered, send


@pytest.fixture
async def issuer(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OidcIssuer]:
    # The relay fetches the issuer's keys over HTTPS too: it trusts the test certificate as a private CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    async with serving(OidcIssuer(), tls=certificate) as running:
        yield running


@pytest.fixture
async def site_url(upstream: FaultyUpstream, issuer: OidcIssuer, tmp_path: Path) -> AsyncIterator[str]:
    static = tmp_path / "static"
    shutil.copytree(ROOT / "static", static)
    sign_in = {"clientId": API_CLIENT_ID, "authority": issuer.base_url, "scope": SCOPE}
    (static / "config.json").write_text(json.dumps({"apiBase": "/api", "auth": sign_in}))
    settings = load_settings({**issuer.environ, "OWNER_HASH_SECRET": OWNER_SECRET})
    async for server in serve(ChatService(settings, demo=upstream), static_dir=static):
        yield server.base_url


async def test_the_page_signs_in_with_msal_then_chats_with_the_users_token(
    page: Page, upstream: FaultyUpstream, issuer: OidcIssuer, site_url: str
) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖は日本一大きな湖です。", delta_seconds=0.001))
    account = page.locator("#account")
    await expect(account).to_have_text("サインイン")
    async with page.expect_navigation(url=f"{site_url}/**"):
        await account.click()  # to the issuer's authorization endpoint, which sends the user straight back
    await page.wait_for_selector("body[data-ready=true]")
    await expect(account).to_have_text("サインアウト（Alice）")
    assert issuer.authorized == 1

    await send(page, "滋賀県について教えてください。")
    await answered(page, 1)
    await expect(page.locator(".turn.assistant .body")).to_have_text("琵琶湖は日本一大きな湖です。")
    [created] = [record.request for record in upstream.records if record.path.endswith("/responses")]
    assert created["metadata"]["owner"] == Owners(OWNER_SECRET.encode()).of(f"{ALICE.tid}/{ALICE.oid}")
    assert upstream.records[0].authorization == "Bearer demo"  # the relay's own credential, not the user's token
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "signed-in.png", full_page=True)
    tokens = await page.evaluate("Object.keys(localStorage).filter((key) => key.includes('accesstoken')).length")
    assert tokens == 0  # MSAL keeps them in sessionStorage, gone with the tab


async def test_a_question_before_signing_in_leads_to_the_sign_in_page(
    page: Page, upstream: FaultyUpstream, issuer: OidcIssuer, site_url: str
) -> None:
    async with page.expect_navigation(url=f"{site_url}/**"):
        await send(page, "滋賀県について教えてください。")  # 401: the page signs the user in
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.locator("#account")).to_have_text("サインアウト（Alice）")
    assert issuer.authorized == 1
    assert upstream.records == []  # the unsigned question never reached the model


async def test_a_hiccup_of_the_sign_in_service_says_so_and_retry_answers_without_signing_in_again(
    page: Page, upstream: FaultyUpstream, issuer: OidcIssuer, site_url: str
) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖は日本一大きな湖です。", delta_seconds=0.001))
    async with page.expect_navigation(url=f"{site_url}/**"):
        await page.locator("#account").click()
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.locator("#account")).to_have_text("サインアウト（Alice）")

    issuer.keys_failures = 1  # the relay's first fetch of the issuer's keys fails: 503, Retry-After 2
    await send(page, "滋賀県について教えてください。")
    status = page.locator(".turn.assistant .status")
    await expect(status).to_have_text("サインインサービスを利用できません。少し待ってから再試行してください。")
    retry = page.locator(".turn.assistant .retry")
    await expect(retry).to_have_text("再試行（あと 2 秒）")
    await expect(retry).to_be_disabled()
    await page.select_option("#language", "en")  # the message in English too
    await expect(status).to_have_text("The sign-in service is unavailable; try again in a moment.")
    assert upstream.records == []

    await expect(retry).to_be_enabled()  # the relay's backoff (2 s) has passed: it fetches the keys again
    await retry.click()
    await answered(page, 1)
    await expect(page.locator(".turn.assistant .body")).to_have_text("琵琶湖は日本一大きな湖です。")
    assert (issuer.authorized, issuer.keys_fetched) == (1, 2)  # never sent back to the sign-in page
