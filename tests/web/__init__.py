"""Browser tests of the web front (issue 12): Python scenarios driving Debian's chromium
through Playwright, run by tests/web.rs (tests/common/web.rs) against a real `cirrus
serve`; tests/web_harness.rs checks the machinery itself with selftest.py. Each script
runs on its own (`python3 tests/web/NAME.py --help`); browser.py launches the browser,
scenario.py holds the inputs, answers and helpers they share."""
