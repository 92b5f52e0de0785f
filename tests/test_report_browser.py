"""The compare report in a real browser: headless Chromium loads report.html and its video
plays (H.264 High, yuv420p). Skipped where no Chromium is installed."""

from __future__ import annotations

import re
import shutil
import subprocess

import av
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from vidgen.cli.compare import compare
from vidgen.cli.train import CONFIG_DIR

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on PATH (apt-get install chromium to run this test)"
)

# Appended to the page: report every <video> once it plays (or fails) and every image once
# loaded, into #probe, which --dump-dom prints.
PROBE = """<pre id="probe">waiting</pre><script>
const probe = document.getElementById("probe");
const videos = [...document.querySelectorAll("video")].map(v => new Promise(done => {
  const played = () => setTimeout(() => done(`playing ${v.readyState} ${v.videoWidth}`), 200);
  const failed = () => done(`error ${v.error && v.error.code}`);
  if (v.error) failed(); else if (!v.paused && v.readyState >= 2) played();
  v.addEventListener("playing", played, {once: true});
  v.addEventListener("error", failed, {once: true});
}));
const images = [...document.images].map(i => new Promise(done => {
  const report = () => done(`image ${i.naturalWidth}`);
  if (i.complete) report(); else { i.onload = report; i.onerror = report; }
}));
Promise.all([...videos, ...images]).then(r => { probe.textContent = r.join("|"); });
</script>"""


def browser_results(page, profile):
    """What the probe found on ``page`` (a report.html), from a fresh headless Chromium."""
    probed = page.with_name("probe.html")
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--autoplay-policy=no-user-gesture-required",
         "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
         probed.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r'<pre id="probe">([^<]*)</pre>', run.stdout)
    assert found, run.stderr[-2000:]
    return found.group(1).split("|")


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_dataset):
    out = tmp_path_factory.mktemp("report")
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "compare",
            ["ckpts=[copy_last]", "data=folder", f"data.root={tiny_dataset}", f"out={out}",
             "split=train", "context=4", "horizon=6", "progress=false"],
        )  # fmt: skip
    compare(cfg)
    return out / "report.html"


def test_report_video_plays_and_images_load_in_headless_chromium(report, tmp_path):
    results = browser_results(report, tmp_path / "profile")
    video, *curves = results
    state, ready, width = video.split()
    assert state == "playing" and int(ready) >= 2 and int(width) == 2 * 132  # truth | copy_last
    assert len(curves) == 2  # one per protocol
    assert all(c.startswith("image ") and int(c.split()[1]) > 0 for c in curves)


def test_the_probe_catches_a_video_browsers_cannot_play(report, tmp_path):
    """MPEG-4 Part 2 in mp4 (what OpenCV's mp4v writes) does not play: the probe must say so."""
    page = shutil.copytree(report.parent, tmp_path / "copy") / report.name
    with av.open(str(page.with_name("side_by_side.mp4")), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    video, *_ = browser_results(page, tmp_path / "profile")
    assert video.startswith("error")
