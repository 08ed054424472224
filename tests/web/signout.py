"""Scenario: CSRF and signing out, signed in (--state; run it last: it ends that
session). A POST to /signout without the csrf field, and one with a wrong token, are
refused with 403 and leave the session working; the page's sign-out form ends it: 303
to /signin, the cookie cleared, and the old cookie, replayed in another browser, no
longer opens anything (the server ended the session, not only the browser). Screenshot:
the page after signing out.

Inputs: --url --out --state --spec.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
import browser  # noqa: E402
import scenario  # noqa: E402
import steps  # noqa: E402
from scenario import check, file_url  # noqa: E402


def check_signed_out(response, page, what):
    """The page is not the drive: the sign-in page (the contract's redirect for /) or a
    refusal (the contract does not say which for /drive)."""
    at = steps.path_of(page.url)
    check(page.locator("table#categories").count() == 0, f"{what} showed the categories")
    check(at == "/signin" or response.status in (401, 403),
          f"{what} led to {page.url} ({response.status})")


def body(args, result, b):
    scenario.need(args, "url")
    spec = scenario.load_spec(args)
    cookies = scenario.load_session(args)
    ctx = b.context(cookies=cookies)
    page = browser.page_of(ctx)
    result["page"] = page
    page.goto(args.url + "/drive")
    check(steps.path_of(page.url) == "/drive", f"the session did not hold: at {page.url}")
    token = page.locator("form#signout input[name=csrf]").get_attribute("value")
    refused = {}
    for what, form in (("no csrf", {}), ("a wrong csrf", {"csrf": "0" * 64}),
                       ("another field", {"token": token})):
        r = ctx.request.post(args.url + "/signout", form=form, max_redirects=0)
        check(r.status == 403, f"POST /signout with {what} got {r.status}, not 403")
        refused[what] = r.status
    r = ctx.request.get(args.url + "/drive", max_redirects=0)
    check(r.status == 200, f"after the refused POSTs, /drive got {r.status}")
    result["refused"] = refused

    with page.expect_navigation():
        page.locator("form#signout [type=submit]").first.click()
    check(steps.path_of(page.url) == "/signin", f"signed out, at {page.url}")
    check(steps.session_cookie(ctx) is None, "the session cookie is still there")
    shot = browser.screenshot(page, args.out, "signed-out")
    check_signed_out(page.goto(args.url + "/drive"), page, "signed out, /drive")

    # The old cookie, replayed: the server no longer knows the session.
    again = b.context(cookies=cookies)
    p2 = browser.page_of(again)
    result["page"] = p2
    check_signed_out(p2.goto(args.url + "/drive"), p2, "the ended session's cookie: /drive")
    r = again.request.get(file_url(args.url, spec["category"], spec["text"]["path"]),
                          max_redirects=0)
    check(r.status not in (200, 206), f"the ended session's cookie read a file ({r.status})")
    result.update(replayed_file_status=r.status, screenshots=[shot])


if __name__ == "__main__":
    a = scenario.parse_args(__doc__.splitlines()[0])
    scenario.run("signout", body, a)
