"""Open an HTML file in headless Chromium over the DevTools protocol, with no extra package.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol commands from file
descriptor 3 and writes replies and events to descriptor 4, as NUL-terminated JSON messages
(the transport Puppeteer uses), so no websocket client is needed. :func:`render` loads a page,
collects every console error, uncaught exception and failed resource load, reads the page's
sections and headings from the rendered DOM and takes a screenshot.

Run as a script to screenshot a report:
``python -m tests.graphxfer.report._browser report.html out.png``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Runs in the page after it loaded: the section ids and headings, and the images that failed
# to decode (a broken data URI loads "successfully" but has no pixels).
_READ_PAGE = """JSON.stringify({
  sections: [...document.querySelectorAll("section")].map(s => ({
    id: s.id, heading: (s.querySelector("h2") || {}).textContent || ""})),
  anchors: [...document.querySelectorAll("[id]")].map(e => e.id),
  headings: [...document.querySelectorAll("h2, h3, h4")].map(h => h.textContent.trim()),
  images: document.images.length,
  broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => i.alt),
  warnings: [...document.querySelectorAll(".warning")].map(w => w.textContent.trim()),
  title: document.title,
})"""


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable, or None."""
    override = os.environ.get("GRAPHXFER_CHROMIUM")
    if override:
        return shutil.which(override) or (override if Path(override).exists() else None)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Page:
    """What the browser saw."""

    errors: list[str] = field(default_factory=list)
    """Console errors, uncaught exceptions and failed loads, as text."""
    dom: dict[str, Any] = field(default_factory=dict)
    """Sections, anchors, headings, images and warnings read from the rendered DOM."""
    screenshot: bytes = b""
    """PNG of the first screen."""
    seconds: float = 0.0


class _Pipe:
    """A DevTools session over Chromium's debugging pipe."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd = write_fd
        self.read_fd = read_fd
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise EOFError("Chromium closed the debugging pipe")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline))


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            out.append(f"uncaught exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            out.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            out.append(f"{entry.get('source')}: {entry.get('text')} ({entry.get('url', '')})")
        elif method == "Network.loadingFailed":
            reason = params.get("blockedReason") or params.get("errorText")
            out.append(f"failed load ({params.get('type')}): {reason}")
    return out


def render(
    path: str | os.PathLike[str],
    *,
    width: int = 1000,
    height: int = 1300,
    chromium: str | None = None,
    timeout: float = 60.0,
) -> Page:
    """Load ``path`` in headless Chromium; return its errors, DOM facts and a screenshot."""
    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError("no Chromium executable found")
    start = time.monotonic()
    # every descriptor above 10 first, so that moving the pipe ends to 3 and 4 in the child
    # cannot overwrite one another
    to_browser_r, to_browser_w = (_high(fd) for fd in os.pipe())
    from_browser_r, from_browser_w = (_high(fd) for fd in os.pipe())
    devnull = _high(os.open(os.devnull, os.O_RDWR))
    with tempfile.TemporaryDirectory(prefix="report-browser-") as profile:
        command = [
            executable,
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--mute-audio",
            "about:blank",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to sandbox as root
        try:
            pid = os.posix_spawn(
                executable,
                command,
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2),
                    (os.POSIX_SPAWN_DUP2, to_browser_r, 3),
                    (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
                ],
            )
        finally:
            for fd in (to_browser_r, from_browser_w, devnull):
                os.close(fd)
        pipe = _Pipe(to_browser_w, from_browser_r)
        page = Page()
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
            attached = pipe.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            session = attached["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            url = Path(path).resolve().as_uri()
            pipe.call("Page.navigate", {"url": url}, session=session, timeout=timeout)
            pipe.wait_for("Page.loadEventFired", timeout=timeout)
            read = pipe.call(
                "Runtime.evaluate",
                {"expression": _READ_PAGE, "returnByValue": True},
                session=session,
            )
            page.dom = json.loads(read["result"]["value"])
            shot = pipe.call("Page.captureScreenshot", {"format": "png"}, session=session)
            page.screenshot = base64.b64decode(shot["data"])
            page.errors = _errors(pipe.events)
            try:
                pipe.call("Browser.close", timeout=5)
            except (RuntimeError, TimeoutError, EOFError):
                pass
        finally:
            os.close(to_browser_w)
            os.close(from_browser_r)
            _reap(pid)
    page.seconds = time.monotonic() - start
    return page


def _high(fd: int) -> int:
    """``fd`` moved to a descriptor number of at least 10 (close-on-exec)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def _reap(pid: int, timeout: float = 10.0) -> None:
    """Wait for the browser to exit; kill it (this process only) when it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def main(argv: list[str]) -> int:
    """``python -m tests.graphxfer.report._browser REPORT.html OUT.png [WIDTH HEIGHT]``."""
    if len(argv) not in (2, 4):
        print(__doc__)
        return 2
    size = {"width": int(argv[2]), "height": int(argv[3])} if len(argv) == 4 else {}
    page = render(argv[0], **size)
    Path(argv[1]).write_bytes(page.screenshot)
    for error in page.errors:
        print(error, file=sys.stderr)
    print(f"{argv[1]}: {len(page.screenshot):,} bytes; {len(page.errors)} errors")
    return 1 if page.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
