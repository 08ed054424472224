"""Scenario: one account's session never reads another's data. The other account
(--account, --password-file, --totp) signs in and reads its own file; the first account's
session (--state, from signin.py) gets 404 for the same paths, and the other's session
404 for the first's; crafted paths (dot segments, encoded slashes, empty segments,
locked and unavailable categories), sent byte for byte with the first session's cookie,
get 404 (or 400) and never the other account's bytes. Screenshot: the other account's
folder.

Inputs: --url --account --password-file --totp (the other account) --out --state --spec
(its "other" entry names the other account's file; "text" one of the first's).
"""

import http.client
import os
import ssl
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
import browser  # noqa: E402
import scenario  # noqa: E402
import steps  # noqa: E402
from scenario import check, drive_url, file_url, quote_path  # noqa: E402


def raw_get(base, path, cookie):
    """GET of `path` exactly as written (no client normalises its dot segments)."""
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPSConnection(
        u.hostname, u.port, context=ssl._create_unverified_context(), timeout=60  # noqa: SLF001
    )
    try:
        conn.request("GET", path, headers={"Cookie": f"{cookie['name']}={cookie['value']}"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def crafted_paths(spec):
    other = spec["other"]
    cat = quote_path(other["category"])
    name = other["file"].split("/")[-1]
    return [
        f"/file/{cat}/{quote_path(other['file'])}",
        f"/file/{cat}/..%2F{quote_path(name)}",
        f"/file/{cat}/%2e%2e/%2e%2e/etc/passwd",
        f"/file/{cat}/../../etc/passwd",
        f"/file/{cat}/{quote_path(other['folder'])}%2F{quote_path(name)}",
        f"/file//{cat}/{quote_path(other['file'])}",
        "/drive/..%2F/",
        "/drive/%2e%2e/",
        f"/file/{quote_path('Health')}/{quote_path(name)}",
        f"/file/{quote_path('Backup')}/{quote_path(name)}",
        f"/drive/{quote_path('Health')}/",
    ]


def body(args, result, b):
    scenario.need(args, "url", "account")
    spec = scenario.load_spec(args)
    other = spec["other"]
    secret = other["content"].encode()
    # The other account reads its own file.
    ctx_o = b.context()
    page = browser.page_of(ctx_o)
    result["page"] = page
    r = steps.sign_in(page, args.url, args.account, scenario.web_password(args),
                      scenario.totp_code(args))
    check(r.status == 303, f"{args.account} could not sign in: {r.status}")
    page.goto(drive_url(args.url, other["category"], other["folder"], folder=True))
    names = [n for n, _ in steps.entries(page)]
    check(other["file"].split("/")[-1] in names, f"{args.account}'s folder lists {names}")
    shot = browser.screenshot(page, args.out, "other-account-folder")
    r = ctx_o.request.get(file_url(args.url, other["category"], other["file"]), max_redirects=0)
    check(r.status == 200 and r.body() == secret, f"{args.account}'s own file: {r.status}")
    text = spec["text"]
    r = ctx_o.request.get(file_url(args.url, spec["category"], text["path"]), max_redirects=0)
    check(r.status == 404, f"{args.account} read the first account's file: {r.status}")

    # The first account's session: the other's paths do not exist for it.
    first = scenario.load_session(args)
    ctx_a = b.context(cookies=first)
    pa = browser.page_of(ctx_a)
    result["page"] = pa
    for u in (drive_url(args.url, other["category"], other["folder"], folder=True),
              drive_url(args.url, other["category"], other["file"])):
        resp = pa.goto(u)
        check(resp.status == 404, f"the first account got {resp.status} for {u}")
    cookie = next(c for c in first if c["name"] == steps.SESSION_COOKIE)
    crafted = {}
    for path in crafted_paths(spec):
        status, got = raw_get(args.url, path, cookie)
        crafted[path] = status
        # The first account's own locked (Health) and off-web (Backup) categories answer
        # with their explanation page (403); anything else must not exist (404, or 400
        # for a path that is not one).
        own_closed = any(f"/{c}/" in path for c in ("Health", "Backup"))
        allowed = (400, 403, 404) if own_closed else (400, 404)
        check(status in allowed, f"GET {path} with the first session: {status}, not 404")
        check(secret not in got, f"GET {path} gave the other account's bytes")
    result.update(crafted=crafted, screenshots=[shot])


if __name__ == "__main__":
    a = scenario.parse_args(__doc__.splitlines()[0])
    scenario.run("isolation", body, a)
