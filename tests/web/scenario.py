"""What every browser scenario of tests/web/ shares: its inputs (argv, else environment),
its answer (one JSON object on stdout, exit 0; or a clear message on stderr, a JSON
object with "ok": false on stdout, a screenshot of the page it was on, exit 1), and small
helpers (TOTP codes, paths as URLs, digests, the session's cookies in a file).

Inputs, each `--flag` or its environment variable:
  --url            CIRRUS_WEB_URL            the web front, https://IP:PORT
  --account        CIRRUS_WEB_ACCOUNT        the account name
  --password-file  CIRRUS_WEB_PASSWORD_FILE  the web password (first line)
  --totp           CIRRUS_WEB_TOTP           a TOTP code the server has not seen yet
  --totp-uri       CIRRUS_WEB_TOTP_URI       or the otpauth:// URI to compute the current code
  --out            CIRRUS_WEB_OUT            output dir (screenshots, downloads, session)
  --spec           CIRRUS_WEB_SPEC           JSON file: what the drive holds (tests/web.rs)
  --state          CIRRUS_WEB_STATE          cookies of a signed-in session (default OUT/session.json)
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import time
import traceback
import urllib.parse

INPUTS = [
    ("url", "CIRRUS_WEB_URL"),
    ("account", "CIRRUS_WEB_ACCOUNT"),
    ("password_file", "CIRRUS_WEB_PASSWORD_FILE"),
    ("totp", "CIRRUS_WEB_TOTP"),
    ("totp_uri", "CIRRUS_WEB_TOTP_URI"),
    ("out", "CIRRUS_WEB_OUT"),
    ("spec", "CIRRUS_WEB_SPEC"),
    ("state", "CIRRUS_WEB_STATE"),
]


class Failure(Exception):
    """A scenario's check that did not hold; its message says what was expected."""


def check(cond, message):
    if not cond:
        raise Failure(message)


def parse_args(description, extra=None):
    """The common inputs (flags, else environment), plus `extra(parser)` flags."""
    p = argparse.ArgumentParser(description=description)
    for name, env in INPUTS:
        p.add_argument("--" + name.replace("_", "-"), default=os.environ.get(env))
    if extra:
        extra(p)
    a = p.parse_args()
    if a.out is None:
        p.error("--out (or CIRRUS_WEB_OUT) is required")
    os.makedirs(a.out, exist_ok=True)
    if a.state is None:
        a.state = os.path.join(a.out, "session.json")
    if a.url is not None:
        a.url = a.url.rstrip("/")
    return a


def need(args, *names):
    for n in names:
        if getattr(args, n) is None:
            raise Failure(f"missing input --{n.replace('_', '-')}")


def load_spec(args):
    need(args, "spec")
    with open(args.spec, encoding="utf-8") as f:
        return json.load(f)


def web_password(args):
    need(args, "password_file")
    with open(args.password_file, encoding="utf-8") as f:
        return f.readline().rstrip("\n")


def totp_code(args):
    """--totp as given, else the current code of --totp-uri."""
    if args.totp:
        return args.totp
    need(args, "totp_uri")
    return totp_now(args.totp_uri)


def totp_now(uri, at=None):
    """RFC 6238 code of an otpauth:// URI at time `at` (default now)."""
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    secret = q["secret"][0].upper()
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    period = int(q.get("period", ["30"])[0])
    digits = int(q.get("digits", ["6"])[0])
    algo = q.get("algorithm", ["SHA1"])[0].lower()
    return hotp(key, int((time.time() if at is None else at) // period), digits, algo)


def hotp(key, counter, digits=6, algo="sha1"):
    mac = hmac.new(key, struct.pack(">Q", counter), algo).digest()
    off = mac[-1] & 0x0F
    n = struct.unpack(">I", mac[off : off + 4])[0] & 0x7FFFFFFF
    return str(n % 10**digits).zfill(digits)


def quote_path(path):
    """A drive path ("docs/a b.txt") as URL path segments, each percent-encoded."""
    return "/".join(urllib.parse.quote(s, safe="") for s in path.split("/") if s)


def drive_url(base, category, path="", folder=False):
    """/drive/CAT/PATH (a file page) or /drive/CAT/PATH/ (a folder)."""
    u = f"{base}/drive/{quote_path(category)}/"
    if path:
        u += quote_path(path) + ("/" if folder else "")
    return u


def file_url(base, category, path, download=False):
    return f"{base}/file/{quote_path(category)}/{quote_path(path)}" + (
        "?download=1" if download else ""
    )


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def save_session(ctx, args):
    with open(args.state, "w", encoding="utf-8") as f:
        json.dump(ctx.cookies(), f)


def load_session(args):
    try:
        with open(args.state, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise Failure(f"no signed-in session in {args.state}: run signin.py first") from None


def run(name, body, args):
    """Runs `body(args, result, browser)` with a fresh `browser.Browser`: `result` is the
    dict the body fills, and `result["page"]` the page to photograph if it fails (taken
    before the browser closes). Prints the JSON answer and exits."""
    from browser import Browser  # pylint: disable=import-outside-toplevel

    result = {"scenario": name}
    try:
        with Browser(args.out) as b:
            try:
                body(args, result, b)
            except Exception:
                _photograph_failure(name, result, args)
                raise
    except Exception as e:  # pylint: disable=broad-except
        kind = "" if isinstance(e, Failure) else f"{type(e).__name__}: "
        msg = f"{name}: {kind}{e}"
        print(msg, file=sys.stderr)
        if not isinstance(e, Failure):
            traceback.print_exc(file=sys.stderr)
        result.update(ok=False, error=msg)
        print(json.dumps(result, default=str))
        sys.exit(1)
    result.pop("page", None)
    result["ok"] = True
    print(json.dumps(result, default=str))


def _photograph_failure(name, result, args):
    page = result.pop("page", None)
    if page is None:
        return
    shot = os.path.join(args.out, f"failure-{name}.png")
    try:
        page.screenshot(path=shot, full_page=True)
        result["failure_screenshot"] = shot
    except Exception:  # pylint: disable=broad-except
        pass  # the browser is gone: the message must do
