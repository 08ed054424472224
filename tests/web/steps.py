"""Steps the scenarios share, written against the web front's contract (the element ids,
classes and routes of /work/web-contract.md, kept in docs/USER-GUIDE.md "On the web"):
signing in through the form, the rows of the category list and of a folder, clicking
into folders, downloading through the page's link, the response headers every page has.
"""

import os
import re
import urllib.parse

import browser
from scenario import Failure, check, drive_url, file_url, sha256_file

SESSION_COOKIE = "__Host-cirrus"

# What every response carries (the contract's "Every response").
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
CSP_PARTS = ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]


def css_string(s):
    """`s` as a quoted CSS string, for attribute selectors on file names."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\a ") + '"'


def path_of(url):
    """The URL's path, percent-decoded: the server may escape more or fewer characters
    than Python does, and both name the same file."""
    return urllib.parse.unquote(urllib.parse.urlparse(url).path)


def check_security_headers(response, what, cache="no-store"):
    check(response is not None, f"{what}: no response")
    h = response.headers
    for k, v in SECURITY_HEADERS.items():
        check(h.get(k, "").lower() == v.lower(), f"{what}: {k} is {h.get(k)!r}, not {v!r}")
    csp = h.get("content-security-policy", "")
    for part in CSP_PARTS:
        check(part in csp, f"{what}: Content-Security-Policy {csp!r} lacks {part!r}")
    if cache:
        check(cache in h.get("cache-control", ""), f"{what}: Cache-Control {h.get('cache-control')!r}")


def sign_in(page, base, account, password, code):
    """Fills and sends the sign-in form (from /signin); the POST's response."""
    if path_of(page.url) != "/signin":
        page.goto(base + "/signin")
    page.fill("#signin [name=account]", account)
    page.fill("#signin [name=password]", password)
    page.fill("#signin [name=totp]", code)
    with page.expect_response(
        lambda r: r.request.method == "POST" and path_of(r.url) == "/signin"
    ) as posted:
        with page.expect_navigation():
            page.click("#signin-submit")
    return posted.value


def session_cookie(ctx):
    for c in ctx.cookies():
        if c["name"] == SESSION_COOKIE and c["value"]:
            return c
    return None


def category_rows(page):
    """name -> (data-state, row element) of the category list (on /drive)."""
    rows = {}
    for r in page.locator("#categories tr.category").all():
        rows[r.get_attribute("data-name")] = (r.get_attribute("data-state"), r)
    return rows


def entries(page):
    """[(data-name, data-kind)] of the folder listing, in page order."""
    return [
        (r.get_attribute("data-name"), r.get_attribute("data-kind"))
        for r in page.locator("#listing tr.entry").all()
    ]


def entry_row(page, name):
    return page.locator(f"#listing tr.entry[data-name={css_string(name)}]")


def click_entry(page, name):
    """Follows the name link of entry `name` of the listing."""
    row = entry_row(page, name)
    check(row.count() == 1, f"{page.url}: {row.count()} rows named {name!r}")
    with page.expect_navigation():
        row.locator("a").first.click()


def open_folder(page, base, category, folder):
    """From the category list: the category's link, then each folder of `folder` by its
    link, as a person would; checks each URL on the way."""
    if path_of(page.url) != "/drive":
        page.goto(base + "/drive")
    state, row = category_rows(page).get(category, (None, None))
    check(state == "available", f"category {category!r} is {state!r}, not available")
    with page.expect_navigation():
        row.locator("a").first.click()
    check(path_of(page.url) == path_of(drive_url(base, category)), f"at {page.url}")
    done = ""
    for seg in [s for s in folder.split("/") if s]:
        click_entry(page, seg)
        done = f"{done}/{seg}" if done else seg
        want = path_of(drive_url(base, category, done, folder=True))
        check(path_of(page.url) == want, f"at {page.url}, not {want}")


def download(page, out_dir, save_as, want_size=None, want_sha256=None):
    """Clicks the file page's #download link; the saved file's path and SHA-256,
    checked against what is wanted."""
    link = page.locator("#download")
    check(link.count() == 1, f"{page.url}: no #download link")
    with page.expect_download(timeout=browser.TIMEOUT_MS * 2) as dl:
        link.click()
    d = dl.value
    check(d.failure() is None, f"the download failed: {d.failure()}")
    path = os.path.join(out_dir, save_as)
    d.save_as(path)
    size = os.path.getsize(path)
    digest = sha256_file(path)
    if want_size is not None:
        check(size == want_size, f"downloaded {size} bytes, not {want_size}")
    if want_sha256 is not None:
        check(digest == want_sha256, f"the download's SHA-256 {digest} is not {want_sha256}")
    return {"path": path, "size": size, "sha256": digest, "suggested": d.suggested_filename}


def file_link(base, category, path, download_link=False):
    """The /file/ URL the file page must link to, as a path."""
    return path_of(file_url(base, category, path)) + ("?download=1" if download_link else "")


def href_of(page, selector):
    h = page.locator(selector).get_attribute("href")
    if h is None:
        raise Failure(f"{page.url}: {selector} has no href")
    u = urllib.parse.urljoin(page.url, h)
    q = urllib.parse.urlparse(u).query
    return path_of(u) + (f"?{q}" if q else "")


MODIFIED = re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}\b")
