#!/usr/bin/env python3
"""The web app in a real browser (issue 25): Debian's Chromium driven by Playwright against a
real `clozup serve` on demo data. Run by `.ci/browser`, which starts the server, gives the owner
a password and passes:

    app.py BASE_URL        with CLOZUP_KEY (the owner's admin key), CLOZUP_PASSWORD (the
                           owner's password), SCREENSHOTS (a folder) and AXE (axe.min.js)

Every step is something a person does; each checks what they would see, and what the API says
happened. Screenshots of every page, at desktop and phone widths, go to SCREENSHOTS.
"""

import http.server
import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE = sys.argv[1].rstrip("/")
KEY = os.environ["CLOZUP_KEY"]
PASSWORD = os.environ["CLOZUP_PASSWORD"]
SHOTS = os.environ.get("SCREENSHOTS", "target/screenshots")
AXE = os.environ.get("AXE")
INBOUND = os.environ["CLOZUP_INBOUND_TOKEN"]
OWNER = "owner@example.com"
# Headless Chromium on a closed network: without these it tries Google's services at start.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
WAIT = 20_000  # ms: generous, for a loaded 2-core machine


def api(method, path, body=None, token=KEY):
    """A call to the JSON API: (status, parsed body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + "/api/v1" + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: records each delivery's id and event type, answers 204."""

    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.got.append((self.headers.get("webhook-id"), json.loads(body)["type"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hooks"


def eventually(cond, what, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return check(True, what)
        time.sleep(0.2)
    check(False, what)


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")
    print(f"ok: {what}")


def shoot(page, name):
    """The page at desktop and phone widths."""
    os.makedirs(SHOTS, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=f"{SHOTS}/{name}-{label}.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def sign_in(page, email, password, then="/today"):
    page.goto(BASE + then)
    expect(page).to_have_url(f"{BASE}/login?next={then}")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("form[action='/login'] button[type=submit]")
    expect(page).to_have_url(BASE + then)


def drag(page, card, target_list):
    """Drags a card onto a column with the mouse, in steps, as a person does."""
    card.scroll_into_view_if_needed()
    a = card.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + 12)
    page.mouse.down()
    target_list.scroll_into_view_if_needed()
    b = target_list.bounding_box()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + 10, steps=25)
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + 14, steps=5)
    page.mouse.up()


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        ctx = browser.new_context(viewport=DESKTOP)
        page = ctx.new_page()
        refused = []
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )

        # Sign in: a wrong password is refused in words, the right one lands where asked.
        page.goto(BASE + "/board")
        expect(page).to_have_url(BASE + "/login?next=/board")
        shoot(page, "signin")
        page.fill("#email", OWNER)
        page.fill("#password", "not the password")
        page.click("form[action='/login'] button[type=submit]")
        expect(page.locator(".notice.error")).to_contain_text("do not match")
        page.fill("#password", PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        expect(page).to_have_url(BASE + "/board")
        cookie = next(c for c in ctx.cookies() if c["name"] == "clozup_session")
        check(cookie["httpOnly"] and cookie["sameSite"] == "Lax", "the session cookie is HttpOnly, SameSite=Lax")

        # Drag the first card of the first column into the second.
        lists = page.locator("#board ul.cards")
        card = lists.nth(0).locator("li.card").first
        deal_id = card.get_attribute("data-deal")
        to_stage = lists.nth(1).get_attribute("data-stage")
        to_count = int(page.locator(".column").nth(1).locator(".count").inner_text().split()[0])
        drag(page, card, lists.nth(1))
        expect(page.locator("#board-status")).to_have_text("Moved.", timeout=WAIT)
        moved = page.locator(f'ul.cards[data-stage="{to_stage}"] li.card[data-deal="{deal_id}"]')
        expect(moved).to_be_visible()
        expect(page.locator(".column").nth(1).locator(".count")).to_have_text(
            f"{to_count + 1} deals"
        )
        status, deal = api("GET", f"/deals/{deal_id}")
        check(status == 200 and deal["data"]["stage_id"] == to_stage, "the API sees the dragged deal in its new stage")
        _, history = api("GET", f"/deals/{deal_id}/history")
        last = history["data"][-1]
        check(
            last["to_stage_id"] == to_stage and last["actor"]["type"] == "user",
            "the deal's history records the move, by the signed-in user",
        )
        shoot(page, "board")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=f"{SHOTS}/readme-board.png")

        # A move made through the API (an agent) appears on the open board without a reload.
        page.evaluate("window.notReloaded = true")
        other = lists.nth(0).locator("li.card").first
        other_id = other.get_attribute("data-deal")
        third = lists.nth(2).get_attribute("data-stage")
        status, _ = api("POST", f"/deals/{other_id}/move", {"stage_id": third})
        check(status == 200, "an agent moves a deal through the API")
        expect(
            page.locator(f'ul.cards[data-stage="{third}"] li.card[data-deal="{other_id}"]')
        ).to_be_visible(timeout=WAIT)
        check(page.evaluate("window.notReloaded === true"), "the board showed the agent's move live, without a reload")

        # A card someone else moved meanwhile is not moved back: the drag says why. The agent
        # moves the deal again; once the board shows it, the card is made to carry its old
        # version, as a board that missed the update would.
        status, _ = api("POST", f"/deals/{other_id}/move", {"stage_id": to_stage})
        check(status == 200, "an agent moves it again")
        stale = page.locator(f'ul.cards[data-stage="{to_stage}"] li.card[data-deal="{other_id}"]')
        expect(stale).to_be_visible(timeout=WAIT)
        stale.evaluate("c => { c.dataset.version = '1'; }")
        drag(page, stale, lists.nth(0))
        expect(page.locator("#board-status")).to_contain_text("changed this meanwhile", timeout=WAIT)
        _, now = api("GET", f"/deals/{other_id}")
        check(now["data"]["stage_id"] == to_stage, "a stale drag changed nothing (If-Match held)")

        # The deal page: log an activity, send an email.
        page.goto(f"{BASE}/deals/{deal_id}")
        expect(page.locator("h1")).to_have_text(deal["data"]["title"])
        expect(page.locator("#h-intel")).to_be_visible()
        page.select_option("#act-type", "call")
        page.fill("#act-subject", "Called about the pricing page")
        page.fill("#act-body", "They want the annual plan.")
        page.click("form[action$='/activities'] button[type=submit]")
        expect(page.locator("ol.timeline")).to_contain_text("Called about the pricing page")
        _, acts = api("GET", f"/activities?deal_id={deal_id}&type=call")
        check(
            any(a["subject"] == "Called about the pricing page" for a in acts["data"]),
            "the logged activity is in the API",
        )
        page.fill("#em-to", "buyer@example.com")
        page.fill("#em-subject", "Your proposal")
        page.fill("#em-text", "Here is the proposal we discussed.")
        page.click("form[action$='/email'] button[type=submit]")
        expect(page.locator("ol.thread")).to_contain_text("Your proposal")
        _, mails = api("GET", f"/deals/{deal_id}/emails")
        check(
            any(m["subject"] == "Your proposal" and m["to"] == ["buyer@example.com"] for m in mails["data"]),
            "the email is queued on the deal's inbox",
        )
        # A bad address is refused in words and nothing is sent.
        page.fill("#em-to", "not-an-address")
        page.fill("#em-subject", "Nope")
        page.fill("#em-text", "x")
        page.evaluate("document.querySelector('#em-to').type = 'text'")
        page.click("form[action$='/email'] button[type=submit]")
        expect(page.locator(".notice.error")).to_be_visible()
        _, after = api("GET", f"/deals/{deal_id}/emails")
        check(len(after["data"]) == len(mails["data"]), "a refused email queued nothing")
        shoot(page, "deal")

        # Leads: import a CSV file and read its report, find an imported lead, export.
        page.goto(BASE + "/leads")
        csv_file = (
            "First Name,Last Name,E-mail,Company,Job Title\n"
            "Ada,Lovelace,ada@analytical.example,Analytical Engines,CTO\n"
            "Grace,Hopper,grace@cobol.example,COBOL Inc,Rear Admiral\n"
            "Bad,Row,not-an-email,Nowhere,\n"
        ).encode()
        page.select_option("#im-dup", "skip")
        page.set_input_files(
            "#im-file", files=[{"name": "leads.csv", "mimeType": "text/csv", "buffer": csv_file}]
        )
        page.click("form[action='/leads/import'] button[type=submit]")
        report = page.locator("section.report")
        expect(report).to_contain_text("3 rows: 2 created")
        expect(report).to_contain_text("1 failed")
        expect(report.locator("table.issues")).to_contain_text("email")
        shoot(page, "leads-import")
        page.fill("input[name=q]", "analytical.example")
        page.click("form.filters button[type=submit]")
        expect(page.locator("table.leads tbody tr")).to_have_count(1)
        with page.expect_download() as download:
            page.click("a.button[download]")
        exported = open(download.value.path(), encoding="utf-8").read()
        check(
            "ada@analytical.example" in exported and "grace@cobol.example" not in exported,
            "the export holds what the filtered list shows",
        )
        page.click("table.leads tbody a")
        expect(page.locator("h1")).to_have_text("Ada Lovelace")
        # Edit, assign, convert.
        page.fill("#ed-title", "Chief Technology Officer")
        page.click("form[action$='/edit'] button[type=submit]")
        expect(page.locator("dl.facts")).to_contain_text("Chief Technology Officer")
        page.select_option("#as-user", label="Owner")
        page.click("form[action$='/assign'] button[type=submit]")
        expect(page.locator("dl.facts")).to_contain_text("Owner")
        shoot(page, "lead")
        page.fill("#cv-title", "Analytical Engines pilot")
        page.fill("#cv-value", "42000")
        page.click("form[action$='/convert'] button[type=submit]")
        expect(page.locator("h1")).to_have_text("Analytical Engines pilot")
        _, found = api("GET", "/leads?q=analytical.example")
        check(found["data"][0]["status"] == "converted", "the lead is converted, as the API sees it")

        # Mail comes in for the deal (a raw message, as a mail server pipes it), and is answered
        # from the deal's thread.
        _, inbox = api("GET", f"/deals/{deal_id}/email-inbox")
        raw = (
            "From: Buyer <buyer@example.com>\r\n"
            f"To: {inbox['data']['address']}\r\n"
            "Subject: Contract question\r\n"
            "Message-ID: <browser-test-1@example.com>\r\n"
            "Date: Thu, 03 Dec 2026 09:00:00 +0000\r\n"
            "\r\n"
            "Can you send the contract today?\r\n"
        ).encode()
        req = urllib.request.Request(BASE + "/api/v1/inbound/email", data=raw, method="POST")
        req.add_header("Authorization", f"Bearer {INBOUND}")
        req.add_header("Content-Type", "message/rfc822")
        with urllib.request.urlopen(req, timeout=30) as resp:
            check(resp.status == 201, "a real message is piped in for the deal")
        _, before = api("GET", "/agenda")
        unanswered = before["data"]["totals"]["unanswered_emails"]
        page.goto(f"{BASE}/deals/{deal_id}")
        inbound = page.locator("ol.thread li.inbound", has_text="Contract question")
        inbound.locator("details.reply summary").click()
        inbound.locator("textarea").fill("Thanks, we will send the contract today.")
        inbound.locator("button[type=submit]").click()
        expect(page.locator("ol.thread li.outbound").first).to_contain_text("Thanks, we will send the contract today.")
        expect(page.locator("ol.thread li.outbound").first).to_contain_text("Re: Contract question")
        _, after = api("GET", "/agenda")
        check(after["data"]["totals"]["unanswered_emails"] == unanswered - 1, "the reply answers it (the agenda has one fewer unanswered)")

        # Today.
        page.goto(BASE + "/today")
        expect(page.locator("h1")).to_contain_text("Today")
        shoot(page, "today")

        # Campaigns: the list with rates, one campaign's funnel and enrollments.
        page.goto(BASE + "/campaigns")
        _, camps = api("GET", "/campaigns")
        expect(page.locator("table.keys tbody tr")).to_have_count(len(camps["data"]))
        shoot(page, "campaigns")
        page.click("table.keys tbody a >> nth=0")
        expect(page.locator("#h-enrolled")).to_be_visible()
        shoot(page, "campaign")

        # Analytics: charts drawn on the server.
        page.goto(BASE + "/analytics")
        expect(page.locator("#h-c-stages")).to_be_visible()
        check(page.locator("svg rect.bar").count() >= 8, "the analytics charts are SVG from the server")
        shoot(page, "analytics")

        # Without JavaScript: the card's own form moves it; the charts are there.
        plain = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
        nojs = plain.new_page()
        sign_in(nojs, OWNER, PASSWORD, "/board")
        card = nojs.locator("#board ul.cards").nth(0).locator("li.card").first
        plain_id = card.get_attribute("data-deal")
        card.locator("summary").click()
        card.locator("select").select_option(index=1)
        card.locator("form.move button").click()
        expect(
            nojs.locator(f'ul.cards[data-stage="{to_stage}"] li.card[data-deal="{plain_id}"]')
        ).to_be_visible()
        _, plain_deal = api("GET", f"/deals/{plain_id}")
        check(plain_deal["data"]["stage_id"] == to_stage, "without JavaScript, a card's form moves it")
        nojs.goto(BASE + "/analytics")
        check(nojs.locator("svg rect.bar").count() >= 8, "without JavaScript, the charts read the same")
        plain.close()

        # Settings: create an API key (secret once), use it, revoke it.
        page.goto(BASE + "/settings/keys")
        page.fill("input[name=name]", "Browser test key")
        page.click("form[action='/settings/keys'] button[type=submit]")
        secret = page.locator("#new-key").inner_text().strip()
        check(secret.startswith("clz_"), "the new key's secret is shown once")
        status, me = api("GET", "/me", token=secret)
        check(status == 200, "the new key works")
        shoot(page, "keys")
        key_id = me["data"]["credential"]["id"]
        page.click(f'tr[data-key="{key_id}"] button.danger')
        expect(page.locator(f'tr[data-key="{key_id}"] td.status')).to_have_text("revoked")
        status, _ = api("GET", "/me", token=secret)
        check(status == 401, "the revoked key no longer works")
        page.reload()
        check(secret not in page.content(), "the secret is not shown again")

        # Settings: the organization, users and roles, webhooks and their log, backups.
        page.goto(BASE + "/settings")
        page.fill("#org-name", "Browser Test Co")
        page.click("form[action='/settings'] button[type=submit]")
        expect(page.locator("#org-name")).to_have_value("Browser Test Co")
        _, org = api("GET", "/org")
        check(org["data"]["name"] == "Browser Test Co", "the organization is renamed")
        shoot(page, "settings-org")

        page.goto(BASE + "/settings/users")
        page.fill("input[name=name]", "Mia Member")
        page.fill("input[name=email]", "mia@example.com")
        page.select_option("select[name=role]", "member")
        page.fill("input[name=password]", "mia password 1234")
        page.click("form[action='/settings/users'] button[type=submit]")
        row = page.locator("tr", has_text="mia@example.com")
        expect(row).to_be_visible()
        row.locator("select").select_option("admin")
        row.locator("form.inline button").click()
        expect(page.locator("tr", has_text="mia@example.com").locator("select")).to_have_value("admin")
        page.locator("tr", has_text="mia@example.com").locator("button.danger").click()
        expect(page.locator("tr", has_text="mia@example.com").locator("td.status")).to_have_text("deactivated")
        _, mia = api("GET", "/users?q=mia")
        check(mia["data"][0]["role"] == "admin" and not mia["data"][0]["active"], "the user's role and deactivation are in the API")
        shoot(page, "settings-users")

        hook_url = receiver()
        page.goto(BASE + "/settings/webhooks")
        page.fill("input[name=url]", hook_url)
        page.fill("input[name=event_types]", "deal.stage_changed")
        page.click("form[action='/settings/webhooks'] button[type=submit]")
        check(page.locator("#new-secret").inner_text().startswith("whsec_"), "the endpoint's secret is shown once")
        status, _ = api("POST", f"/deals/{deal_id}/move", {"stage_id": third})
        eventually(lambda: any(t == "deal.stage_changed" for _, t in Receiver.got), "the receiver gets the move")
        page.click(f"text={hook_url}")
        row = page.locator("tbody tr").first
        expect(row.locator("td.status")).to_have_text("succeeded", timeout=WAIT)
        first_id = Receiver.got[0][0]
        row.locator("button").click()
        eventually(lambda: [i for i, _ in Receiver.got].count(first_id) == 2, "a redelivery sends the same event again")
        shoot(page, "settings-webhooks")

        page.goto(BASE + "/settings/backups")
        page.click("form[action='/settings/backups'] button[type=submit]")
        expect(page.locator("p.notice")).to_contain_text("integrity ok")
        check(page.locator("ul.backups li").count() >= 1, "the backup is listed")
        shoot(page, "settings-backups")

        # A viewer sees but cannot change.
        status, login = api("POST", "/auth/login", {"email": OWNER, "password": PASSWORD}, token="")
        session = login["data"]["token"]
        status, _ = api(
            "POST",
            "/users",
            {"email": "viewer@example.com", "name": "Vera Viewer", "role": "viewer", "password": "viewer password 1"},
            token=session,
        )
        check(status == 201, "an owner adds a viewer")
        vctx = browser.new_context(viewport=DESKTOP)
        viewer = vctx.new_page()
        sign_in(viewer, "viewer@example.com", "viewer password 1", "/board")
        check(viewer.locator("#board").get_attribute("data-writable") == "false", "a viewer's board is not draggable")
        check(viewer.locator("form.move").count() == 0, "a viewer's board has no move forms")
        viewer.goto(f"{BASE}/deals/{deal_id}")
        check(viewer.locator("main form").count() == 0, "a viewer's deal page has no forms")
        token = viewer.locator('meta[name="csrf-token"]').get_attribute("content")
        resp = viewer.request.post(
            BASE + "/board/move",
            form={"csrf": token, "deal_id": deal_id, "stage_id": to_stage, "version": "1"},
            headers={"Origin": BASE},
        )
        check(resp.status == 403, "a viewer's move is refused (403)")
        viewer.goto(BASE + "/settings/keys")
        expect(viewer.locator("main")).to_contain_text("admins and owners")
        vctx.close()

        # Signing out ends the session.
        page.click("form.signout button")
        expect(page).to_have_url(BASE + "/login")
        page.goto(BASE + "/today")
        expect(page).to_have_url(BASE + "/login?next=/today")

        # Accessibility: axe-core on every page, no serious or critical violation. (axe is
        # injected as a script, which the pages' CSP rightly refuses: this context bypasses it.)
        if AXE:
            audit = browser.new_context(viewport=DESKTOP, bypass_csp=True)
            a11y = audit.new_page()
            sign_in(a11y, OWNER, PASSWORD, "/today")
            pages = ["/today", "/board", f"/deals/{deal_id}", "/leads", "/leads?q=analytical.example",
                     "/campaigns", "/analytics", "/settings", "/settings/users", "/settings/keys",
                     "/settings/webhooks", "/settings/backups"]
            found = []
            for path in pages:
                a11y.goto(BASE + path)
                a11y.add_script_tag(path=AXE)
                result = a11y.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
                for v in result["violations"]:
                    if v["impact"] in ("serious", "critical"):
                        found.append(f"{path}: {v['id']} ({v['impact']}): {v['help']} — {len(v['nodes'])} nodes, e.g. {v['nodes'][0]['html'][:120]}")
            a11y.goto(BASE + "/login")
            audit.clear_cookies()
            a11y.goto(BASE + "/login")
            a11y.add_script_tag(path=AXE)
            result = a11y.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
            found += [f"/login: {v['id']} ({v['impact']})" for v in result["violations"] if v["impact"] in ("serious", "critical")]
            # The engine is live: a page with an image without text is caught.
            a11y.set_content("<html lang=en><title>t</title><main><img src=x.png></main></html>")
            a11y.add_script_tag(path=AXE)
            probe = a11y.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
            check(any(v["id"] == "image-alt" for v in probe["violations"]), "axe-core catches a known violation")
            for f in found:
                print("  " + f)
            check(not found, f"axe-core finds no serious or critical violation on {len(pages) + 1} pages")
            audit.close()

        check(not refused, f"no Content-Security-Policy violation ({refused})")
        browser.close()
    print("browser: passed")


if __name__ == "__main__":
    main()
