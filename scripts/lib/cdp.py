"""A small driver for headless Chromium over the DevTools protocol, standard library only.

Chromium is started with --remote-debugging-pipe: commands go to its fd 3 and answers come from
its fd 4, each a JSON message ended by a NUL byte (no websocket, no port). Clicks are real mouse
events at the element's centre, typing is real text input into the focused element, so forms
are submitted by the browser as a person's would be (with its cookies, its Origin header).

    with Browser() as browser:
        page = browser.new_page()
        page.goto("http://127.0.0.1:8088/")
        page.type("#token", "secret")
        page.click("#login")          # waits for the next page to load
        print(page.text("#notice"))
"""

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, executable=None, timeout=30.0):
        self.executable = executable or shutil.which("chromium") or "/usr/bin/chromium"
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self._events = []

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="whsync-chromium-")
        # Chromium's own messages go to a file: a pipe nobody reads could fill and stall it.
        self._log = open(os.path.join(self.profile, "chromium.log"), "w+b")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds():
            # Chromium reads commands on fd 3 and writes answers on fd 4 (through fds above 9
            # first: either pipe end may itself be 3 or 4).
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [
                self.executable, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,1000", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--password-store=basic",
                "--user-data-dir=" + self.profile, "about:blank",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            preexec_fn=wire_fds, close_fds=False,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        return self

    def __exit__(self, *exc):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
        return False

    # The protocol: one command, its answer; events are kept for whoever waits for them.

    def send(self, method, params=None, session=None, timeout=None):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for reply in self._read(deadline):
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise BrowserError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                if "method" in reply:
                    self._events.append(reply)

    def _read(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError("Chromium did not answer in time" + self._stderr_tail())
        ready, _, _ = select.select([self._from_chrome], [], [], remaining)
        if not ready:
            return []
        chunk = os.read(self._from_chrome, 1 << 20)
        if not chunk:
            raise BrowserError("Chromium closed the pipe" + self._stderr_tail())
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]

    def _stderr_tail(self):
        self._log.flush()
        self._log.seek(0)
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return f" (Chromium {state}): " + self._log.read().decode(errors="replace")[-2000:]

    def new_page(self):
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.send("Network.enable")
        return page


class Page:
    def __init__(self, browser, session):
        self.browser = browser
        self.session = session
        self._loads = 0

    def send(self, method, params=None):
        return self.browser.send(method, params, session=self.session)

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    # Navigation: a page counts as loaded when a new document is complete (the marker set on the
    # old one is gone), so a form submission's redirect is waited out too.

    def _mark(self):
        self.evaluate("window.__whsyncOld = true")

    def _wait_for_new_document(self):
        deadline = time.monotonic() + self.browser.timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate("document.readyState === 'complete' && window.__whsyncOld === undefined"):
                    return
            except BrowserError:
                pass  # the context is being replaced
            time.sleep(0.05)
        raise BrowserError("the next page did not load; at " + str(self.evaluate("location.href")))

    def goto(self, url):
        self._mark()
        self.send("Page.navigate", {"url": url})
        self._wait_for_new_document()

    def status(self):
        """The HTTP status of the document shown (from the Navigation Timing API)."""
        return self.evaluate("performance.getEntriesByType('navigation')[0].responseStatus")

    def path(self):
        return self.evaluate("location.pathname + location.search")

    def exists(self, selector):
        return self.evaluate(f"document.querySelector({json.dumps(selector)}) !== null")

    def text(self, selector):
        value = self.evaluate(f"(e => e && e.textContent)(document.querySelector({json.dumps(selector)}))")
        if value is None:
            raise BrowserError(f"no element {selector} on {self.path()}")
        return value

    def all(self, selector, attribute):
        return self.evaluate(
            f"Array.from(document.querySelectorAll({json.dumps(selector)})).map(e => e.getAttribute({json.dumps(attribute)}))")

    def _centre(self, selector):
        box = self.evaluate(
            f"""(e => {{ if (!e) return null; e.scrollIntoView({{block: 'center'}});
                const r = e.getClientRects()[0]; return [r.x + r.width / 2, r.y + r.height / 2]; }})
                (document.querySelector({json.dumps(selector)}))""")
        if box is None:
            raise BrowserError(f"no element {selector} to click on {self.path()}")
        return box

    def click(self, selector, navigates=True):
        """A left click with the mouse at the centre of the element's first box (a link that wraps
        has one per line, and the middle of their union may be between them); waits for the next
        page."""
        x, y = self._centre(selector)
        if navigates:
            self._mark()
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})
        if navigates:
            try:
                self._wait_for_new_document()
            except BrowserError as error:
                hit = self.evaluate(f"(e => e && e.outerHTML.slice(0, 200))(document.elementFromPoint({x}, {y}))")
                raise BrowserError(f"{error}; clicked {selector} at ({x:.0f}, {y:.0f}), where the page has {hit}")

    def type(self, selector, text):
        """Replaces the field's content with `text`, typed as text input into the focused field."""
        self.evaluate(f"(e => {{ e.focus(); e.select(); }})(document.querySelector({json.dumps(selector)}))")
        self.send("Input.insertText", {"text": text})
