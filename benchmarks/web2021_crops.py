"""Why the 128-detector pipelines differ from MediaPipe's web solution of 2021, photo by photo.

Runs MediaPipe's own web solution (``@mediapipe/pose`` 0.1.1612239201, the one that made
../shared/testdata/mediapipe_web2021_reference.json) again in headless Chromium, and asks it for two
things the reference does not hold: the crop it made from the detection (the graph's
``pose_rect_from_detection`` stream) and the image it ran on (``image_transformed``: the pixels after
the browser decoded the JPEG). Then, per photo and model, prints:

* the web crop and posezoo's from the same photo, with MediaPipe's CPU sampling (posezoo's default)
  and with its GPU sampling (``sampling="gpu"``);
* the landmark distance to the reference (% of the reference box diagonal, as in
  tests/test_parity_web2021.py) for: posezoo as shipped; GPU sampling; GPU sampling on the browser's
  pixels; and posezoo's landmark stage on the web's own crop;
* whether the browser decoded the JPEG to the same pixels as OpenCV;

and first, how far the re-run is from the reference file (0: the same run).

Needs Debian's ``chromium`` and ``npm`` (the script installs ``puppeteer-core`` and
``@mediapipe/pose`` into a temporary folder from the npm registry; nothing is downloaded at run time
after that). Everything is served from 127.0.0.1.

    python benchmarks/web2021_crops.py [--shared ../shared] [--chromium /usr/bin/chromium] [--keep DIR]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from posezoo.supply.convert import convert_file  # noqa: E402
from posezoo_plugins.mediapipe.model import PoseEstimator  # noqa: E402
from posezoo_plugins.mediapipe.roi import Roi  # noqa: E402

PACKAGES = ["puppeteer-core@24", "@mediapipe/pose@0.1.1612239201"]
MODES = {"upper": ("blazepose-upper", "mediapipe-v0.7.12/pose_landmark_upper_body.tflite"),
         "full2021": ("blazepose-full-2020", "mediapipe-0.8.2/pose_landmark_full_body.tflite")}  # fmt: skip
DETECTOR = "mediapipe-v0.7.12/pose_detection.tflite"
# The page: one fresh Pose graph per (photo, mode), as the reference was made; the solution's
# listener is widened to the crop and the image streams (pose.js is rewritten when it is copied).
PAGE = """<!doctype html><html><body><script src="pose.js"></script><script>
window.runPose = async function (src, upper) {
  const img = new Image(); img.src = src; await img.decode();
  const pose = new Pose({locateFile: f => f});
  pose.setOptions({upperBodyOnly: upper, smoothLandmarks: false, selfieMode: false,
                   minDetectionConfidence: 0.5, minTrackingConfidence: 0.5});
  let out = null;
  pose.onResults(r => {
    const c = document.createElement('canvas'); c.width = r.image.width; c.height = r.image.height;
    const ctx = c.getContext('2d'); ctx.drawImage(r.image, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    const rgb = new Uint8Array(c.width * c.height * 3);
    for (let i = 0; i < c.width * c.height; i++) { rgb[3*i] = d[4*i]; rgb[3*i+1] = d[4*i+1]; rgb[3*i+2] = d[4*i+2]; }
    let bin = '';
    for (let i = 0; i < rgb.length; i += 0x8000) bin += String.fromCharCode.apply(null, rgb.subarray(i, i + 0x8000));
    const roi = r.roi ? {x: r.roi.xCenter, y: r.roi.yCenter, w: r.roi.width, h: r.roi.height, rotation: r.roi.rotation} : null;
    out = {landmarks: r.poseLandmarks ? r.poseLandmarks.map(l => [l.x, l.y, l.visibility]) : null,
           roi, width: c.width, height: c.height, rgb: btoa(bin)};
  });
  await pose.initialize();
  await pose.send({image: img});
  return out;
};
</script></body></html>
"""
DRIVER = """import puppeteer from 'puppeteer-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
const [,, site, images, chromium, jobsFile, outFile] = process.argv;
const types = {'.js': 'text/javascript', '.html': 'text/html', '.wasm': 'application/wasm', '.jpg': 'image/jpeg'};
const server = http.createServer((req, res) => {
  const u = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const f = u.startsWith('/images/') ? path.join(images, path.basename(u)) : path.join(site, path.basename(u));
  fs.readFile(f, (err, data) => {
    if (err) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, {'Content-Type': types[path.extname(f)] || 'application/octet-stream'}); res.end(data);
  });
});
await new Promise(r => server.listen(0, '127.0.0.1', r));
const browser = await puppeteer.launch({executablePath: chromium, headless: true,
  args: ['--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist']});
