"""Scenario: a web sign-in under Advanced Data Protection. After the web password and a
right code the browser lands on the approval page (/approve), which shows the sign-in
code; nothing of the drive is served while it waits (the category list and a file of
Photos both lead back to /approve). The scenario writes the code to --code-file and
waits for --go-file (the test approves the sign-in on the device meanwhile, releasing
Photos); then Photos is available (end-to-end, its file read back byte for byte), Health
and the other end-to-end categories stay locked, and once the release expires (the
server's --release-ttl) Photos is locked again. Screenshots: the approval page, the
category list after the approval, and after the expiry.

Inputs (see scenario.py): --url --account --password-file --totp --out --spec, and
--code-file, --go-file.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
import browser  # noqa: E402
import scenario  # noqa: E402
import steps  # noqa: E402
from scenario import check  # noqa: E402

CODE = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")


def extra(p):
    p.add_argument("--code-file", required=True)
    p.add_argument("--go-file", required=True)
    p.add_argument("--wait", type=float, default=120.0)


def states(page, base):
    page.goto(base + "/drive")
    check(steps.path_of(page.url) == "/drive", f"the category list led to {page.url}")
    return {name: state for name, (state, _) in steps.category_rows(page).items()}


def body(args, result, b):
    scenario.need(args, "url", "account")
    spec = scenario.load_spec(args)
    photo = spec["photo"]
    password = scenario.web_password(args)
    code = scenario.totp_code(args)
    ctx = b.context()
    page = browser.page_of(ctx)
    result["page"] = page
    trap = browser.DialogTrap(page)
    shots = []

    r = steps.sign_in(page, args.url, args.account, password, code)
    check(r.status == 303, f"signing in got {r.status}, not 303")
    check(steps.path_of(page.url) == "/approve", f"signed in under ADP, at {page.url}")
    shown = page.locator("#approve-code").inner_text().strip()
    check(CODE.fullmatch(shown), f"the approval page shows {shown!r}, not a code")
    command = page.locator("#approve-command").inner_text()
    check(shown in command and "cirrus web approve" in command, f"the command shown: {command!r}")
    resp = page.request.get(args.url + "/approve")
    steps.check_security_headers(resp, "GET /approve")
    shots.append(browser.screenshot(page, args.out, "approve"))

    # Waiting: nothing of the drive is served.
    for url in (args.url + "/drive",
                scenario.drive_url(args.url, "Photos"),
                scenario.file_url(args.url, "Photos", photo["path"])):
        resp = page.request.get(url, max_redirects=0)
        check(resp.status == 303 and resp.headers.get("location") == "/approve",
              f"waiting for approval, {url} answered {resp.status} {resp.headers.get('location')}")

    with open(args.code_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(shown + "\n")
    os.rename(args.code_file + ".tmp", args.code_file)
    deadline = time.monotonic() + args.wait
    while not os.path.exists(args.go_file):
        check(time.monotonic() < deadline, "the device did not approve the sign-in in time")
        time.sleep(0.2)

    # Approved, Photos released: the approval page leads to the drive.
    page.goto(args.url + "/approve")
    check(steps.path_of(page.url) == "/drive", f"approved, /approve led to {page.url}")
    before = states(page, args.url)
    for name, want in spec["approved"].items():
        got = before.get(name)
        check(got == want, f"approved: {name} is {got}, not {want}")
    shots.append(browser.screenshot(page, args.out, "approved"))
    resp = page.request.get(scenario.file_url(args.url, "Photos", photo["path"]))
    check(resp.status == 200, f"the released Photos file: {resp.status}")
    check(resp.text() == photo["content"], "the released Photos file has other bytes")
    released_at = time.monotonic()

    # The release expires: Photos locks again (the sign-in stays approved).
    deadline = time.monotonic() + args.wait
    while True:
        resp = page.request.get(scenario.drive_url(args.url, "Photos"), max_redirects=0)
        if resp.status == 403:
            break
        check(resp.status == 200, f"Photos while released: {resp.status}")
        check(time.monotonic() < deadline, "the released key did not expire in time")
        time.sleep(0.5)
    after = states(page, args.url)
    check(after.get("Photos") == "locked", f"after the expiry Photos is {after.get('Photos')}")
    shots.append(browser.screenshot(page, args.out, "expired"))
    trap.check()
    result.update(code=shown, screenshots=shots,
                  approved=before, expired=after,
                  expired_after=round(time.monotonic() - released_at, 1))


if __name__ == "__main__":
    a = scenario.parse_args(__doc__.splitlines()[0], extra)
    scenario.run("adp", body, a)
