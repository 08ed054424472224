"""Scenario: everything of step (a) with JavaScript off, in a browser of its own. Signing
in through the form (its own TOTP code), the category list, following links into a
folder, sorting by a link, searching with the form, downloading the big file (size and
SHA-256 as the spec says), and signing out with the form. Screenshots: the category
list, the folder, the file page (phone-sized, all three).

Inputs: --url --account --password-file --totp (or --totp-uri) --out --spec.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
import browser  # noqa: E402
import scenario  # noqa: E402
import steps  # noqa: E402
from scenario import check, drive_url  # noqa: E402


def body(args, result, b):
    scenario.need(args, "url", "account")
    spec = scenario.load_spec(args)
    ctx = b.context(javascript=False, viewport=browser.PHONE)
    page = browser.page_of(ctx)
    result["page"] = page
    cat, big = spec["category"], spec["big"]
    page.goto(args.url + "/signin")
    r = steps.sign_in(page, args.url, args.account, scenario.web_password(args),
                      scenario.totp_code(args))
    check(r.status == 303 and steps.path_of(page.url) == "/drive",
          f"signing in without JavaScript: {r.status}, at {page.url}")
    check(page.locator("#categories tr.category").count() >= len(spec["categories"]),
          "the category list is short")
    shots = [browser.screenshot(page, args.out, "nojs-categories")]
    steps.open_folder(page, args.url, cat, spec["folder"])
    check(dict(steps.entries(page)) == spec["entries"], "the folder's entries differ")
    shots.append(browser.screenshot(page, args.out, "nojs-folder"))
    with page.expect_navigation():
        page.locator("a[href*='sort=size']").first.click()
    check("sort=size" in page.url, f"the sort link led to {page.url}")
    page.fill("#search [name=q]", spec["search"]["q"])
    with page.expect_navigation():
        page.press("#search [name=q]", "Enter")
    text = page.locator("body").inner_text()
    for hit in spec["search"]["hits"]:
        check(hit in text, f"searching without JavaScript did not find {hit!r}")
    page.goto(drive_url(args.url, cat, big["path"]))
    shots.append(browser.screenshot(page, args.out, "nojs-file"))
    result["download"] = steps.download(page, args.out, "nojs-download.bin",
                                        big["size"], big["sha256"])
    os.remove(result["download"]["path"])
    with page.expect_navigation():
        page.locator("form#signout [type=submit]").first.click()
    check(steps.path_of(page.url) == "/signin", f"signed out without JavaScript: {page.url}")
    check(steps.session_cookie(ctx) is None, "the session cookie is still there")
    result["screenshots"] = shots


if __name__ == "__main__":
    a = scenario.parse_args(__doc__.splitlines()[0])
    scenario.run("nojs", body, a)
