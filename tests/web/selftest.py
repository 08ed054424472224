"""Self-test of the browser machinery (browser.py, scenario.py) without Cirrus: a tiny
server on 127.0.0.1 (HTTPS with the given self-signed certificate, as the web front has,
else HTTP) serves a page with a form, a script, a download and a page that opens a
dialog; Debian's chromium, driven by Playwright, clicks, submits, downloads, sends a
Range request with the session's cookie, catches the dialog, and does it all again with
JavaScript off. tests/web_harness.rs runs it in CI, so a broken browser setup shows up
there and not first in the web front's own tests.

Usage: selftest.py OUT_DIR [--cert PEM --key PEM]
"""

import argparse
import base64
import hashlib
import html
import http.server
import os
import secrets
import ssl
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import browser  # noqa: E402  pylint: disable=wrong-import-position
import scenario  # noqa: E402  pylint: disable=wrong-import-position
from scenario import check  # noqa: E402  pylint: disable=wrong-import-position

BLOB = hashlib.shake_256(b"cirrus selftest").digest(1 << 20)
CSRF = secrets.token_hex(32)
CSP = "default-src 'none'; style-src 'self'; script-src 'self'; form-action 'self'"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>self-test</title>
<link rel="stylesheet" href="/style.css"></head><body>
<h1 id="title">Cirrus browser harness</h1><p id="js">JavaScript off</p>
<form id="f" method="post" action="/submit"><input name="name" id="name">
<input type="hidden" name="csrf" value="{csrf}"><button type="submit" id="go">Send</button></form>
<p><a id="download" href="/blob?download=1">download</a></p>
<script src="/app.js"></script></body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    sessions = set()
    secure = False

    def log_message(self, *a):  # quiet: the JSON answer is the output
        pass

    def cookie_name(self):
        # The __Host- prefix needs Secure, which needs HTTPS.
        return "__Host-selftest" if self.secure else "selftest"

    def session(self):
        for part in self.headers.get("Cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == self.cookie_name() and v in self.sessions:
                return v
        return None

    def send(self, status, body, ctype="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's name)
        u = urllib.parse.urlparse(self.path)
        if u.path == "/":
            self.send(200, PAGE.format(csrf=CSRF).encode())
        elif u.path == "/style.css":
            self.send(200, b"body{font-family:sans-serif;margin:2em}", "text/css")
        elif u.path == "/app.js":
            js = b'document.getElementById("js").textContent = "JavaScript on";'
            self.send(200, js, "text/javascript")
        elif u.path == "/alert":
            self.send(200, b'<!doctype html><p>alert</p><script src="/alert.js"></script>')
        elif u.path == "/alert.js":
            self.send(200, b'alert("the trap must see this");', "text/javascript")
        elif u.path == "/done":
            s = self.session()
            if s is None:
                self.send(401, b"<p id='who'>signed out</p>")
            else:
                name = html.escape(self.server.names.get(s, ""))
                self.send(200, f"<p id='who'>Hello {name}</p>".encode())
        elif u.path == "/blob":
            self.blob(u)
        else:
            self.send(404, b"not found")

    def blob(self, u):
        if self.session() is None:
            self.send(401, b"signed out")
            return
        headers = [("Accept-Ranges", "bytes")]
        if "download=1" in u.query:
            headers.append(("Content-Disposition", "attachment; filename=blob.bin"))
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[len("bytes=") :].partition("-")
            a, b = int(a), min(int(b), len(BLOB) - 1)
            headers.append(("Content-Range", f"bytes {a}-{b}/{len(BLOB)}"))
            self.send(206, BLOB[a : b + 1], "application/octet-stream", headers)
        else:
            self.send(200, BLOB, "application/octet-stream", headers)

    def do_POST(self):  # noqa: N802
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if self.path != "/submit" or form.get("csrf", [""])[0] != CSRF:
            self.send(403, b"<p>refused</p>")
            return
        s = secrets.token_hex(16)
        self.sessions.add(s)
        self.server.names[s] = form.get("name", [""])[0]
        flags = "; Secure" if self.secure else ""
        cookie = f"{self.cookie_name()}={s}; Path=/; HttpOnly; SameSite=Strict{flags}"
        self.send(303, b"", headers=[("Location", "/done"), ("Set-Cookie", cookie)])


def serve(cert, key):
    """The server on a free port of 127.0.0.1, in a thread; its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.names = {}
    scheme = "http"
    if cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        Handler.secure = True
        scheme = "https"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"{scheme}://127.0.0.1:{httpd.server_address[1]}"


def with_js(b, base, out, result):
    ctx = b.context(javascript=True)
    page = browser.page_of(ctx)
    result["page"] = page
    trap = browser.DialogTrap(page)
    page.goto(base + "/")
    check(page.inner_text("#js") == "JavaScript on", "the page's script did not run")
    shots = [browser.screenshot(page, out, "selftest-form")]
    page.fill("#name", "<b>tester</b>")
    with page.expect_navigation():
        page.click("#go")
    check(page.url == base + "/done", f"the form led to {page.url}")
    check(page.inner_text("#who") == "Hello <b>tester</b>", "the name came back wrong")
    shots.append(browser.screenshot(page, out, "selftest-done"))
    cookies = ctx.cookies()
    check(len(cookies) == 1 and cookies[0]["httpOnly"], f"cookies: {cookies}")
    # Playwright's request context sends the context's cookies (the Range check of the
    # web tests relies on it).
    r = ctx.request.get(base + "/blob", headers={"Range": "bytes=1000-1999"})
    check(r.status == 206, f"a Range request got {r.status}")
    check(r.body() == BLOB[1000:2000], "a Range request got the wrong bytes")
    r = ctx.request.post(base + "/submit", form={"name": "x"})
    check(r.status == 403, f"a POST without its token got {r.status}")
    page.goto(base + "/")
    got = download(page, out, "selftest-js.bin")
    page.goto(base + "/alert")
    check(len(trap.fired) == 1, f"the dialog trap saw {trap.fired}")
    result["javascript_on"] = {"download_sha256": got}
    return cookies, shots


def download(page, out, name):
    with page.expect_download() as dl:
        page.click("#download")
    path = os.path.join(out, name)
    dl.value.save_as(path)
    digest = scenario.sha256_file(path)
    check(digest == hashlib.sha256(BLOB).hexdigest(), f"{name}: the download differs")
    os.remove(path)
    return digest


def without_js(b, base, out, cookies, result):
    ctx = b.context(javascript=False, cookies=cookies, viewport=browser.PHONE)
    page = browser.page_of(ctx)
    result["page"] = page
    trap = browser.DialogTrap(page)
    page.goto(base + "/")
    check(page.inner_text("#js") == "JavaScript off", "a script ran with JavaScript off")
    shot = browser.screenshot(page, out, "selftest-nojs-phone")
    got = download(page, out, "selftest-nojs.bin")
    page.goto(base + "/alert")
    trap.check()
    page.goto(base + "/")
    page.fill("#name", "no script")
    with page.expect_navigation():
        page.click("#go")
    check(page.inner_text("#who") == "Hello no script", "the form failed without JS")
    result["javascript_off"] = {"download_sha256": got}
    return shot


def check_totp():
    """scenario.totp_now, which --totp-uri uses, against RFC 6238's SHA-1 vectors."""
    secret = base64.b32encode(b"12345678901234567890").decode().rstrip("=")
    uri = f"otpauth://totp/t?secret={secret}&digits=8&period=30"
    for at, want in ((59, "94287082"), (1111111109, "07081804"), (20000000000, "65353130")):
        got = scenario.totp_now(uri, at=at)
        check(got == want, f"TOTP at {at}: {got}, not {want}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--cert")
    p.add_argument("--key")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    base = serve(a.cert, a.key)

    def body(_args, result, b):
        check_totp()
        result["url"] = base
        result["chromium"] = browser.CHROMIUM
        cookies, shots = with_js(b, base, a.out, result)
        shots.append(without_js(b, base, a.out, cookies, result))
        result["screenshots"] = shots

    scenario.run("selftest", body, a)


if __name__ == "__main__":
    main()
