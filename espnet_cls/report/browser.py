"""Drive a headless Chromium through the DevTools protocol over a pipe (no websocket needed).

Chromium started with ``--remote-debugging-pipe`` reads JSON commands, each ended by a NUL
byte, from its file descriptor 3 and writes replies and events the same way to descriptor 4.
:class:`Browser` starts it with a fresh profile and the network-quiet flags, opens pages,
evaluates JavaScript, collects console errors, exceptions, failed loads and every requested
URL, and takes screenshots. Used by the report's tests and by ``--screenshot``.

    with Browser() as b:
        page = b.open(Path("exp/cls_X/report.html").resolve().as_uri())
        page.evaluate("document.title")
        page.screenshot("report.png")
        page.console_errors       # [] for a clean page
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional, Union

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-default-browser-check",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe"]


class BrowserError(RuntimeError):
    """Chromium is missing, died, or answered a command with an error."""


def find_chromium() -> Optional[str]:
    """Path of a Chromium/Chrome executable on PATH (``$CHROMIUM`` first), or None."""
    env = os.environ.get("CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    for name in CHROMIUM_NAMES:
        p = shutil.which(name)
        if p:
            return p
    return None


class Page:
    """One tab, attached through a flat session; collects what the page reports."""

    def __init__(self, browser: Browser, session_id: str, target_id: str):
        self.browser = browser
        self.session_id = session_id
        self.target_id = target_id
        self.console_errors: list[str] = []  # console.error, uncaught exceptions, log entries of level error
        self.requests: list[str] = []  # every URL the page asked for
        self.failed: list[str] = []  # loads that failed

    def send(self, method: str, params: Optional[dict[str, Any]] = None, timeout: float = 30.0) -> dict[str, Any]:
        return self.browser.send(method, params, session_id=self.session_id, timeout=timeout)

    def _on_event(self, msg: dict[str, Any]) -> None:
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console_errors.append(str((d.get("exception") or {}).get("description") or d.get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.console_errors.append(f"{e.get('text')} {e.get('url', '')}".strip())
        elif m == "Network.requestWillBeSent":
            self.requests.append(p.get("request", {}).get("url", ""))
        elif m == "Network.loadingFailed":
            if p.get("type") == "Media" and p.get("errorText") == "net::ERR_ABORTED":
                return  # an <audio> element cancels its own range requests once it has what it needs
            self.failed.append(f"{p.get('errorText')} (request {p.get('requestId')})")

    def evaluate(self, expression: str, await_promise: bool = True, timeout: float = 30.0) -> Any:
        """Value of a JavaScript expression in the page (JSON-serialisable); BrowserError if it throws."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": await_promise}, timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise BrowserError(f"evaluate failed: {(d.get('exception') or {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of the first element matching ``selector``."""
        box = self.evaluate(
            f"(function(){{var e=document.querySelector({json.dumps(selector)});if(!e)return null;"
            "e.scrollIntoView({block:'center'});var r=e.getBoundingClientRect();"
            "return [r.left+r.width/2, r.top+r.height/2];})()")
        if box is None:
            raise BrowserError(f"no element matches {selector!r}")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def screenshot(self, path: Union[str, Path], full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or the whole page) at ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            m = self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params, timeout=60)["data"]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out


