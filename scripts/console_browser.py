#!/usr/bin/env python3
"""The dead-letter console in a real browser: headless Chromium (Debian's package) clicks and types
through the console of a running replay worker, as an operator would.

Run by IntegrationTests/ConsoleBrowserTests (./scripts/test), which starts the broker, the store,
the reference ERP, an inventory worker and the replay worker with its console, makes the dead
letters, and checks the store and the ERP between the steps. A step ends by writing
STEPS/<name>.json; at a step the test must act on, this script then waits for STEPS/<name>.go.

    console_browser.py --url http://127.0.0.1:PORT --steps DIR --read-token-file F --write-token-file F

Expects pending letters: three retries-exhausted ones of one error (the ERP is up again) and one
invalid one whose quantity is 0. Exit 0 and a last line 'console browser scenario passed', or exit
1 naming the check that failed.
"""

import argparse
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import cdp  # noqa: E402


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


class Scenario:
    def __init__(self, args):
        self.url = args.url.rstrip("/")
        self.steps = args.steps
        self.read_token = open(args.read_token_file).read().strip()
        self.write_token = open(args.write_token_file).read().strip()

    def step(self, name, data, wait=False):
        path = os.path.join(self.steps, name + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump(data, f)
        os.rename(path + ".tmp", path)
        print(f"step {name}: {json.dumps(data)}", flush=True)
        if not wait:
            return
        go = os.path.join(self.steps, name + ".go")
        deadline = time.monotonic() + 120
        while not os.path.exists(go):
            check(time.monotonic() < deadline, f"the test did not let step {name} go on")
            time.sleep(0.05)

    def log_in(self, page, name, token):
        page.goto(self.url + "/login")
        page.type("#name", name)
        page.type("#token", token)
        page.click("#login")

    def group_link(self, reason):
        return f"tr.group[data-reason='{reason}'] a.group-link"

    def run(self, page):
        # Without a session every page leads to the login page; a wrong token is refused.
        page.goto(self.url + "/")
        check(page.path() == "/login", f"an anonymous visit ended at {page.path()}, not /login")
        self.log_in(page, "mallory", "not-the-token-0123456789")
        check(page.status() == 401, f"a wrong token got {page.status()}")
        check("Wrong token" in page.text("#problem"), "no 'Wrong token' on a refused login")

        # The read token: groups with counts, a group, a letter, and no form that changes anything.
        self.log_in(page, "reader", self.read_token)
        check(page.path() == "/", f"the read login ended at {page.path()}")
        counts = dict(zip(page.all("tr.group", "data-reason"), map(int, page.all("tr.group", "data-count"))))
        check(counts == {"retries-exhausted": 3, "invalid": 1}, f"groups {counts}")
        page.click(self.group_link("retries-exhausted"))
        ids = page.all("tr.letter", "data-id")
        check(len(ids) == 3, f"the group shows {ids}")
        check(not page.exists("#replay-shown") and not page.exists("#replay-first"), "a read session sees replay buttons")
        page.click(f"tr.letter[data-id='{ids[0]}'] a")
        check(page.path() == f"/letters/{ids[0]}", f"the letter link led to {page.path()}")
        check(page.exists("#body") and page.exists("#history"), "the letter page lacks its body or history")
        check(not page.exists("#edit-body") and not page.exists("#replay-letter"), "a read session sees edit or replay")
        page.click("#logout")
        check(page.path() == "/login", f"logging out ended at {page.path()}")
        page.goto(self.url + "/")
        check(page.path() == "/login", "the session outlived the logout")

        # The write token: replay one, then the rest of the group, exactly as shown.
        self.log_in(page, "alice", self.write_token)
        page.click(self.group_link("retries-exhausted"))
        shown = page.all("tr.letter", "data-id")
        check(shown == ids, f"the write session's group shows {shown}, the read one showed {ids}")
        page.click("#replay-first")
        check(page.text("#summary").strip() == "Replayed 1, skipped 0.", f"replaying the first: {page.text('#summary')}")
        check(page.all("tr.outcome", "data-id") == shown[:1], "the first replay replayed another letter")
        self.step("first-replayed", {"id": int(shown[0])}, wait=True)

        page.click("#back")
        rest = page.all("tr.letter", "data-id")
        check(rest == shown[1:], f"after the first, the group shows {rest}")
        # The test now makes another letter join the group; the page on screen does not show it.
        self.step("rest-shown", {"ids": [int(i) for i in rest]}, wait=True)
        page.click("#replay-shown")
        check(page.text("#summary").strip() == f"Replayed {len(rest)}, skipped 0.", f"replaying the rest: {page.text('#summary')}")
        check(page.all("tr.outcome", "data-id") == rest, f"replayed {page.all('tr.outcome', 'data-id')}, not {rest}")
        check(set(page.all("tr.outcome", "data-outcome")) == {"replayed"}, "an outcome other than replayed")
        page.click("#back")
        left = page.all("tr.letter", "data-id")
        check(len(left) == 1 and left[0] not in shown, f"after the rest, the group shows {left}")
        self.step("rest-replayed", {"ids": [int(i) for i in rest], "left": [int(i) for i in left]}, wait=True)

        # Edit the invalid letter: a broken body is refused and nothing is stored; a mended one is
        # stored (the old one kept in the history) and replayed.
        page.goto(self.url + "/")
        page.click(self.group_link("invalid"))
        invalid = page.all("tr.letter", "data-id")
        check(len(invalid) == 1, f"the invalid group shows {invalid}")
        page.click(f"tr.letter[data-id='{invalid[0]}'] a")
        body = page.text("#body")
        check(re.search(r'"quantity": 0\b', body), f"the body shown is not the letter's: {body}")
        page.type("#edit-body", '{"schema": "inventory.delta/1", ')
        page.click("#save-body")
        check(page.status() == 422, f"a broken body got {page.status()}")
        check("Not saved" in page.text("#problem"), "no 'Not saved' for a broken body")
        check(re.search(r'"quantity": 0\b', page.text("#body")), "a refused edit changed the body")
        page.type("#edit-body", re.sub(r'"quantity": 0\b', '"quantity": 5', body))
        page.click("#save-body")
        check("Body saved" in page.text("#notice"), "no notice after saving")
        check(re.search(r'"quantity": 5\b', page.text("#body")), "the saved body is not shown")
        history = page.evaluate("Array.from(document.querySelectorAll('tr.history')).map(r => r.children[1].textContent + ' ' + r.children[2].textContent)")
        check(any(h.startswith("edit alice (console on ") for h in history), f"the history lacks alice's edit: {history}")
        page.click("#replay-letter")
        check(page.text("#summary").strip() == "Replayed 1, skipped 0.", f"replaying the edited letter: {page.text('#summary')}")
        self.step("edited-replayed", {"id": int(invalid[0])})
        # The letter as it ends: replayed, its history with the edit and the replay (the screenshot).
        page.goto(f"{self.url}/letters/{invalid[0]}")
        history = page.evaluate("Array.from(document.querySelectorAll('tr.history')).map(r => r.children[1].textContent)")
        check(history == ["failed", "edit", "replay"], f"the letter's history ends as {history}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--steps", required=True)
    parser.add_argument("--read-token-file", required=True)
    parser.add_argument("--write-token-file", required=True)
    parser.add_argument("--screenshot", help="save a PNG of the last page here")
    args = parser.parse_args()
    scenario = Scenario(args)
    with cdp.Browser() as browser:
        page = browser.new_page()
        try:
            scenario.run(page)
        except (Failed, cdp.BrowserError) as error:
            print(f"console browser scenario failed: {error}", file=sys.stderr)
            try:
                print("on " + page.path() + ":\n" + page.evaluate("document.body.innerText")[:3000], file=sys.stderr)
            except Exception:
                pass
            return 1
        finally:
            if args.screenshot:
                data = page.send("Page.captureScreenshot", {"format": "png"})["data"]
                import base64
                with open(args.screenshot, "wb") as f:
                    f.write(base64.b64decode(data))
    print("console browser scenario passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
