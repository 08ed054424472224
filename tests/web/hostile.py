"""Scenario: hostile names and types, signed in (--state). A file named like markup
(`<img src=x onerror=alert(1)>`) shows as text in its folder and on its own page: no
element is made from it, no dialog fires (a dialog trap fails the scenario), the name is
in the page's text. It and an HTML file are served only as attachments
(application/octet-stream), never rendered. Screenshots: the folder and the file page.

Inputs: --url --out --state --spec.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
import browser  # noqa: E402
import scenario  # noqa: E402
import steps  # noqa: E402
from scenario import check, drive_url, file_url  # noqa: E402


def check_inert(page, name, where):
    """`name` is text on the page and made no element."""
    check(name in page.locator("body").inner_text(), f"{where}: the name is not shown as text")
    for sel in ("img[src='x']", "[onerror]", "body script:not([src])"):
        n = page.locator(sel).count()
        check(n == 0, f"{where}: {n} elements match {sel!r}: the name became markup")


def check_attachment(ctx, url, what):
    r = ctx.request.get(url, max_redirects=0)
    check(r.status == 200, f"{what}: {r.status}")
    ctype = r.headers.get("content-type", "")
    disp = r.headers.get("content-disposition", "")
    check(ctype.startswith("application/octet-stream"), f"{what} served as {ctype!r}")
    check(disp.startswith("attachment"), f"{what}: Content-Disposition {disp!r}")
    check(r.headers.get("x-content-type-options") == "nosniff", f"{what}: no nosniff")
    return {"content_type": ctype, "content_disposition": disp}


def body(args, result, b):
    scenario.need(args, "url")
    spec = scenario.load_spec(args)
    cat, hostile = spec["category"], spec["hostile"]["path"]
    folder, name = hostile.rsplit("/", 1)
    ctx = b.context(cookies=scenario.load_session(args))
    page = browser.page_of(ctx)
    result["page"] = page
    trap = browser.DialogTrap(page)

    page.goto(drive_url(args.url, cat, folder, folder=True))
    row = steps.entry_row(page, name)
    check(row.count() == 1, f"no row with data-name {name!r}")
    check(name in row.inner_text(), f"the row does not show {name!r}: {row.inner_text()!r}")
    check_inert(page, name, "the folder")
    shots = [browser.screenshot(page, args.out, "hostile-folder")]
    steps.click_entry(page, name)
    check(steps.path_of(page.url) == steps.path_of(drive_url(args.url, cat, hostile)),
          f"the name's link led to {page.url}")
    check_inert(page, name, "the file page")
    check(page.locator("#preview").count() == 0, "a preview link for an unknown type")
    shots.append(browser.screenshot(page, args.out, "hostile-file"))
    trap.check()
    result["hostile"] = check_attachment(ctx, file_url(args.url, cat, hostile), "the hostile name")
    html = spec["html"]["path"]
    result["html"] = check_attachment(ctx, file_url(args.url, cat, html), "an HTML file")
    page.goto(drive_url(args.url, cat, html))
    check(page.locator("#preview").count() == 0, "a preview link for an HTML file")
    trap.check()
    result["screenshots"] = shots


if __name__ == "__main__":
    a = scenario.parse_args(__doc__.splitlines()[0])
    scenario.run("hostile", body, a)
