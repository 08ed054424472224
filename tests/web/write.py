"""Scenario: changes from the web, signed in (--state). In the spec's "write" folder of
a standard category: two files uploaded at once through the page's file picker (one of
several 1 MiB parts) and one dropped on the page, a new folder made with the page's
form, a file renamed and another moved into the new folder with their rows' "Rename or
move" forms, and the spec's victim file deleted with its row's button. Each shows at
once: the uploads, the folder and the renamed and moved files listed as waiting for a
device where they go, the moved, renamed and deleted rows gone from where they were,
and an uploaded and a renamed file read back byte for byte before any device took them
in. Refused: a form without the session's token, a rename onto a taken name, and any
change to an end-to-end category. Screenshot: the folder with its waiting changes. The
uploaded files stay in --out for the caller to compare with what the device gets.

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
from scenario import check, drive_url, file_url, quote_path  # noqa: E402


def make_uploads(out, spec):
    """The files to upload, written under --out: name -> (path, sha256)."""
    files = {}
    for name, size in spec["write"]["uploads"].items():
        data = hashlib.shake_256(name.encode()).digest(size)
        path = os.path.join(out, "upload-" + str(len(files)))
        os.makedirs(path, exist_ok=True)
        path = os.path.join(path, name)
        with open(path, "wb") as f:
            f.write(data)
        files[name] = (path, hashlib.sha256(data).hexdigest())
    return files


def body(args, result, b):
    scenario.need(args, "url")
    spec = scenario.load_spec(args)
    w = spec["write"]
    cat, folder = spec["category"], w["folder"]
    ctx = b.context(cookies=scenario.load_session(args))
    page = browser.page_of(ctx)
    result["page"] = page
    here = drive_url(args.url, cat, folder, folder=True)
    page.goto(here)
    check(steps.path_of(page.url) == steps.path_of(here), f"at {page.url}")
    check(page.locator("form#upload").count() == 1, "no upload form in a standard category")
    token = page.locator("form#upload input[name=csrf]").get_attribute("value")

    files = make_uploads(args.out, spec)
    page.set_input_files("#files", [p for p, _ in files.values()])
    with page.expect_navigation():
        page.locator("form#upload [type=submit]").click()
    check(steps.path_of(page.url) == steps.path_of(here), f"after the upload, at {page.url}")

    # A file dropped on the page (upload.js: the drop fills the picker and posts it).
    drop = w["dropped"]
    dt = page.evaluate_handle(
        """([name, text]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, {type: "text/plain"}));
            return dt;
        }""",
        [drop["name"], drop["content"]],
    )
    with page.expect_navigation():
        page.dispatch_event("body", "drop", {"dataTransfer": dt})
    check(steps.path_of(page.url) == steps.path_of(here), f"after the drop, at {page.url}")
    files[drop["name"]] = (None, hashlib.sha256(drop["content"].encode()).hexdigest())

    page.fill("#newname", w["new_folder"])
    with page.expect_navigation():
        page.locator("form#mkdir [type=submit]").click()

    victim = steps.entry_row(page, w["victim"])
    check(victim.count() == 1, f"no row for {w['victim']!r} to delete")
    with page.expect_navigation():
        victim.locator("form.delete [type=submit]").click()

    rn, mv = w["rename"], w["move"]
    for name, field, value in [(rn["from"], "name", rn["to"]),
                               (mv["name"], "folder", mv["folder"])]:
        row = steps.entry_row(page, name)
        check(row.count() == 1, f"no row for {name!r} to rename or move")
        row.locator("details.rename summary").click()
        row.locator(f"details.rename input[name={field}]").fill(value)
        with page.expect_navigation():
            row.locator("details.rename [type=submit]").click()
        check(steps.path_of(page.url) == steps.path_of(here), f"after a move, at {page.url}")

    listed = dict(steps.entries(page))
    waiting = {r.get_attribute("data-name")
               for r in page.locator("#listing tr.entry[data-pending='1']").all()}
    for name in list(files) + [w["new_folder"], rn["to"]]:
        check(name in listed, f"{name!r} is not listed after the change: {listed}")
        check(name in waiting, f"{name!r} is not shown as waiting for a device")
    check(listed[w["new_folder"]] == "dir", "the new folder is not listed as a folder")
    for name in [w["victim"], rn["from"], mv["name"]]:
        check(name not in listed, f"{name!r} is still listed after its change")
    check(page.locator("#waiting").count() == 1, "the page does not count the waiting changes")
    shot = browser.screenshot(page, args.out, "folder-changes")

    # Read after write: an upload no device took in yet, read back whole.
    big = max(w["uploads"], key=w["uploads"].get)
    r = ctx.request.get(file_url(args.url, cat, f"{folder}/{big}"), max_redirects=0)
    check(r.status == 200, f"the pending upload {big!r} got {r.status}")
    check(hashlib.sha256(r.body()).hexdigest() == files[big][1],
          "the pending upload read back is not what was uploaded")

    # The renamed file under its new name, and the moved one in the new folder.
    r = ctx.request.get(file_url(args.url, cat, f"{folder}/{rn['to']}"), max_redirects=0)
    check(r.status == 200 and r.text() == rn["content"],
          f"the renamed file read back got {r.status}")
    page.goto(drive_url(args.url, cat, mv["folder"].strip("/"), folder=True))
    moved = dict(steps.entries(page))
    check(moved.get(mv["name"]) == "file", f"the moved file is not in its new folder: {moved}")
    r = ctx.request.get(file_url(args.url, cat, f"{mv['folder'].strip('/')}/{mv['name']}"),
                        max_redirects=0)
    check(r.status == 200 and r.text() == mv["content"],
          f"the moved file read back got {r.status}")
    page.goto(here)

    refused = {}
    r = ctx.request.post(f"{args.url}/rename/{quote_path(cat)}/"
                         + quote_path(f"{folder}/{rn['to']}"),
                         form={"csrf": token, "name": big, "folder": "/" + folder},
                         max_redirects=0)
    refused["rename onto a taken name"] = r.status
    check(r.status == 403, f"a rename onto a taken name got {r.status}, not 403")
    r = ctx.request.post(args.url + steps.path_of(here).replace("/drive/", "/mkdir/", 1),
                         form={"name": "no-token"}, max_redirects=0)
    refused["mkdir without csrf"] = r.status
    check(r.status == 403, f"a new folder without the token got {r.status}, not 403")
    e2e = w["e2e_category"]
    r = ctx.request.post(f"{args.url}/mkdir/{e2e}/", form={"csrf": token, "name": "x"},
                         max_redirects=0)
    refused["mkdir in e2e"] = r.status
    check(r.status == 403, f"a new folder in {e2e} got {r.status}, not 403")
    page.goto(here)
    check("no-token" not in dict(steps.entries(page)), "the refused folder was made")

    result.update(
        uploaded={n: {"path": p, "sha256": h} for n, (p, h) in files.items()},
        waiting=sorted(waiting),
        refused=refused,
        screenshots=[shot],
    )


if __name__ == "__main__":
    a = scenario.parse_args(__doc__.splitlines()[0])
    scenario.run("write", body, a)
