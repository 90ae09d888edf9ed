"""Headless Chromium from Debian's packages, driven by playwright, for the dashboard tests.

Never a browser download: playwright launches ``/usr/bin/chromium`` (``apt-get install
chromium chromium-driver``) with a fresh profile, and every request the page makes is
recorded; anything but ``file:`` and ``data:`` is aborted, so a page that needs the network
fails its test instead of quietly loading a CDN.

``python -m tests.dashboard.browser close-dashboard.html docs/dashboard.png`` takes the
README's screenshot (the whole page; a third argument ``900`` takes the top 900 px only).
"""

from __future__ import annotations

import base64
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_SCHEMES = ("file:", "data:")
VIEWPORT = {"width": 1400, "height": 900}

# Every scene item of the Vega mark named ``name`` in a view, its datum as plain JSON (Dates
# as ISO strings): what the chart actually draws, after its filters and aggregates.
MARK_DATA_JS = """([viewId, name]) => {
  const view = window.closeDashboard.views[viewId];
  const found = [];
  const plain = (datum) => {
    const out = {};
    for (const key of Object.keys(datum)) {
      const value = datum[key];
      out[key] = value instanceof Date ? value.toISOString() : value;
    }
    return out;
  };
  const walk = (node) => {
    if (!node || !node.items) { return; }
    if (node.marktype && node.name === name) {
      node.items.forEach((item) => found.push(plain(item.datum)));
      return;
    }
    node.items.forEach(walk);
  };
  walk(view.scenegraph().root);
  return found;
}"""

SETTLE_JS = """() => window.closeDashboard.ready.then(() =>
  Promise.all(Object.values(window.closeDashboard.views).map((view) => view.runAsync())))
  .then(() => true)"""


@dataclass
class Visit:
    """A page opened in Chromium and what it said and asked for."""

    page: Any
    console: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    requests: List[str] = field(default_factory=list)

    def settle(self) -> None:
        """Waits until every chart has rendered its latest parameters."""
        self.page.evaluate(SETTLE_JS)

    def mark_data(self, view_id: str, mark_name: str) -> List[Dict[str, Any]]:
        data: List[Dict[str, Any]] = self.page.evaluate(MARK_DATA_JS, [view_id, mark_name])
        assert data is not None
        return data

    def signal(self, view_id: str, name: str) -> Any:
        return self.page.evaluate(
            "([id, name]) => window.closeDashboard.views[id].signal(name)", [view_id, name]
        )

    def remote_requests(self) -> List[str]:
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]


@contextmanager
def chromium() -> Iterator[Any]:
    """A playwright browser context on Debian's Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver (.ci/run does)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="close-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=FLAGS,
            headless=True,
            viewport=VIEWPORT,
            offline=True,
        )
        try:
            yield context
        finally:
            context.close()


@contextmanager
def visit(context: Any, html_path: Path) -> Iterator[Visit]:
    """Opens ``html_path`` from file:// and waits for every chart to render."""
    page = context.new_page()
    seen = Visit(page)
    page.on(
        "console",
        lambda message: seen.console.append(f"{message.type}: {message.text}"),
    )
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    page.on("request", lambda request: seen.requests.append(request.url))

    def only_local(route: Any) -> None:
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_local)
    try:
        page.goto(Path(html_path).resolve().as_uri())
        page.wait_for_function("() => window.closeDashboard !== undefined")
        seen.settle()
        yield seen
    finally:
        page.close()


def console_errors(seen: Visit) -> List[str]:
    return [line for line in seen.console if line.startswith("error")] + seen.errors


COLOURS_JS = """async (base64) => {
  const image = new Image();
  image.src = "data:image/png;base64," + base64;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  for (let i = 0; i < pixels.length; i += 4 * 5) {
    colours.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
  }
  return {width: image.width, height: image.height, colours: colours.size};
}"""


def png_colours(context: Any, png: bytes) -> Dict[str, int]:
    """Width, height and how many colours (every 5th pixel) a PNG has, decoded by Chromium
    in a blank page of its own."""
    page = context.new_page()
    try:
        result: Dict[str, int] = page.evaluate(COLOURS_JS, base64.b64encode(png).decode())
        return result
    finally:
        page.close()


if __name__ == "__main__":
    # python -m tests.dashboard.browser PAGE.html SHOT.png [HEIGHT | full]
    html_file, png_file = Path(sys.argv[1]), Path(sys.argv[2])
    size = sys.argv[3] if len(sys.argv) > 3 else "full"
    if size != "full":
        VIEWPORT["height"] = int(size)
    with chromium() as browser, visit(browser, html_file) as shown:
        assert not console_errors(shown), console_errors(shown)
        assert not shown.remote_requests(), shown.remote_requests()
        picture = shown.page.screenshot(path=str(png_file), full_page=size == "full")
        print(f"{png_file}: {len(picture):,} bytes, {png_colours(browser, picture)}")
