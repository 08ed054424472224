"""Debian's chromium, driven by Playwright for Python, for the web front's browser tests.

Playwright's own browser download is never used (`playwright install` is never run): the
browser is the Debian package, /usr/bin/chromium (CIRRUS_CHROMIUM overrides), which
scripts/setup-test-deps installs with Playwright itself. Every context is a headless
browser of its own on a fresh, temporary user-data-dir, so nothing (cookies, cache,
downloads) leaks from one context or one run into another; a context accepts the web
front's self-signed certificate.
"""

import os
import shutil
import tempfile

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CIRRUS_CHROMIUM") or "/usr/bin/chromium"

# Headless on loopback, as root in CI: no sandbox (root cannot use it), no GPU, and no
# traffic of the browser's own (updates, sync, QUIC probes) beside the test's.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

# Generous: CI has two cores shared with the server, the mount and SeaweedFS. The
# deadline only bounds a failure.
TIMEOUT_MS = 90_000


class Browser:
    """One Playwright driver; each `context()` launches a headless chromium on a fresh
    profile. Use as a context manager: leaving it closes every browser and removes the
    profiles."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self._pw = None
        self._contexts = []
        self._profiles = []

    def __enter__(self):
        if not os.access(CHROMIUM, os.X_OK):
            raise RuntimeError(
                f"no browser at {CHROMIUM}: run scripts/setup-test-deps (it installs "
                "Debian's chromium) or set CIRRUS_CHROMIUM"
            )
        os.makedirs(self.out_dir, exist_ok=True)
        self._pw = sync_playwright().start()
        return self

    def __exit__(self, *exc):
        for ctx in self._contexts:
            try:
                ctx.close()
            except Exception:  # pylint: disable=broad-except
                pass  # a browser that already died: nothing left to close
        if self._pw is not None:
            self._pw.stop()
        for p in self._profiles:
            shutil.rmtree(p, ignore_errors=True)
        return False

    def context(self, javascript=True, cookies=None, viewport=None):
        """A new browser on a fresh user-data-dir, JavaScript on or off, with `cookies`
        (a list as `BrowserContext.cookies()` returns it) added: how a scenario takes
        over the session another one signed in."""
        profile = tempfile.mkdtemp(prefix="cirrus-web-profile-")
        self._profiles.append(profile)
        downloads = os.path.join(profile, "downloads")
        ctx = self._pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            ignore_https_errors=True,
            java_script_enabled=javascript,
            accept_downloads=True,
            downloads_path=downloads,
            viewport=viewport or DESKTOP,
        )
        self._contexts.append(ctx)
        ctx.set_default_timeout(TIMEOUT_MS)
        ctx.set_default_navigation_timeout(TIMEOUT_MS)
        if cookies:
            ctx.add_cookies(cookies)
        return ctx


def page_of(ctx):
    """The context's page: a persistent context opens with one."""
    return ctx.pages[0] if ctx.pages else ctx.new_page()


def screenshot(page, out_dir, name):
    """Saves the whole page as OUT/NAME.png, for a person to look at; returns the path."""
    path = os.path.join(out_dir, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    return path


class DialogTrap:
    """Records every JavaScript dialog (alert, confirm, prompt) a page opens, and
    dismisses it: a page that runs a file name as script fails the test instead of
    hanging it. `check()` raises when one fired."""

    def __init__(self, page):
        self.fired = []
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog):
        self.fired.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def check(self):
        if self.fired:
            raise AssertionError(f"a page opened a JavaScript dialog: {self.fired}")
