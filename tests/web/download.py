"""Scenario: a file page and its bytes, signed in (--state). The big file's page links
#download to /file/CAT/PATH?download=1; clicking it downloads the whole file through
the browser (size and SHA-256 as the spec says); a Range request with the session's
cookie gets 206, the right Content-Range and exactly those bytes, and a range past the
end gets 416; a text file has a #preview link and is served inline as text/plain;
charset=utf-8. Screenshots: the file page. The download stays in --out for the caller
to compare (tests/web.rs checks its BLAKE3 against what the device wrote).

Inputs: --url --out --state --spec.
"""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
import browser  # noqa: E402
import scenario  # noqa: E402
import steps  # noqa: E402
from scenario import check, drive_url, file_url  # noqa: E402


def check_range(ctx, base, spec, downloaded):
    cat, big, rng = spec["category"], spec["big"], spec["range"]
    url = file_url(base, cat, big["path"])
    a, z = rng["start"], rng["end"]
    r = ctx.request.get(url, headers={"Range": f"bytes={a}-{z}"}, max_redirects=0)
    check(r.status == 206, f"Range bytes={a}-{z} got {r.status}, not 206")
    want_cr = f"bytes {a}-{z}/{big['size']}"
    check(r.headers.get("content-range") == want_cr,
          f"Content-Range {r.headers.get('content-range')!r}, not {want_cr!r}")
    got = r.body()
    check(len(got) == z - a + 1, f"the range has {len(got)} bytes, not {z - a + 1}")
    digest = hashlib.sha256(got).hexdigest()
    check(digest == rng["sha256"], "the range's bytes are not the file's")
    with open(downloaded, "rb") as f:
        f.seek(a)
        check(f.read(z - a + 1) == got, "the range differs from the downloaded file")
    r2 = ctx.request.get(url, headers={"Range": f"bytes={big['size'] + 10}-{big['size'] + 20}"},
                         max_redirects=0)
    check(r2.status == 416, f"a range past the end got {r2.status}, not 416")
    head = ctx.request.get(url, headers={"Range": "bytes=0-0"}, max_redirects=0)
    check(head.headers.get("accept-ranges") == "bytes", "no Accept-Ranges: bytes")
    return {"status": r.status, "content_range": want_cr, "sha256": digest, "past_end": r2.status}


def check_preview(page, ctx, base, spec):
    cat, text = spec["category"], spec["text"]
    page.goto(drive_url(base, cat, text["path"]))
    check(page.locator("#preview").count() == 1, f"{text['path']}: no #preview link")
    check(steps.href_of(page, "#preview") == steps.file_link(base, cat, text["path"]),
          f"#preview links to {steps.href_of(page, '#preview')}")
    r = ctx.request.get(file_url(base, cat, text["path"]), max_redirects=0)
    check(r.status == 200, f"GET of the text file: {r.status}")
    ctype = r.headers.get("content-type", "").replace(" ", "").lower()
    check(ctype == "text/plain;charset=utf-8", f"text served as {ctype!r}")
    check("attachment" not in r.headers.get("content-disposition", ""), "text not inline")
    check(r.text() == text["content"], "the text file's content differs")
    return ctype


def body(args, result, b):
    scenario.need(args, "url")
    spec = scenario.load_spec(args)
    ctx = b.context(cookies=scenario.load_session(args))
    page = browser.page_of(ctx)
    result["page"] = page
    trap = browser.DialogTrap(page)
    cat, big = spec["category"], spec["big"]
    r = page.goto(drive_url(args.url, cat, big["path"]))
    check(r.status == 200, f"the file page got {r.status}")
    steps.check_security_headers(r, "the file page")
    want = steps.file_link(args.url, cat, big["path"], download_link=True)
    check(steps.href_of(page, "#download") == want,
          f"#download links to {steps.href_of(page, '#download')}, not {want}")
    shot = browser.screenshot(page, args.out, "file")
    name = big["path"].split("/")[-1]
    got = steps.download(page, args.out, "download-" + name, big["size"], big["sha256"])
    check(got["suggested"] == name, f"the download is named {got['suggested']!r}")
    result["download"] = got
    result["range"] = check_range(ctx, args.url, spec, got["path"])
    result["preview_type"] = check_preview(page, ctx, args.url, spec)
    trap.check()
    result["screenshots"] = [shot]


if __name__ == "__main__":
    a = scenario.parse_args(__doc__.splitlines()[0])
    scenario.run("download", body, a)
