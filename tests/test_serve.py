"""``strings serve``: the real uvicorn server on real ports, a tiny model, stdlib HTTP clients.

Most tests share one server run in a background thread of this process (no second torch
import); the SIGTERM test runs ``python -m strings serve`` as a subprocess; the page test
drives Debian's chromium through selenium and skips when it is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'strings[serve]')")
uvicorn = pytest.importorskip("uvicorn")

import strings
from strings.read.amount import DEFAULT_LOCALE, LOCALES
from strings.serve import ServeConfig, create_app
from strings.serve.routes.page import STATIC_DIR
from tests.conftest import REPO, render_digits, save_tiny_checkpoint

# A calibration that lets the tiny model judge amounts: confidences above 0.5 were right.
CALIBRATION = {
    "measure": "path",
    "temperature": 1.0,
    "fitted_on": "test",
    "validation": [[0.9, True], [0.8, True], [0.7, True], [0.3, False], [0.2, False]],
}
LIMITS = {"max_images": 4, "max_pixels": 200_000, "max_body_bytes": 300_000, "max_beam": 8}
BATCH_WAIT_MS = 50.0  # long enough that concurrent requests of a slow test machine meet in a batch
STARTUP_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def request(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def multipart(
    files: list[tuple[str, bytes]], fields: dict[str, str] | None = None, part: str = "file"
) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    chunks = []
    for k, v in (fields or {}).items():
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for name, data in files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{part}"; filename="{name}"\r\n'
        chunks.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post_files(base: str, files: list[tuple[str, bytes]], path: str = "/v1/read", **fields: str) -> tuple[int, Any]:
    body, headers = multipart(files, fields)
    status, _, raw = request(base + path, body, headers)
    return status, json.loads(raw)


def post_json(base: str, obj: Any, path: str = "/v1/read") -> tuple[int, Any]:
    status, _, raw = request(base + path, json.dumps(obj).encode(), {"Content-Type": "application/json"})
    return status, json.loads(raw)


def wait_ready(base: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if request(base + "/readyz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(
        tmp_path_factory.mktemp("serve") / "tiny.safetensors", extra={"calibration": CALIBRATION}
    )


@pytest.fixture(scope="module")
def rec(model_path: Path) -> strings.Recognizer:
    return strings.load(model_path)


@pytest.fixture(scope="module")
def server(rec: strings.Recognizer) -> Iterator[str]:
    """The real app on uvicorn in a background thread, on a free port."""
    port = free_port()
    cfg = ServeConfig(port=port, max_wait_ms=BATCH_WAIT_MS, **LIMITS)
    srv = uvicorn.Server(
        uvicorn.Config(create_app(cfg, recognizer=rec), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    yield base
    srv.should_exit = True
    thread.join(10)


IMAGES = {"a.png": render_digits("42"), "c.png": render_digits("1500")}


def test_multipart_reads_in_order_with_an_error_for_the_bad_item(server: str, rec: strings.Recognizer):
    files = [("a.png", png(IMAGES["a.png"])), ("notes.txt", b"not an image at all"), ("c.png", png(IMAGES["c.png"]))]
    status, body = post_files(server, files)
    assert status == 200
    a, bad, c = body["results"]
    for name, record in (("a.png", a), ("c.png", c)):
        reading = rec.recognize(IMAGES[name])
        # the object `strings recognize --json` prints: the reading, image and source
        assert record == json.loads(json.dumps({**reading.to_dict(), "image": name, "source": name}))
        assert all(len(d["box"]) == 4 for d in record["digits"])
    assert bad["image"] == "notes.txt" and bad["error"]["code"] == "not_an_image"
    assert "notes.txt" in bad["error"]["message"] and "strings-serve" not in bad["error"]["message"]


def test_json_reads_match_multipart_and_name_a_bad_base64_item(server: str):
    data = png(IMAGES["a.png"])
    status, body = post_json(
        server, {"images": [{"name": "x", "data": "@@@"}, {"name": "a.png", "data": base64.b64encode(data).decode()}]}
    )
    assert status == 200
    assert body["results"][0] == {
        "image": "x",
        "error": {"code": "not_base64", "message": "x: 'data' is not valid base64"},
    }
    assert body["results"][1] == post_files(server, [("a.png", data)])[1]["results"][0]


def _expected_amount(rec: strings.Recognizer, reading: strings.Reading, max_error: float, locale: str) -> dict:
    """What ``strings recognize --amount`` adds, through JSON as the service sends it."""
    return json.loads(json.dumps(rec.amount_of(reading, max_error, locale=locale).to_dict()))


def test_amount_is_the_recognizers_amount_under_each_locale(server: str, rec: strings.Recognizer):
    image = [("c.png", png(IMAGES["c.png"]))]
    reading = rec.recognize(IMAGES["c.png"])
    status, body = post_files(server, image, amount="true", max_error="0.05")
    assert status == 200
    amount = body["results"][0]["amount"]
    assert amount == _expected_amount(rec, reading, 0.05, DEFAULT_LOCALE) and amount["locale"] == DEFAULT_LOCALE
    assert not rec.reads_separators and amount["status"] == "review"  # the tiny model: where do cents begin?
    for locale in LOCALES:
        status, body = post_files(server, image, amount="true", locale=locale)
        assert status == 200 and body["results"][0]["amount"] == _expected_amount(rec, reading, 0.01, locale)


@pytest.mark.parametrize(
    ("options", "item", "words"),
    [
        ({"amount": "true", "locale": "xx-XX"}, "locale", ["'xx-XX'", *LOCALES]),
        ({"locale": "en-US"}, "locale", ["amount=true"]),  # a locale alone would change nothing
        ({"amount": "true", "decimals": "2"}, "decimals", ["'decimals' is gone: cents come from the separators read"]),
    ],
)
def test_amount_options_that_cannot_apply_are_a_422_naming_them(
    server: str, options: dict[str, str], item: str, words: list[str]
):
    status, body = post_files(server, [("c.png", png(IMAGES["c.png"]))], **options)
    assert (status, body["error"]["code"], body["error"]["item"]) == (422, "bad_option", item), body
    assert all(w in body["error"]["message"] for w in words), body["error"]["message"]


def test_field_reads_loose_crops_as_read_fields_does(server: str, rec: strings.Recognizer):
    crop = np.full((150, 120), 228, np.uint8)  # a register-like cell: margin, rule, the number low down
    crop[:, :14] = 12
    cv2.line(crop, (14, 20), (119, 20), 70, 2)
    digits = IMAGES["c.png"]
    h, w = digits.shape
    crop[80 : 80 + h, 30 : 30 + w] = np.minimum(crop[80 : 80 + h, 30 : 30 + w], digits)
    status, body = post_files(server, [("cell.png", png(crop)), ("a.png", png(IMAGES["a.png"]))], field="true")
    assert status == 200, body
    for record, want in zip(body["results"], rec.read_fields([crop, IMAGES["a.png"]])):
        assert (record["text"], record["box"], len(record["others"])) == (want.text, list(want.box or []) or None, len(want.others))
    assert body["results"][0]["image"] == "cell.png"


def test_column_reads_the_request_images_as_one_register_column(server: str, rec: strings.Recognizer):
    images = [render_digits(t) for t in ("41", "42", "43")]
    status, body = post_files(server, [(f"row{i}.png", png(im)) for i, im in enumerate(images)], column="true")
    assert status == 200, body
    for record, want in zip(body["results"], rec.read_column(images)):
        assert (record["text"], record["box"]) == (want.text, list(want.box or []) or None)
        assert record["confidence"] == pytest.approx(want.confidence, rel=1e-6)
    assert [r["image"] for r in body["results"]] == ["row0.png", "row1.png", "row2.png"]
    assert json.loads(request(server + "/v1/info")[2])["supports"]["column"] is True


def test_an_uncalibrated_model_reads_amounts_and_sends_each_to_review(tmp_path: Path):
    from strings.read.amount import NO_OPERATING_POINT

    plain = strings.load(save_tiny_checkpoint(tmp_path / "plain.safetensors"))
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(ServeConfig(port=port), recognizer=plain), port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        status, _, raw = request(f"{base}/v1/info")
        info = json.loads(raw)
        assert status == 200 and info["supports"]["amount"] is True and info["supports"]["operating_point"] is False
        status, body = post_files(base, [("c.png", png(IMAGES["c.png"]))], amount="true")
        amount = body["results"][0]["amount"]
        assert status == 200 and amount["status"] == "review" and NO_OPERATING_POINT in amount["reasons"]
        assert amount["threshold"] is None
    finally:
        srv.should_exit = True
        thread.join(10)


def test_a_slow_request_times_out_and_an_internal_failure_is_a_logged_json_500(
    rec: strings.Recognizer, caplog: pytest.LogCaptureFixture
):
    port = free_port()
    app = create_app(ServeConfig(port=port, timeout_s=0.3, max_wait_ms=1000), recognizer=rec)
    srv = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        status, body = post_files(
            base, [("c.png", png(IMAGES["c.png"]))]
        )  # the batch waits 1 s: over the 0.3 s timeout
        assert status == 504 and body["error"]["code"] == "timeout"
        time.sleep(1.0)  # let that batch close

        def broken(*_: Any) -> None:  # the one injected fault: the network call fails
            raise RuntimeError("simulated failure")

        app.state.service.batcher._read = broken
        app.state.service.batcher.max_wait_s = 0.0
        with caplog.at_level("ERROR", logger="strings.serve"):
            status, body = post_files(base, [("c.png", png(IMAGES["c.png"]))])
        assert status == 500 and body == {
            "error": {"code": "internal", "message": "internal error; it was logged on the server"}
        }
        assert "simulated failure" in caplog.text
    finally:
        srv.should_exit = True
        thread.join(10)


def _big() -> bytes:
    return png(np.full((500, 500), 255, np.uint8))  # 250,000 pixels > the 200,000 limit


@pytest.mark.parametrize(
    "case, status, code, item",
    [
        ("not_an_image", 422, "not_an_image", "x.png"),
        ("too_many_pixels", 413, "too_many_pixels", "big.png"),
        ("too_many_images", 413, "too_many_images", None),
        ("body_too_large", 413, "body_too_large", None),
        ("bad_beam", 422, "bad_option", "beam"),
        ("beam_over_max", 422, "bad_option", "beam"),
        ("unknown_option", 422, "bad_option", "colour"),
        ("no_images", 422, "no_images", None),
        ("bad_json", 400, "bad_json", None),
        ("wrong_media_type", 415, "unsupported_media_type", None),
        ("json_without_images", 422, "bad_request", "images"),
    ],
)
def test_client_mistakes_get_a_4xx_json_error_naming_item_and_problem(
    server: str, case: str, status: int, code: str, item: str | None
):
    small = png(IMAGES["a.png"])
    if case == "not_an_image":
        got, body = post_files(server, [("x.png", b"\x89PNG\r\n\x1a\n broken")])
    elif case == "too_many_pixels":
        got, body = post_files(server, [("big.png", _big())])
    elif case == "too_many_images":
        got, body = post_files(server, [(f"{i}.png", small) for i in range(LIMITS["max_images"] + 1)])
    elif case == "body_too_large":
        got, body = post_files(server, [("a.png", small + b"\0" * LIMITS["max_body_bytes"])])
    elif case == "bad_beam":
        got, body = post_files(server, [("a.png", small)], beam="-1")
    elif case == "beam_over_max":
        got, body = post_files(server, [("a.png", small)], beam=str(LIMITS["max_beam"] + 1))
    elif case == "unknown_option":
        got, body = post_files(server, [("a.png", small)], colour="red")
    elif case == "no_images":
        got, body = post_json(server, {"images": []})
    elif case == "bad_json":
        s, _, raw = request(server + "/v1/read", b"{not json", {"Content-Type": "application/json"})
        got, body = s, json.loads(raw)
    elif case == "wrong_media_type":
        s, _, raw = request(server + "/v1/read", small, {"Content-Type": "image/png"})
        got, body = s, json.loads(raw)
    else:
        got, body = post_json(server, {"pictures": []})
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    if item is not None:
        assert body["error"]["item"] == item and item in body["error"]["message"]


def test_health_readiness_metrics_and_docs(server: str, rec: strings.Recognizer):
    assert json.loads(request(server + "/healthz")[2]) == {"status": "ok"}
    status, _, raw = request(server + "/readyz")
    assert status == 200 and json.loads(raw)["status"] == "ready"
    info = json.loads(request(server + "/v1/info")[2])
    assert (info["locales"], info["default_locale"]) == ([*LOCALES], DEFAULT_LOCALE)
    assert info["reads_separators"] == rec.reads_separators
    status, headers, raw = request(server + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = raw.decode()
    for name in (
        "strings_requests_total",
        "strings_errors_total",
        "strings_request_seconds_bucket",
        "strings_batch_size_bucket",
    ):
        assert name in text
    schema = json.loads(request(server + "/openapi.json")[2])
    assert {"/v1/read", "/v1/digits", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/v1/read"]["post"]["requestBody"]["content"]
    status, _, raw = request(server + "/docs")
    assert status == 200 and b"/static/docs.js" in raw and b"cdn" not in raw.lower()
    assert request(server + "/static/docs.js")[0] == 200
    status, _, raw = request(server + "/no/such/page")
    assert status == 404 and json.loads(raw)["error"]["code"] == "not_found"


def test_concurrent_requests_are_read_in_shared_batches(server: str):
    before = request(server + "/metrics")[2].decode()
    n = 12
    data = png(IMAGES["c.png"])
    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda i: post_files(server, [(f"{i}.png", data)]), range(n)))
    assert all(s == 200 and b["results"][0]["image"] == f"{i}.png" for i, (s, b) in enumerate(answers))
    after = request(server + "/metrics")[2].decode()
    images = metric(after, "strings_batch_size_sum") - metric(before, "strings_batch_size_sum")
    batches = metric(after, "strings_batch_size_count") - metric(before, "strings_batch_size_count")
    assert images == n and batches < n, f"{n} concurrent requests were read in {batches:g} batches"
    bucket_1 = r'strings_batch_size_bucket{le="1.0"}'
    assert metric(after, bucket_1) - metric(before, bucket_1) < batches  # some batch held more than one image


def test_digits_with_a_chosen_model(server: str):
    seven = png(cv2.resize(render_digits("7", height=40), (28, 40)))
    status, body = post_files(server, [("seven.png", seven)], path="/v1/digits", model="mnist")
    assert status == 200 and body["model"] == "mnist"
    record = body["results"][0]
    assert record["image"] == "seven.png" and len(record["probabilities"]) == 10 and record["digit"] in range(10)
    status, body = post_files(server, [("seven.png", seven)], path="/v1/digits", model="/etc/passwd")
    assert status == 422 and body["error"]["item"] == "model"


def test_the_page_and_its_assets_are_served_from_the_package(server: str):
    status, headers, raw = request(server + "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    html = raw.decode()
    assert "/static/app.js" in html and "/static/app.css" in html and "http" not in re.sub(r'href="/[^"]*"', "", html)
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        status, headers, raw = request(server + f"/static/{name}")
        assert status == 200 and kind in headers["content-type"] and raw == (STATIC_DIR / name).read_bytes()


def test_sigterm_finishes_the_request_in_flight_and_exits_0(model_path: Path):
    port = free_port()
    hold_ms = 1500  # the batch waits this long for company: the request is in flight when SIGTERM comes
    cmd = [
        sys.executable,
        "-m",
        "strings",
        "serve",
        "--model",
        str(model_path),
        "--port",
        str(port),
        "--max-wait-ms",
        str(hold_ms),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc)
        result: dict[str, Any] = {}
        t = threading.Thread(target=lambda: result.update(answer=post_files(base, [("c.png", png(IMAGES["c.png"]))])))
        t.start()
        time.sleep(hold_ms / 3000)
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert result["answer"][0] == 200 and result["answer"][1]["results"][0]["image"] == "c.png"
        assert proc.wait(30) == 0
        with pytest.raises(OSError):  # no longer accepting
            request(base + "/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_cli_help_works_and_a_missing_extra_is_named():
    from strings.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    code = "import sys; sys.modules['fastapi'] = None; from strings.cli.main import main; sys.exit(main(['serve']))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2 and "pip install 'strings[serve]'" in done.stderr


CHROMIUM, CHROMEDRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)


@pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
)
def test_the_page_reads_an_uploaded_image_and_draws_the_boxes_and_the_amount(server: str, tmp_path: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    image = tmp_path / "amount.png"
    image.write_bytes(png(IMAGES["c.png"]))
    locale = "en-US"  # not the default: the picker's choice must reach the server
    expected = post_files(server, [("amount.png", image.read_bytes())], amount="true", locale=locale)[1]["results"][0]
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.get(server + "/")
        picker = Select(driver.find_element(By.ID, "locale"))
        WebDriverWait(driver, 20).until(lambda d: len(picker.options) == len(LOCALES))  # filled from /v1/info
        assert picker.first_selected_option.get_attribute("value") == DEFAULT_LOCALE
        picker.select_by_value(locale)
        checkbox = driver.find_element(By.ID, "amount")
        assert checkbox.is_enabled()  # every model reads amounts; the label says why they all go to review
        title = driver.find_element(By.CSS_SELECTOR, "label:has(#amount)").get_attribute("title")
        info = json.loads(request(server + "/v1/info")[2])
        assert "reads no separators" in title, title  # the tiny model reads no separators
        assert ("no fitted operating point" in title) == (not info["supports"]["operating_point"]), title
        checkbox.click()
        driver.find_element(By.ID, "file").send_keys(str(image))
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error")
        )
        assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", driver.find_element(
            By.ID, "status"
        ).text
        assert driver.find_element(By.ID, "text").text == (expected["text"] or "(nothing read)")
        boxes = driver.find_elements(By.CSS_SELECTOR, "#boxes .digit-box")
        assert len(boxes) == len(expected["digits"])
        labels = [b.text for b in boxes]
        assert labels == [f"{d['char']} {d['confidence']:.2f}" for d in expected["digits"]]
        assert all(b.size["width"] > 0 and b.size["height"] > 0 for b in boxes)  # drawn over the image
        amount = expected["amount"]
        assert amount["locale"] == locale and amount["status"] == "review"  # the tiny model reads no separators
        assert driver.find_element(By.ID, "amount-written").text == (amount["written"] or "(nothing read)")
        assert driver.find_element(By.ID, "amount-value").text == (
            "—" if amount["value"] is None else f"{amount['value']} ({locale})"
        )
        assert driver.find_element(By.ID, "amount-status").text == "review"
        assert driver.find_element(By.ID, "amount-reasons").text == "; ".join(amount["reasons"])
    finally:
        driver.quit()
