"""Notebook 05 in a real browser: JupyterLab from this venv, driven in headless Chromium by playwright.

Runs every cell, changes every drop-down of the explorer and checks that the image it drives changes
and that no output shows a traceback. Uses the Debian ``chromium`` (never a downloaded browser build);
.ci/run installs it. Runs are trained on the tiny profile before the browser opens.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook
from playwright.sync_api import sync_playwright

from sagkit.workbook import open_workbook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "05_attention_heatmaps"
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
DEPTHS = (2, 4)  # two single-depth runs, so that the explorer's model drop-down has a second choice
WAIT_MS = 60_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH: install the Debian package chromium "
                                                "(.ci/run does); no browser is ever downloaded"),
]

ALL_NUMBERED = """() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""
# True once the images of output widget `index` differ from `before`, or once it shows a traceback.
IMAGES_CHANGED_OR_FAILED = """([index, before]) => {
    const out = document.querySelectorAll('.widget-output')[index];
    const srcs = out ? [...out.querySelectorAll('img')].map(i => i.src).join('|') : '';
    return (srcs !== '' && srcs !== before) || (out !== undefined && out.innerText.includes('Traceback'));
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare(folder: Path) -> dict:
    """Train the runs 05 shows (tiny profile) and write 05 with its parameters injected, as papermill does."""
    params = {"profile": "tiny", "device": "cpu", "runs_dir": str(folder / "runs"),
              "figures_dir": str(folder / "figures"), "depths": ",".join(map(str, DEPTHS))}
    wb = open_workbook(**{k: v for k, v in params.items() if k != "depths"})
    for config in [()] + [(d,) for d in DEPTHS]:
        wb.train(config)
    nb = load_notebook_node(str(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"))
    nbformat.write(parameterize_notebook(nb, params), folder / f"{NOTEBOOK}.ipynb")
    return params


def _start_lab(folder: Path, port: int, token: str, log) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1:port serving ``folder``; its kernels import this checkout's sagkit."""
    env = {k: v for k, v in os.environ.items() if k != "SAGKIT_HEADLESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                 "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):
        env[name] = str(folder / "home" / name.lower())
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
           "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None"]
    if os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_server(proc: subprocess.Popen, port: int, token: str, log_path: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer on port {port} within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the JupyterLab we started and its kernels (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _menu(page, menu: str, item: re.Pattern) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def _image_sources(page, index: int) -> str:
    return page.locator(".widget-output").nth(index).evaluate(
        "out => [...out.querySelectorAll('img')].map(i => i.src).join('|')")


def _tracebacks(page) -> list[str]:
    """The text of every output on the page (cells and widgets) that shows a Python error."""
    texts = page.locator(".jp-OutputArea-output").all_inner_texts()
    return [t[-2000:] for t in texts if "Traceback" in t or re.search(r"^\w+Error\b", t, re.M)]


def test_notebook_05_explorer_in_chromium(tmp_path):
    _prepare(tmp_path)
    port, token = _free_port(), secrets.token_hex(16)
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = _start_lab(tmp_path, port, token, log)
        try:
            _wait_for_server(proc, port, token, log_path)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1600, "height": 1000})
                    page.set_default_timeout(WAIT_MS)
                    page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}.ipynb?token={token}")
                    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for()
                    _drive_explorer(page)
                    _menu(page, "File", re.compile(r"^Save( Notebook)?$"))
                    _wait_for_save(tmp_path / f"{NOTEBOOK}.ipynb")
                finally:
                    browser.close()
        finally:
            _stop(proc)
    _check_saved_notebook(tmp_path / f"{NOTEBOOK}.ipynb")


def _drive_explorer(page) -> None:
    """Run all cells, then change every drop-down and wait for the image it drives to change."""
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for()  # kernel connected
    _menu(page, "Run", re.compile(r"^Run All Cells$"))
    page.wait_for_function(ALL_NUMBERED, timeout=4 * WAIT_MS, polling=250)
    selects = page.locator(".widget-dropdown select")
    page.locator(".widget-output img").nth(1).wait_for()
    assert _tracebacks(page) == []
    assert selects.count() == 4, "image and depth drop-downs over the image view, query and model over the ranked list"
    for i in range(4):  # every drop-down shows its selected value (a blank one has selectedIndex -1)
        assert selects.nth(i).evaluate("s => s.selectedIndex") == 0, f"drop-down {i} starts blank"
    depth_labels = selects.nth(1).evaluate("s => [...s.options].map(o => o.text.replace(/\\u00a0/g, ' '))")
    assert depth_labels == ["all", "baseline channel norm", "baseline Grad-CAM"] + [f"D{d}" for d in DEPTHS]
    for i, view in ((0, 0), (1, 0), (2, 1), (3, 1)):
        count = selects.nth(i).evaluate("s => s.options.length")
        # the depth drop-down through every choice (the baseline maps included); the others there and back
        order = list(range(1, count)) + [0] if i == 1 else [count - 1, 0]
        for index in order:
            before = _image_sources(page, view)
            selects.nth(i).select_option(index=index)
            page.wait_for_function(IMAGES_CHANGED_OR_FAILED, arg=[view, before], polling=250)
            assert _tracebacks(page) == [], f"drop-down {i}, option {index}"
            assert _image_sources(page, view) != before, f"drop-down {i}, option {index}: the image did not change"


def _wait_for_save(path: Path, timeout: float = 30.0) -> None:
    """Until the saved notebook has every code cell executed. JupyterLab rewrites the file in place, so a
    read can catch it empty or half written: that read is retried, not taken for the saved notebook."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            nb = nbformat.read(path, as_version=4)
        except ValueError:  # nbformat.reader.NotJSONError, JSON cut short
            time.sleep(0.5)
            continue
        if all(c.execution_count for c in nb.cells if c.cell_type == "code"):
            return
        time.sleep(0.5)
    pytest.fail(f"{path} was not saved with its outputs within {timeout:.0f} s")


def _check_saved_notebook(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [(c.execution_count, o.get("ename")) for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    widgets = [o for o in code[-1].outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "in JupyterLab the explorer shows its widget, not the static figures"
