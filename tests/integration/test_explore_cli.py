"""``leadingterms explore``: the page is self-contained, its lists equal the API's, and it works in a real
headless Chromium (Playwright driving the system browser; skipped when either is absent)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil

import pytest
from helpers import one_line_error, run_cli

from leadingterms.associations import open_readouts
from leadingterms.explore import BASIS_VIEWS, decode_list, pick_checkpoints

K = 5


@pytest.fixture(scope="module")
def explored(run_factory, tmp_path_factory):
    run = run_factory("explore_run", layers=2, steps=4)
    out = tmp_path_factory.mktemp("explore") / "page.html"
    from leadingterms.cli import main

    assert main(["explore", "--run", str(run), "--k", str(K), "--checkpoints", "1,4", "--out", str(out)]) == 0
    return run, out


def page_parts(path):
    text = path.read_text(encoding="utf-8")
    meta = json.loads(re.search(r'<script id="lt-meta" type="application/json">(.*?)</script>', text, re.S)
                      .group(1).replace("<\\/", "</"))
    data = re.search(r'<script id="lt-data" type="text/plain">(.*?)</script>', text, re.S).group(1)
    return text, meta, gzip.decompress(base64.b64decode(data))


def decoded_list(meta, blob, key, step, ranking, token):
    return [(meta["vocab"][i], v) for i, v in decode_list(blob, meta, key, step, ranking, token)]


def same_list(got, want, vector, vocab, rel=2e-3):
    """Tie- and float16-robust: values match rank by rank, and each listed token carries its own value."""
    assert len(got) == len(want)
    scale = max(abs(v) for _, v in want) if want else 1.0
    for (tok, v), (_, w) in zip(got, want, strict=True):
        assert v == pytest.approx(w, rel=rel, abs=rel * scale)
        assert float(vector[vocab.index(tok)]) == pytest.approx(v, rel=rel, abs=rel * scale)


def test_page_is_self_contained_and_equals_the_api(explored):
    run, out = explored
    text, meta, blob = page_parts(out)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text) and "<link" not in text
    assert meta["steps"] == [1, 4] and meta["layers"] == 2 and meta["V"] == len(meta["vocab"])
    for step in (1, 4):
        ro = open_readouts(run=run, step=step)
        for tok in ("the", "bird", meta["vocab"][-1]):
            i = ro.index(tok)
            for how in ("none", "freq", "centred"):
                for v in BASIS_VIEWS:
                    col = v.direction == "column"
                    want = ro.top(v.name, i, k=K, column=col, normalize=how, exclude_self=v.exclude_self)
                    got = decoded_list(meta, blob, v.key, None, how, i)
                    same_list(got, want, ro.vector(v.name, i, column=col, normalize=how), ro.vocab)
                for name in ("W_O", "V^(1)", "V^(0)·W_O", "W^(1)"):
                    want = ro.top(name, i, k=K, normalize=how)
                    same_list(decoded_list(meta, blob, f"{name}:row", step, how, i), want,
                              ro.vector(name, i, normalize=how), ro.vocab)


def test_explore_errors_and_checkpoint_choice(explored, tmp_path, capsys):
    run, out = explored
    one_line_error(capsys, "explore", "--out", tmp_path / "x.html", match="--stats DIR")
    one_line_error(capsys, "explore", "--run", run, "--out", out, match="--force")
    one_line_error(capsys, "explore", "--run", run, "--checkpoints", "1,99", "--out", tmp_path / "x.html",
                   match="[99]")
    one_line_error(capsys, "explore", "--run", run, "--out", tmp_path / "x.txt", match=".html")
    (tmp_path / "d.html").mkdir()  # issue 10: refused before any work, not after computing the page
    one_line_error(capsys, "explore", "--run", run, "--out", tmp_path / "d.html", "--force", match="is a directory")
    assert pick_checkpoints([0, 1, 2, 4, 8, 16, 32, 64, 100], 4) == [1, 4, 16, 100]  # nearest in log(step)
    assert pick_checkpoints([0, 1, 2], 5) == [1, 2] and pick_checkpoints([0], 3) == []
    rc, stdout, _ = run_cli(capsys, "explore", "--stats", run.parent / "stats", "--k", "3",
                            "--out", tmp_path / "basis.html")
    assert rc == 0 and "top-3 lists; open it" in stdout
    _, meta, _ = page_parts(tmp_path / "basis.html")
    assert meta["steps"] == [] and meta["learned"] == []


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_page_in_headless_chromium(explored):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install .[dev])")
    chrome = _chromium()
    if chrome is None:
        pytest.skip("Chromium not installed (apt-get install chromium); the browser test is skipped")
    run, out = explored
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chrome, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(out.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=20000)

            def card(key):
                return [(li.get_attribute("data-token"), float(li.get_attribute("data-value")))
                        for li in page.query_selector_all(f"#card ol[data-view='{key}'] li[data-token]")]

            ro = open_readouts(run=run, step=4)
            word = next(t for i, t in enumerate(ro.vocab) if t.isalpha() and len(t) >= 4 and float(ro.Pi[i]) > 0)
            page.fill("#search", word[:3])
            page.wait_for_selector("#suggest li")
            names = [li.get_attribute("data-id") for li in page.query_selector_all("#suggest li")]
            assert str(ro.index(word)) in names
            page.click(f"#suggest li[data-id='{ro.index(word)}']")
            page.wait_for_function(f"document.querySelector('#card h2').textContent === {json.dumps(word)}")
            i = ro.index(word)
            for how in ("none", "freq", "pmi", "centred"):
                page.check(f"input[name=norm][value={how}]")
                for v in BASIS_VIEWS[:3] + BASIS_VIEWS[-2:]:
                    col = v.direction == "column"
                    want = ro.top(v.name, i, k=K, column=col, normalize=how, exclude_self=v.exclude_self)
                    same_list(card(v.key), want, ro.vector(v.name, i, column=col, normalize=how), ro.vocab)
                same_list(card("V^(0)·W_O:row"), ro.top("V^(0)·W_O", i, k=K, normalize=how),
                          ro.vector("V^(0)·W_O", i, normalize=how), ro.vocab)
            assert page.inner_text("#steplabel") == "step 4"
            page.focus("#step")
            page.keyboard.press("Home")  # the slider to its first checkpoint
            page.wait_for_function("document.querySelector('#steplabel').textContent === 'step 1'")
            ro1 = open_readouts(run=run, step=1)
            page.check("input[name=norm][value=none]")
            same_list(card("W_O:row"), ro1.top("W_O", i, k=K), ro1.vector("W_O", i), ro1.vocab)
            assert "Learned weights at step 1" in page.inner_text("#card")
            # clicking a listed token opens its card
            target = card("bigram:row")[0][0]
            page.click("#card ol[data-view='bigram:row'] li[data-token] a")
            page.wait_for_function(f"document.querySelector('#card h2').textContent === {json.dumps(target)}")
            assert page.evaluate("decodeURIComponent(location.hash.slice(1))") == target
            # Enter on an exact token
            page.fill("#search", "the")
            page.press("#search", "Enter")
            page.wait_for_function("document.querySelector('#card h2').textContent === 'the'")
        finally:
            browser.close()
    assert problems == []
