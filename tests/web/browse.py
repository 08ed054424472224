"""Scenario: browsing, signed in (--state from signin.py). The category list shows each
category of the spec with its state and class badge (standard and transit available
with a link, e2e locked, the ones on no list "not available on the web"); following
the links opens the category and its folders; the listing has exactly the spec's
entries with their kinds and modified times; breadcrumbs lead back up; sort links and
?sort=&order= order the files by name, size and modified time both ways; the search
form finds names anywhere in the category, case-insensitively. Screenshots: the
category list (desktop and phone), a folder, a subfolder, a search.

Inputs: --url --out --state --spec (tests/web.rs writes it; see there).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
import browser  # noqa: E402
import scenario  # noqa: E402
import steps  # noqa: E402
from scenario import check, drive_url  # noqa: E402


def check_categories(page, spec):
    rows = steps.category_rows(page)
    seen = {}
    for name, want in spec["categories"].items():
        check(name in rows, f"category {name!r} is not listed (listed: {sorted(rows)})")
        state, row = rows[name]
        check(state == want["state"], f"{name}: data-state {state!r}, not {want['state']!r}")
        badge = row.locator(f"span.badge.class-{want['class']}")
        check(badge.count() == 1, f"{name}: no class-{want['class']} badge")
        link = row.locator("a[href]")
        hrefs = [steps.path_of(a.get_attribute("href")) for a in link.all()]
        own = steps.path_of(drive_url("", name))
        text = row.inner_text()
        if state == "available":
            check(own in hrefs, f"{name}: no link to {own} (links {hrefs})")
        else:
            check(own not in hrefs, f"{name} ({state}) links to its folder")
            check("not available on the web" in text.lower(),
                  f"{name} ({state}) does not say it is not available on the web: {text!r}")
        if state == "locked":
            check("end-to-end" in text.lower(), f"{name}: locked without saying why: {text!r}")
        seen[name] = {"state": state, "text": " ".join(text.split())}
    return seen


def check_listing(page, spec):
    got = dict(steps.entries(page))
    want = spec["entries"]
    check(got == want, f"{page.url}: entries {got}, not {want}")
    for name, when in spec.get("modified", {}).items():
        text = steps.entry_row(page, name).inner_text()
        check(when in text, f"{name}: modified {when!r} not shown in {text!r}")
    for name, kind in want.items():
        if kind == "file":
            text = steps.entry_row(page, name).inner_text()
            check(steps.MODIFIED.search(text), f"{name}: no YYYY-MM-DD HH:MM in {text!r}")


def file_order(page, names):
    return [n for n, kind in steps.entries(page) if kind == "file" and n in names]


def check_sorting(page, base, spec):
    folder = drive_url(base, spec["category"], spec["folder"], folder=True)
    # The links a person clicks.
    for key in ("name", "size", "modified"):
        check(page.locator(f"a[href*='sort={key}']").count() >= 1, f"no sort={key} link")
    with page.expect_navigation():
        page.locator("a[href*='sort=size']").first.click()
    check("sort=size" in page.url, f"the size sort link led to {page.url}")
    orders = {}
    for key, asc in spec["sorted"].items():
        for order, want in (("asc", asc), ("desc", list(reversed(asc)))):
            page.goto(f"{folder}?sort={key}&order={order}")
            got = file_order(page, asc)
            check(got == want, f"sort={key}&order={order}: {got}, not {want}")
            orders[f"{key}-{order}"] = got
    return orders


def check_breadcrumbs(page, base, spec):
    cat, folder, sub = spec["category"], spec["folder"], spec["subfolder"]
    crumbs = page.locator("nav#breadcrumbs")
    check(crumbs.count() == 1, "no nav#breadcrumbs")
    text = crumbs.inner_text()
    for seg in [cat] + sub.split("/"):
        check(seg in text, f"breadcrumbs {text!r} lack {seg!r}")
    hrefs = [steps.path_of(a.get_attribute("href")) for a in crumbs.locator("a[href]").all()]
    up = steps.path_of(drive_url(base, cat, folder, folder=True))
    top = steps.path_of(drive_url(base, cat))
    check(up in hrefs and top in hrefs, f"breadcrumb links {hrefs} lack {up} or {top}")
    with page.expect_navigation():
        crumbs.locator("a[href]").nth(hrefs.index(up)).click()
    check(steps.path_of(page.url) == up, f"the breadcrumb led to {page.url}, not {up}")
    return hrefs


def check_search(page, spec):
    s = spec["search"]
    form = page.locator("form#search")
    check(form.count() == 1, "no form#search")
    check((form.get_attribute("method") or "get").lower() == "get", "search is not a GET")
    page.fill("#search [name=q]", s["q"])
    with page.expect_navigation():
        page.press("#search [name=q]", "Enter")
    check("q=" in page.url, f"the search led to {page.url}")
    names = [n for n, _ in steps.entries(page)]
    text = page.locator("body").inner_text()

    def found(name):
        return any(n == name or n.endswith("/" + name) for n in names) or (
            not names and name in text)

    for hit in s["hits"]:
        check(found(hit), f"searching {s['q']!r} did not find {hit!r} (rows {names})")
    for miss in s["misses"]:
        check(not found(miss), f"searching {s['q']!r} found {miss!r}")
    return names


def body(args, result, b):
    scenario.need(args, "url")
    spec = scenario.load_spec(args)
    ctx = b.context(cookies=scenario.load_session(args))
    page = browser.page_of(ctx)
    result["page"] = page
    trap = browser.DialogTrap(page)
    shots = []
    r = page.goto(args.url + "/drive")
    check(steps.path_of(page.url) == "/drive", f"the session did not hold: at {page.url}")
    steps.check_security_headers(r, "GET /drive")
    check(page.locator("table#categories").count() == 1, "no table#categories")
    result["categories"] = check_categories(page, spec)
    shots.append(browser.screenshot(page, args.out, "categories"))
    page.set_viewport_size(browser.PHONE)
    shots.append(browser.screenshot(page, args.out, "categories-phone"))
    page.set_viewport_size(browser.DESKTOP)

    steps.open_folder(page, args.url, spec["category"], spec["folder"])
    check(page.locator("table#listing").count() == 1, "no table#listing")
    check_listing(page, spec)
    shots.append(browser.screenshot(page, args.out, "folder"))
    page.set_viewport_size(browser.PHONE)
    shots.append(browser.screenshot(page, args.out, "folder-phone"))
    page.set_viewport_size(browser.DESKTOP)
    result["sorted"] = check_sorting(page, args.url, spec)

    page.goto(drive_url(args.url, spec["category"], spec["folder"], folder=True))
    steps.click_entry(page, spec["subfolder"].split("/")[-1])
    shots.append(browser.screenshot(page, args.out, "subfolder"))
    result["breadcrumbs"] = check_breadcrumbs(page, args.url, spec)

    result["search"] = check_search(page, spec)
    shots.append(browser.screenshot(page, args.out, "search"))
    r = page.goto(drive_url(args.url, spec["category"], "no such folder", folder=True))
    check(r.status == 404, f"an unknown folder got {r.status}, not 404")
    r = page.goto(drive_url(args.url, "No Such Category"))
    check(r.status == 404, f"an unknown category got {r.status}, not 404")
    trap.check()
    result["screenshots"] = shots


if __name__ == "__main__":
    a = scenario.parse_args(__doc__.splitlines()[0])
    scenario.run("browse", body, a)
