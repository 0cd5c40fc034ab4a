"""What the browser tests share: a Jupyter server of their own, headless Chromium, and
Jupyter's own dialogs accepted.

Each test module starts ``jupyter_server(...)`` on a free loopback port with its own config
and root folder (a user's settings cannot leak in) and stops it by its PID at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(root: Path, config: Path, log_path: Path):
    """``jupyter lab`` serving ``root`` with its settings under ``config``; yields its URL."""
    settings = config / "lab-settings"
    apputils = settings / "@jupyterlab" / "apputils-extension"
    apputils.mkdir(parents=True, exist_ok=True)
    (apputils / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTERLAB_SETTINGS_DIR":
           str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(config / "workspaces")}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1",
               "--port", str(port), "--ServerApp.token=", "--ServerApp.password=",
               "--allow-root", f"--ServerApp.root_dir={root}"]
    with serve(command, port, log_path, "jupyter lab", env=env) as url:
        yield url


@contextlib.contextmanager
def serve(command: list, port: int, log_path: Path, what: str, env: dict | None = None,
          cwd: Path | None = None, timeout: float = 90.0):
    """Run a server ``command`` (its output to ``log_path``), yield its URL once ``port``
    answers, and stop it by its PID at the end (killed if it does not stop in 20 s)."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if process.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"{what} did not start; see {log_path}") from None
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


BROWSER_MARKS = [  # a test module's pytestmark
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin"),
]


@contextlib.contextmanager
def chromium():
    """Debian's Chromium, headless, with the flags this machine needs."""
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@contextlib.contextmanager
def artifacts_on_failure(page, name: str, log: Path | None = None,
                         console: list | None = None):
    """On a failure inside the block: a full-page screenshot
    (``test-artifacts/<name>_failure.png``), the server's log (``<name>_server.log``) and
    the page's console messages (``<name>_console.log``), as far as they can be had."""
    try:
        yield
    except BaseException:
        save_failure_artifacts(page, name, log, console)
        raise


@contextlib.contextmanager
def lab_page(browser, served: tuple, notebook: str, name: str, width: int = 1280,
             height: int = 1000):
    """A JupyterLab page (a workspace of its own) on ``notebook`` of ``one_cell_server``'s
    ``served`` (url, log): failure artifacts under ``name``; the kernel shut down after."""
    url, log = served
    page = browser.new_page(viewport={"width": width, "height": height})
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        with artifacts_on_failure(page, name, log, console):
            page.goto(f"{url}/lab/workspaces/{name}/tree/{notebook}")
            yield page
    finally:
        close_page(page, notebook)


def dark_theme(page) -> None:
    """Settings › Theme › JupyterLab Dark, as a user switches it; returns once it shows."""
    page.get_by_role("menuitem", name="Settings", exact=True).click()
    page.get_by_text("Theme", exact=True).hover()
    page.get_by_text("JupyterLab Dark", exact=True).click()
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'",
                           timeout=30_000)


def save_failure_artifacts(page, name: str, log: Path | None = None,
                           console: list | None = None) -> None:
    """What ``artifacts_on_failure`` saves, for a fixture's teardown to call."""
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}_failure.png"), full_page=True,
                        timeout=30_000)
    except Exception as error:  # noqa: BLE001 - the test's own failure matters more
        print(f"no failure screenshot for {name}: {str(error).splitlines()[0]}")
    if log is not None and Path(log).exists():
        shutil.copy(log, ARTIFACTS / f"{name}_server.log")
    if console:
        (ARTIFACTS / f"{name}_console.log").write_text("\n".join(console))


def accept_dialogs(page) -> None:
    """Accept a dialog Jupyter may open on its own (e.g. "Select Kernel" in Notebook 7)."""
    for _ in range(3):
        dialog = page.locator(".jp-Dialog")
        if dialog.count() == 0:
            return
        dialog.locator(".jp-mod-accept").first.click()
        page.wait_for_timeout(200)


KERNEL_IDLE = """async path => {
    const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
    if (!indicator || indicator.dataset.status !== 'idle') return false;
    const sessions = await (await fetch('/api/sessions', {cache: 'no-store'})).json();
    return sessions.some(s => s.path === path && s.kernel
                         && s.kernel.execution_state === 'idle');
}"""


