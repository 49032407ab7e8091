//! The HTML report in a real browser: Debian's Chromium, driven through
//! chromedriver (WebDriver) by a small Python script: the groups are
//! drawn, a click on one lists exactly its files, and a screenshot is
//! taken.

use std::process::Command;

use crate::{file, pyactivity, HOUR};

/// WebDriver over HTTP with the standard library: start chromedriver on a
/// free port, open the page, read what the page drew, click the middle of
/// the group asked for, read the file list, take a screenshot. Bounded: at
/// most 60 s for everything.
const DRIVER: &str = r##"
import base64, json, os, socket, subprocess, sys, tempfile, time, urllib.request
page, group, shot = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
drv = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["value"]
try:
    deadline = time.time() + 20
    while True:
        try:
            call("GET", "/status"); break
        except Exception:
            if time.time() > deadline: raise SystemExit("chromedriver did not start")
            time.sleep(0.2)
    profile = tempfile.mkdtemp(prefix="pyactivity-chromium-")
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--window-size=1200,900"]
    sid = call("POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})["sessionId"]
    try:
        call("POST", f"/session/{sid}/url", {"url": "file://" + os.path.abspath(page)})
        js = lambda script: call("POST", f"/session/{sid}/execute/sync", {"script": script, "args": []})
        drawn = js("return window.pyactivity.drawn")
        rows = js("return document.querySelectorAll('#groups tbody tr').length")
        box = next(d for d in drawn if d["n"] == group)
        rect = js("const r = document.getElementById('chart').getBoundingClientRect(); return [r.width, r.height]")
        el = call("POST", f"/session/{sid}/element", {"using": "css selector", "value": "#chart"})
        ref = list(el.values())[0]
        x = int(box["x"] + box["w"] / 2 - rect[0] / 2); y = int(box["y"] + box["h"] / 2 - rect[1] / 2)
        call("POST", f"/session/{sid}/actions", {"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
            {"type": "pointerMove", "duration": 0, "origin": {"element-6066-11e4-a52e-4f735466cecf": ref}, "x": x, "y": y},
            {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0}]}]})
        listed = js("return [window.pyactivity.listed, Array.from(document.querySelectorAll('#files tbody tr')).map(r => r.cells[2].textContent)]")
        # Zoom with the button, then pan by dragging the chart 200 pixels.
        before = js("return window.pyactivity.view")
        zin = call("POST", f"/session/{sid}/element", {"using": "css selector", "value": "#zin"})
        call("POST", f"/session/{sid}/element/{list(zin.values())[0]}/click", {})
        zoomed = js("return window.pyactivity.view")
        call("POST", f"/session/{sid}/actions", {"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": [
            {"type": "pointerMove", "duration": 0, "origin": {"element-6066-11e4-a52e-4f735466cecf": ref}, "x": 0, "y": 0},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerMove", "duration": 100, "origin": "pointer", "x": 200, "y": 0},
            {"type": "pointerUp", "button": 0}]}]})
        panned = js("return window.pyactivity.view")
        png = call("GET", f"/session/{sid}/screenshot")
        open(shot, "wb").write(base64.b64decode(png))
        print(json.dumps({"drawn": [d["n"] for d in drawn], "rows": rows, "listed": listed[0], "files": listed[1],
                          "views": [before, zoomed, panned]}))
    finally:
        call("DELETE", f"/session/{sid}")
finally:
    drv.kill()
"##;

#[test]
fn chromium_draws_the_groups_and_a_click_lists_exactly_their_files() {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("disk");
    let now = crate::now();
    // Three sessions a day apart: 3, 40 and 2 files.
    for i in 0..3 {
        file(&root, &format!("one/{i}.txt"), 10, now - 72 * HOUR + i * 60);
    }
    for i in 0..40 {
        file(&root, &format!("two/sub/{i:02}.dat"), 100 + i as usize, now - 48 * HOUR + i * 30);
    }
    for i in 0..2 {
        file(&root, &format!("three/{i}.md"), 5, now - 24 * HOUR + i);
    }
    let page = t.path().join("report.html");
    let o = pyactivity().arg(&root).args(["-q", "--html"]).arg(&page).output().expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(!html.contains("http://") && !html.contains("https://"), "no network");
    let shot = t.path().join("report.png");
    let out = Command::new("timeout")
        .arg("90")
        .arg("python3")
        .arg("-c")
        .arg(DRIVER)
        .arg(&page)
        .arg("2")
        .arg(&shot)
        .output()
        .expect("python3, chromium and chromium-driver (apt-get install chromium chromium-driver) must be installed");
    assert!(out.status.success(), "driver: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json from the driver");
    // All three groups are drawn and in the table.
    let mut drawn: Vec<u64> = v["drawn"].as_array().expect("drawn").iter().map(|n| n.as_u64().expect("n")).collect();
    drawn.sort_unstable();
    assert_eq!(drawn, vec![1, 2, 3], "{v}");
    assert_eq!(v["rows"], 3);
    // The click on group 2 lists its 40 files, and only those.
    assert_eq!(v["listed"], 2, "{v}");
    let mut files: Vec<String> =
        v["files"].as_array().expect("files").iter().map(|f| f.as_str().expect("path").to_string()).collect();
    files.sort();
    let want: Vec<String> = (0..40).map(|i| format!("{}/two/sub/{i:02}.dat", root.display())).collect();
    assert_eq!(files, want);
    // Zoom in halves the period shown, around its middle; dragging right
    // shows earlier times, the width kept.
    let view = |k: usize, f: &str| v["views"][k][f].as_f64().expect("view");
    let (w0, w1) = (view(0, "to") - view(0, "from"), view(1, "to") - view(1, "from"));
    assert!((w1 / w0 - 0.5).abs() < 1e-6, "zoom: {w0} -> {w1}");
    assert!(view(2, "from") < view(1, "from") && ((view(2, "to") - view(2, "from")) - w1).abs() < 1.0, "pan: {v}");
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot of {} bytes", png.len());
    // Keep it for people to look at, when asked.
    if let Some(dir) = std::env::var_os("PYACTIVITY_SCREENSHOTS") {
        std::fs::copy(&shot, std::path::Path::new(&dir).join("report.png")).expect("copy");
    }
}