const results = {};
for (const [image, mode] of JSON.parse(fs.readFileSync(jobsFile))) {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html`);
  results[`${image}|${mode}`] = await page.evaluate((s, u) => window.runPose(s, u), `/images/${image}`, mode === 'upper');
  await page.close();
}
fs.writeFileSync(outFile, JSON.stringify(results));
await browser.close(); server.close();
"""
LISTENER = 'listeners:[{wants:["pose_landmarks","image_transformed"],outs:{image:"image_transformed",'
WIDER = 'listeners:[{wants:["pose_landmarks","image_transformed","pose_rect_from_detection"],outs:{image:"image_transformed",roi:"pose_rect_from_detection",'


def run_web(work: Path, images: Path, names: list[str], chromium: str) -> dict:
    subprocess.run(["npm", "init", "-y"], cwd=work, check=True, capture_output=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", *PACKAGES], cwd=work, check=True, capture_output=True,
                   env={**__import__("os").environ, "PUPPETEER_SKIP_DOWNLOAD": "1"})  # fmt: skip
    site = work / "site"
    shutil.copytree(work / "node_modules" / "@mediapipe" / "pose", site)
    pose_js = (site / "pose.js").read_text()
    if LISTENER not in pose_js:
        raise SystemExit("pose.js is not the expected 0.1.1612239201 build")
    (site / "pose.js").write_text(pose_js.replace(LISTENER, WIDER))
    (site / "index.html").write_text(PAGE)
    (work / "driver.mjs").write_text(DRIVER)
    (work / "jobs.json").write_text(json.dumps([[n, m] for n in names for m in MODES]))
    subprocess.run(["node", "driver.mjs", str(site), str(images), chromium, "jobs.json", "out.json"], cwd=work, check=True)
    return json.loads((work / "out.json").read_text())


def with_sampling(spec, sampling):
    return dataclasses.replace(spec, detector=dataclasses.replace(spec.detector, sampling=sampling),
                               landmark=dataclasses.replace(spec.landmark, sampling=sampling))  # fmt: skip


def pct(landmarks: np.ndarray, want: np.ndarray) -> float:
    seen = want[:, 3] > 0.5
    diag = np.hypot(*np.ptp(want[seen, :2], axis=0))
    return 100.0 * np.linalg.norm(landmarks[seen, :2] - want[seen, :2], axis=1).mean() / diag


def fmt(roi: Roi) -> str:
    return f"({roi.cx:6.1f}, {roi.cy:6.1f}) side {roi.w:5.1f} {math.degrees(roi.rotation):6.1f} deg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (npm packages, web output)")
    args = ap.parse_args()
    from posezoo_plugins.blazepose_full_2020 import SPEC as FULL2020
    from posezoo_plugins.blazepose_upper import SPEC as UPPER

    specs = {"blazepose-upper": UPPER, "blazepose-full-2020": FULL2020}
    testdata, models = args.shared / "testdata", args.shared / "models"
    reference = json.loads((testdata / "mediapipe_web2021_reference.json").read_text())["images"]
    names = sorted(reference)
    work = args.keep or Path(tempfile.mkdtemp(prefix="web2021-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        web = run_web(work, testdata / "images", names, args.chromium)
        det = work / "detector128.onnx"
        convert_file(models / DETECTOR, det)
        rerun = max(
            float(np.nanmax(np.abs(np.array(web[f"{n}|{m}"]["landmarks"]) * [web[f"{n}|{m}"]["width"], web[f"{n}|{m}"]["height"], 1]
                               - np.array([[r[0], r[1], r[3]] for r in reference[n][m]["landmarks"]]))))
            for n in names for m in MODES
        )  # fmt: skip
        print(f"re-run of the web solution vs the reference file: largest difference {rerun:.2g} (px or visibility)\n")
        print("| photo | model | web crop | posezoo crop, CPU sampling | posezoo crop, GPU sampling | shipped | GPU | GPU, browser pixels | web crop, CPU | JPEG |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for mode, (model, landmark_file) in MODES.items():
            lm = work / f"{mode}.onnx"
            convert_file(models / landmark_file, lm)
            cpu = PoseEstimator(specs[model], {"detector": det, "landmark": lm}, device="cpu")
            gpu = PoseEstimator(with_sampling(specs[model], "gpu"), {"detector": det, "landmark": lm}, device="cpu")
            for name in names:
                got = web[f"{name}|{mode}"]
                want = np.array([[np.nan if v is None else v for v in r] for r in reference[name][mode]["landmarks"]])
                bgr = cv2.imread(str(testdata / "images" / name))
                h, w = bgr.shape[:2]
                browser = np.frombuffer(base64.b64decode(got["rgb"]), np.uint8).reshape(got["height"], got["width"], 3)
                same_pixels = np.array_equal(browser, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                r = got["roi"]
                web_roi = Roi(r["x"] * w, r["y"] * h, r["w"] * w, r["h"] * h, r["rotation"])
                shipped, like_gpu = cpu.predict(bgr, max_poses=1)[0], gpu.predict(bgr, max_poses=1)[0]
                on_browser = gpu.predict(np.ascontiguousarray(browser[:, :, ::-1]), max_poses=1)[0]
                on_web_roi = cpu.landmarks_in_roi(cpu.to_rgb(bgr), web_roi)
                print(f"| {name[:16]} | {model} | {fmt(web_roi)} | {fmt(shipped.roi)} | {fmt(like_gpu.roi)} | "
                      f"{pct(shipped.landmarks, want):.2f} % | {pct(like_gpu.landmarks, want):.2f} % | "
                      f"{pct(on_browser.landmarks, want):.2f} % | {pct(on_web_roi.landmarks, want):.2f} % | "
                      f"{'same as OpenCV' if same_pixels else 'differs (colour management)'} |")  # fmt: skip
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