def wait_kernel_idle(page, path: str, timeout: float = 90) -> None:
    """Until the notebook's kernel has started, is connected and idle (the page's indicator
    says idle before it connects too, so the server's sessions are asked as well)."""
    deadline = time.time() + timeout
    while not page.evaluate(KERNEL_IDLE, path):
        if time.time() > deadline:
            raise TimeoutError(f"the kernel of {path} is not idle after {timeout} s")
        page.wait_for_timeout(250)


SHUT_DOWN = """async path => {
    const xsrf = (document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]*)/) || [])[1] || '';
    const sessions = await (await fetch('/api/sessions', {cache: 'no-store'})).json();
    for (const s of sessions.filter(s => s.path === path))
        await fetch(`/api/sessions/${s.id}`, {method: 'DELETE',
                                              headers: {'X-XSRFToken': decodeURIComponent(xsrf)}});
}"""


def close_page(page, path: str) -> None:
    """Shut the notebook's kernel down (the next page has both cores) and close the page."""
    try:
        page.evaluate(SHUT_DOWN, path)
    except playwright_api.Error as error:
        print(f"could not shut down the kernel of {path}: {str(error).splitlines()[0]}")
    page.close()


def run_all_cells(page, path: str, ready: str = ".xai-explain-widget .xai-heatmap-large",
                  timeout: float = 180, attempts: int = 3) -> None:
    """Run > Run All Cells once the kernel is idle, then wait until every cell has run and
    ``ready`` shows. A click made before the notebook is ready can be lost: it is retried
    only when no cell started running."""
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    wait_kernel_idle(page, path)
    started = ("() => [...document.querySelectorAll('.jp-InputPrompt')]"
               ".some(p => p.textContent.includes('*') || /\\[\\d+\\]/.test(p.textContent))")
    for attempt in range(attempts):
        try:
            accept_dialogs(page)
            page.get_by_role("menuitem", name="Run", exact=True).click(timeout=10_000)
            page.get_by_text("Run All Cells", exact=True).click(timeout=10_000)
            page.wait_for_function(started, timeout=20_000)
            break
        except playwright_api.Error as error:
            print(f"run all cells, attempt {attempt + 1}: {str(error).splitlines()[0]}")
            page.keyboard.press("Escape")
            if attempt == attempts - 1:
                page.screenshot(path=str(ARTIFACTS / "run_all_failed.png"))
                raise
    # the cell has finished (its prompt shows a number, no '*') and the widget has drawn
    page.wait_for_function(
        "() => { const p = [...document.querySelectorAll('.jp-InputPrompt')];"
        " return p.length && p.every(e => !e.textContent.includes('*'))"
        " && p.some(e => /\\[\\d+\\]/.test(e.textContent)); }", timeout=timeout * 1000)
    page.wait_for_selector(ready, timeout=timeout * 1000)
    wait_kernel_idle(page, path)


@contextlib.contextmanager
def one_cell_server(tmp_path_factory, notebook: str, cell: str):
    """A Jupyter server whose root holds ``notebook``: one code cell, the python3 kernel;
    yields (url, log path)."""
    import nbformat

    root = tmp_path_factory.mktemp("jupyter-root")
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(cell)]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                   "language": "python"}
    nbformat.write(book, root / notebook)
    log = tmp_path_factory.mktemp("logs") / "jupyter.log"
    with jupyter_server(root, tmp_path_factory.mktemp("jupyter-config"), log) as url:
        yield url, log


def element_shot(page, selector: str, name: str, settle_ms: int = 0) -> None:
    """A screenshot of ``selector`` into test-artifacts; the viewport grows (height only)
    for it if it must."""
    element, size = page.locator(selector).first, page.viewport_size
    box = element.bounding_box()
    grown = box is not None and box["height"] + 120 > size["height"]
    if grown:
        page.set_viewport_size({"width": size["width"], "height": int(box["height"]) + 240})
    try:
        element.scroll_into_view_if_needed()
        if settle_ms:
            page.wait_for_timeout(settle_ms)
        element.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    finally:
        if grown:
            page.set_viewport_size(size)