class Browser:
    """A headless Chromium with a fresh ``--user-data-dir``, spoken to over the debugging pipe."""

    def __init__(self, executable: Optional[str] = None, width: int = 1280, height: int = 1500,
                 extra_flags: tuple[str, ...] = ()):
        exe = executable or find_chromium()
        if exe is None:
            raise BrowserError("chromium not found (Debian: apt-get install chromium)")
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="espnet_cls_chromium_")
        self._log = open(os.path.join(self._profile, "chromium.log"), "wb")  # noqa: SIM115
        cmd_r, cmd_w = os.pipe()  # we write commands to cmd_w, chromium reads fd 3
        out_r, out_w = os.pipe()  # chromium writes fd 4, we read out_r
        argv = [exe, *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}", *extra_flags,
                "about:blank"]
        actions = [(os.POSIX_SPAWN_DUP2, cmd_r, 3), (os.POSIX_SPAWN_DUP2, out_w, 4),
                   (os.POSIX_SPAWN_DUP2, self._log.fileno(), 1), (os.POSIX_SPAWN_DUP2, self._log.fileno(), 2),
                   (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
        try:
            self.pid = os.posix_spawn(exe, argv, dict(os.environ), file_actions=actions, setsid=True)
        finally:
            os.close(cmd_r)
            os.close(out_w)
        self._w = os.fdopen(cmd_w, "wb", buffering=0)
        self._r = os.fdopen(out_r, "rb", buffering=0)
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies: dict[int, queue.Queue] = {}
        self._events: queue.Queue = queue.Queue()
        self._pages: dict[str, Page] = {}
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        try:
            self.version = self.send("Browser.getVersion", timeout=60).get("product", "?")
        except BrowserError:
            log = Path(self._profile, "chromium.log").read_text(errors="replace")[-2000:]
            self.close()
            raise BrowserError(f"chromium did not start ({exe}); its output:\n{log}") from None

    # -- transport
    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._r.read(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw.decode("utf-8"))
                if "id" in msg:
                    q = self._replies.get(msg["id"])
                    if q is not None:
                        q.put(msg)
                else:
                    page = self._pages.get(msg.get("sessionId", ""))
                    if page is not None:
                        page._on_event(msg)
                    self._events.put(msg)
        for q in list(self._replies.values()):
            q.put({"error": {"message": "chromium closed the debugging pipe (see its log in the profile dir)"}})

    def send(self, method: str, params: Optional[dict[str, Any]] = None, session_id: Optional[str] = None,
             timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and wait for its reply's ``result``; BrowserError on an error reply or timeout."""
        with self._lock:
            self._next_id += 1
            mid = self._next_id
            q: queue.Queue = queue.Queue()
            self._replies[mid] = q
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session_id:
            msg["sessionId"] = session_id
        try:
            self._w.write(json.dumps(msg).encode("utf-8") + b"\0")
        except OSError as e:
            raise BrowserError(f"{method}: cannot write to chromium: {e}") from None
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"{method}: no reply in {timeout} s") from None
        finally:
            self._replies.pop(mid, None)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_event(self, method: str, session_id: Optional[str] = None, timeout: float = 30.0) -> dict[str, Any]:
        """The params of the next event ``method`` (of ``session_id`` if given)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no {method} event in {timeout} s")
            try:
                msg = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if msg.get("method") == method and (session_id is None or msg.get("sessionId") == session_id):
                return msg.get("params", {})

    # -- pages
    def open(self, url: str, timeout: float = 60.0) -> Page:
        """A new tab showing ``url``, after its load event; console/network collection on from the start."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, sid, target)
        self._pages[sid] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        while not self._events.empty():  # drop events from before the navigation
            self._events.get_nowait()
        nav = page.send("Page.navigate", {"url": url}, timeout=timeout)
        if nav.get("errorText"):
            raise BrowserError(f"cannot open {url}: {nav['errorText']}")
        self.wait_event("Page.loadEventFired", sid, timeout=timeout)
        return page

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.send("Browser.close", timeout=10)
        except BrowserError:
            pass
        for _ in range(100):
            pid, _status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        for f in (self._w, self._r, self._log):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 1500) -> Path:
    """Render ``html`` (a file) in headless Chromium and save a PNG (``height=0``: the full page)."""
    with Browser(width=width, height=height or 1500) as b:
        page = b.open(html.resolve().as_uri())
        page.evaluate("document.fonts.ready.then(function(){return true;})")
        return page.screenshot(png, full_page=height == 0)
