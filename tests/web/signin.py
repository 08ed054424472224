"""Scenario: signing in. A signed-out visit lands on the sign-in form (with the security
headers); a wrong TOTP code is refused (401, the error shown, still on the sign-in page,
no session cookie); the web password and a right code sign in (303 to the category
list, the session cookie Secure, HttpOnly, SameSite=Strict, a sign-out form with its
CSRF token). Saves the session's cookies (--state) for the scenarios that follow, and
screenshots of the sign-in page, the refusal and the first page after sign-in.

Inputs (see scenario.py): --url --account --password-file --totp (or --totp-uri) --out,
and --wrong-totp (default: a code other than --totp).
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
import browser  # noqa: E402
import scenario  # noqa: E402
import steps  # noqa: E402
from scenario import check  # noqa: E402


def extra(p):
    p.add_argument("--wrong-totp", default=os.environ.get("CIRRUS_WEB_WRONG_TOTP"))


def check_form(page):
    form = page.locator("form#signin")
    check(form.count() == 1, "no <form id=signin>")
    check(form.get_attribute("method").lower() == "post", "the sign-in form does not POST")
    check(steps.path_of(form.get_attribute("action") or "") == "/signin", "form action")
    for name in ("account", "password", "totp"):
        check(page.locator(f"#signin [name={name}]").count() == 1, f"no field {name}")
    totp = page.locator("#signin [name=totp]")
    check(totp.get_attribute("inputmode") == "numeric", "the TOTP field is not numeric")
    check(totp.get_attribute("autocomplete") == "one-time-code", "TOTP autocomplete")
    check(page.locator("#signin [name=password]").get_attribute("type") == "password",
          "the password field shows what is typed")
    check(page.locator("#signin-submit").get_attribute("type") == "submit", "no submit button")


def body(args, result, b):
    scenario.need(args, "url", "account")
    password = scenario.web_password(args)
    code = scenario.totp_code(args)
    wrong = args.wrong_totp or f"{(int(code) + 500_000) % 1_000_000:06}"
    check(wrong != code, "the wrong code is the right one")
    ctx = b.context()
    page = browser.page_of(ctx)
    result["page"] = page
    trap = browser.DialogTrap(page)
    shots = []

    # Signed out: / leads to the sign-in page.
    page.goto(args.url + "/")
    check(steps.path_of(page.url) == "/signin", f"signed out, / led to {page.url}")
    r = page.goto(args.url + "/signin")
    check(r.status == 200, f"GET /signin: {r.status}")
    steps.check_security_headers(r, "GET /signin")
    check_form(page)
    shots.append(browser.screenshot(page, args.out, "signin"))

    # A wrong TOTP code: refused, the message shown, still signed out.
    r = steps.sign_in(page, args.url, args.account, password, wrong)
    check(r.status == 401, f"a wrong TOTP code got {r.status}, not 401")
    check(steps.path_of(page.url) == "/signin", f"after a wrong code: {page.url}")
    err = page.locator("p.error#signin-error")
    check(err.count() == 1 and err.is_visible(), "no visible #signin-error after a wrong code")
    err_text = err.inner_text().strip()
    check(err_text, "#signin-error is empty")
    check(steps.session_cookie(ctx) is None, "a wrong code set a session cookie")
    check(page.locator("form#signin").count() == 1, "the form is gone after a wrong code")
    shots.append(browser.screenshot(page, args.out, "signin-refused"))

    # The web password and a right code.
    r = steps.sign_in(page, args.url, args.account, password, code)
    check(r.status == 303, f"signing in got {r.status}, not 303")
    check(steps.path_of(page.url) == "/drive", f"signed in, at {page.url}, not /drive")
    c = steps.session_cookie(ctx)
    check(c is not None, f"no {steps.SESSION_COOKIE} cookie after signing in")
    check(c["secure"] and c["httpOnly"], f"cookie flags: {c}")
    check(c["sameSite"] == "Strict" and c["path"] == "/", f"cookie flags: {c}")
    csrf = page.locator("form#signout input[name=csrf]")
    check(csrf.count() == 1, "no sign-out form with a csrf field")
    check(re.fullmatch(r"[0-9a-f]{64}", csrf.get_attribute("value") or ""), "csrf token")
    page.goto(args.url + "/")
    check(steps.path_of(page.url) == "/drive", f"signed in, / led to {page.url}")
    shots.append(browser.screenshot(page, args.out, "signed-in"))
    trap.check()
    scenario.save_session(ctx, args)
    result.update(error_text=err_text, state=args.state, screenshots=shots,
                  cookie={k: c[k] for k in ("name", "secure", "httpOnly", "sameSite", "path")})


if __name__ == "__main__":
    a = scenario.parse_args(__doc__.splitlines()[0], extra)
    scenario.run("signin", body, a)
