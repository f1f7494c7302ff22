"""Tests for the live Wikipedia source, against a local HTTP server (never the internet)."""

import gzip
import json
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from wiki_server import PAGES, UA, Reply, page, rest_path, serve

from src import utils, wikipedia
from src.headings import canonical_heading

# A Parsoid-like page with every kind of clutter the parser must drop. Each dropped part
# holds a word starting with "JUNK", so one check proves none of them leaked.
COMET_HTML = """<!DOCTYPE html>
<html prefix="dc: http://purl.org/dc/terms/ mw: http://mediawiki.org/rdf/"><head>
<meta charset="utf-8"/><title>Halley's Comet</title>
<style>.mw-parser-output .JUNKstyle{color:red}</style>
<script>var JUNKscript = 1;</script>
</head>
<body class="mw-content-ltr parsoid-body mediawiki mw-parser-output" lang="en">
<section data-mw-section-id="0" id="mwAQ">
<div class="shortdescription nomobile noexcerpt noprint searchaux" style="display:none">JUNKshort</div>
<div role="note" class="hatnote navigation-not-searchable"><p>For other uses, see JUNKhatnote.</p></div>
<table class="infobox"><tbody>
<tr><th>Discovered by</th><td><p>JUNKinfobox Edmond Halley</p></td></tr>
</tbody></table>
<figure typeof="mw:File/Thumb"><a href="./File:Halley.jpg"><img src="//upload.example/h.jpg"/></a>
<figcaption><p>JUNKcaption: the comet in 1986</p></figcaption></figure>
<p id="mwBw"><b>Halley's Comet</b> is a short-period <a href="./Comet">comet</a> visible
from Earth every 75&#8211;79&nbsp;years.<sup about="#mwt5" class="mw-ref reference" id="cite_ref-1"
typeof="mw:Extension/ref"><a href="./Halley's_Comet#cite_note-1"><span class="mw-reflink-text">[JUNKref1]</span></a></sup>
It last appeared in 1986.</p>
<p>It is named after   Edmond
Halley.<sup class="noprint Inline-Template Template-Fact">[<i><a href="./Wikipedia:Citation_needed">JUNKcn</a></i>]</sup></p>
<p class="mw-empty-elt"></p>
</section>
<section data-mw-section-id="1" id="mwCA">
<div class="mw-heading mw-heading2"><h2 id="Orbit">Orbit</h2><span class="mw-editsection"><span class="mw-editsection-bracket">[</span><a href="./Special:Edit">JUNKedit</a><span class="mw-editsection-bracket">]</span></span></div>
<p>The orbit is very eccentric, with <span class="mwe-math-element"><span class="mwe-math-mathml-inline" style="display: none;"><math xmlns="http://www.w3.org/1998/Math/MathML" alttext="{\\displaystyle e\\approx 0.967}"><semantics><mrow><mi>e</mi><mo>&#8776;</mo><mn>0.967</mn></mrow><annotation encoding="application/x-tex">{\\displaystyle JUNKtex}</annotation></semantics></math></span><img src="//math.example/e.svg" class="mwe-math-fallback-image-inline" alt="{\\displaystyle e}"/></span>.</p>
<table class="wikitable"><caption>JUNKtable apparitions</caption>
<tr><th>Year</th></tr><tr><td><p>JUNKcell 1986</p></td></tr></table>
<div role="navigation" class="navbox"><p>JUNKnavbox</p></div>
<section data-mw-section-id="2">
<div class="mw-heading mw-heading3"><h3 id="Period">Period</h3></div>
<p>The period changes because of <a href="./Jupiter">planetary</a> perturbations. [3]</p>
</section>
</section>
<section data-mw-section-id="3">
<div class="mw-heading mw-heading2"><h2 id="Gallery">Gallery</h2></div>
<ul class="gallery"><li>JUNKgallery</li></ul>
</section>
<section data-mw-section-id="4">
<div class="mw-heading mw-heading2"><h2 id="See_also">See also</h2></div>
<ul><li><a href="./Comet_Hale-Bopp">JUNKseealso Comet Hale&#8211;Bopp</a></li></ul>
<p>JUNKseealso paragraph</p>
</section>
<section data-mw-section-id="5">
<div class="mw-heading mw-heading2"><h2 id="References">References</h2></div>
<div class="mw-references-wrap"><ol class="mw-references references">
<li id="cite_note-1"><span class="mw-reference-text"><p>JUNKreflist Yeomans 1991.</p></span></li>
</ol></div>
<p>JUNKreferences paragraph</p>
</section>
</body></html>
"""
COMET_RECORD = {
    "id": "astronomy/halley-s-comet",
    "title": "Halley's Comet",
    "domain": "astronomy",
    "aliases": [],  # Wikipedia pages have no alias list
    "lead": "Halley's Comet is a short-period comet visible from Earth every 75\u201379 years. "
    "It last appeared in 1986.\n\nIt is named after Edmond Halley.",
    "sections": [
        {
            "heading": "Orbit",
            "text": "The orbit is very eccentric, with e \u2248 0.967.\n\nThe period changes because of planetary perturbations.",
        }
    ],
}

# The older flat layout (action=render): headings and paragraphs are siblings.
FLAT_HTML = """<html><body><div class="mw-parser-output">
<p>The <b>heart</b> pumps blood.<sup class="reference"><a>[1]</a></sup></p>
<h2><span class="mw-headline" id="Structure">Structure</span><span class="mw-editsection">[edit]</span></h2>
<p>It has four chambers.[citation needed]</p>
<h3><span class="mw-headline" id="Valves">Valves</span></h3>
<p>Valves stop backflow.</p>
<h2><span class="mw-headline" id="Notes">Notes</span></h2>
<p>A note paragraph.</p>
<h2><span class="mw-headline" id="Function">Function</span></h2>
<p>It beats about 70 times a minute.</p>
<h2><span class="mw-headline" id="External_links">External links</span></h2>
<div class="reflist"><ol class="references"><li>A reference.</li></ol></div>
</div></body></html>"""


@pytest.fixture
def wiki():
    """A real HTTP server on 127.0.0.1, on a free port, for the length of one test."""
    with serve() as fake:
        yield fake


class RecordingSession(requests.Session):
    """A session that remembers every URL it was asked to fetch, and ignores proxy env vars."""

    def __init__(self):
        super().__init__()
        self.trust_env = False
        self.urls: list[str] = []

    def send(self, request, **kwargs):  # every request passes here, redirects included
        self.urls.append(request.url)
        return super().send(request, **kwargs)


@pytest.fixture
def session():
    with RecordingSession() as s:
        yield s


@pytest.fixture
def sleeps(monkeypatch):
    """Record backoff waits instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr(wikipedia.time, "sleep", waits.append)
    return waits


def fetched(wiki, tmp_path, session, topics, **kwargs) -> wikipedia.Fetched:
    kwargs.setdefault("backoff", 0.0)
    return wikipedia.fetch_articles(topics, wiki.base_url, tmp_path / "cache", UA, session=session, **kwargs)


def fetch(wiki, tmp_path, session, topics, **kwargs) -> list[dict]:
    """The articles, when none was skipped."""
    result = fetched(wiki, tmp_path, session, topics, **kwargs)
    assert result.skipped == []
    return result.articles


def skipped(wiki, tmp_path, session, topics, **kwargs) -> list[str]:
    """Why each topic was skipped, as 'title: reason'."""
    return [f"{s['title']}: {s['reason']}" for s in fetched(wiki, tmp_path, session, topics, **kwargs).skipped]


def test_article_id():
    assert utils.article_id("astronomy", "Halley's Comet") == "astronomy/halley-s-comet"
    assert utils.article_id("geography", "Mount Everest (mountain)") == "geography/mount-everest-mountain"


def test_parse_parsoid_page():
    url = "https://en.wikipedia.org/wiki/Halley's_Comet"
    record = wikipedia.parse_article(COMET_HTML, "Halley's Comet", "astronomy", url)
    assert record == {**COMET_RECORD, "url": url}
    assert "JUNK" not in json.dumps(record)


def test_parse_flat_layout_and_bytes():
    record = wikipedia.parse_article(FLAT_HTML.encode(), "Heart", "anatomy", "u")
    assert record["lead"] == "The heart pumps blood."
    assert record["aliases"] == []
    assert record["sections"] == [
        {"heading": "Structure", "text": "It has four chambers.\n\nValves stop backflow."},
        {"heading": "Function", "text": "It beats about 70 times a minute."},
    ]


def test_citation_markers_removed_but_chemistry_brackets_kept():
    html = "<p>Rate is k[A][B].[12][note 2] Iron [Fe(CN)6] ions[who?] exist.[clarification needed]</p>"
    assert wikipedia.parse_article(html, "Rate", "chemistry", "u")["lead"] == "Rate is k[A][B]. Iron [Fe(CN)6] ions exist."


def test_page_without_lead_is_an_error():
    with pytest.raises(wikipedia.FetchError, match="Empty: page has no lead text"):
        wikipedia.parse_article("<html><body><h2>Only</h2><p>text</p></body></html>", "Empty", "weather", "u")


def test_external_entities_are_never_resolved(wiki, tmp_path, session):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    html = f"""<?xml version="1.0"?>
<!DOCTYPE html SYSTEM "{wiki.base_url}/evil.dtd" [
  <!ENTITY file SYSTEM "file://{secret}">
  <!ENTITY web SYSTEM "{wiki.base_url}/entity">
]>
<html><body><p>Storms are &file; windy &web; weather.</p></body></html>"""
    wiki.add("Storm", Reply(body=html.encode()))
    (record,) = fetch(wiki, tmp_path, session, [("weather", "Storm")])
    assert "TOPSECRET" not in json.dumps(record)
    assert record["lead"].startswith("Storms are")
    assert [path for path, _ in wiki.seen] == [rest_path("Storm")]  # no DTD or entity fetched


def test_fetch_sends_user_agent_and_builds_record(wiki, tmp_path, session):
    wiki.add("Halley's Comet", Reply(body=COMET_HTML.encode()))
    (record,) = fetch(wiki, tmp_path, session, [("astronomy", "Halley's Comet")])
    url = f"{wiki.base_url}/wiki/Halley%27s_Comet"
    assert record == {**COMET_RECORD, "url": url, "resolved_title": "Halley's Comet"}
    assert wiki.seen == [(rest_path("Halley's Comet"), UA)]
    assert session.urls == [f"{wiki.base_url}/w/rest.php/v1/page/Halley%27s_Comet/html"]
    assert (tmp_path / "cache" / "halley-s-comet.html").read_bytes() == COMET_HTML.encode()
    # The record is one the generate stage accepts (every article field, with its type).
    utils.write_jsonl(tmp_path / "articles.jsonl", [record])
    assert utils.read_articles(tmp_path / "articles.jsonl") == [record]


def test_default_session_works(wiki, tmp_path, monkeypatch):
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    wiki.add("Wind", Reply(body=page("Wind is moving air.")))
    (record,) = wikipedia.fetch_articles([("weather", "Wind")], wiki.base_url + "/", tmp_path, UA).articles
    assert record["lead"] == "Wind is moving air."
    assert wiki.seen == [(rest_path("Wind"), UA)]


def test_retries_after_503(wiki, tmp_path, session, sleeps):
    wiki.add("Cloud", Reply(503), Reply(body=page("Clouds float.")))
    (record,) = fetch(wiki, tmp_path, session, [("weather", "Cloud")], backoff=0.5)
    assert record["lead"] == "Clouds float."
    assert wiki.hits("Cloud") == 2
    assert sleeps == [0.5]


def test_429_honours_retry_after(wiki, tmp_path, session, sleeps):
    wiki.add("Rain", Reply(429, headers={"Retry-After": "7"}), Reply(body=page("Rain falls.")))
    (record,) = fetch(wiki, tmp_path, session, [("weather", "Rain")], backoff=30.0)
    assert record["lead"] == "Rain falls."
    assert wiki.hits("Rain") == 2
    assert sleeps == [pytest.approx(7.0, abs=0.5)]  # the server's wait, not the backoff's 30 s


def test_persistent_500_gives_up_after_max_retries(wiki, tmp_path, session, sleeps):
    wiki.add("Fog", Reply(500))
    with pytest.raises(wikipedia.FetchError, match="Fog: HTTP 500 .* gave up after 4 tries"):
        fetch(wiki, tmp_path, session, [("weather", "Fog")], max_retries=3, backoff=1.0)
    assert wiki.hits("Fog") == 4
    assert sleeps == [1.0, 2.0, 4.0]
    assert not (tmp_path / "cache" / "fog.html").exists()


def test_timeout_is_retried(wiki, tmp_path, session):
    wiki.add("Hail", Reply(body=b"", delay=1.0), Reply(body=page("Hail is ice.")))
    (record,) = fetch(wiki, tmp_path, session, [("weather", "Hail")], timeout=0.2)
    assert record["lead"] == "Hail is ice."
    assert wiki.hits("Hail") == 2


def test_deadline_covers_the_whole_answer(wiki, tmp_path, session):
    """A server dripping 8 bytes every 0.2 s would take 3 s; the 0.5 s deadline ends it early."""
    body = page("Sleet is " + "very " * 8 + "wet.")  # 105 bytes: 14 drips
    wiki.add("Sleet", Reply(body=body, drip=0.2))
    with pytest.raises(
        wikipedia.FetchError, match=r"^Sleet: no whole answer within the 0.5 s deadline from .*, gave up after 1 tries; "
    ):
        fetch(wiki, tmp_path, session, [("weather", "Sleet")], timeout=0.5, max_retries=0)
    assert wiki.answered.wait(5)  # the server notices the client hung up at its next write
    assert 0 < wiki.sent[0] < len(body)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_deadline_covers_the_headers(wiki, tmp_path, session):
    """Headers dripped 8 bytes every 0.2 s would take over 3 s (each read well within the
    0.5 s timeout): the deadline ends the request before they are in, and the answer is
    not cached."""
    wiki.add("Rime", Reply(body=page("Rime is frost."), drip_headers=0.2))
    start = time.monotonic()
    with pytest.raises(
        wikipedia.FetchError, match=r"^Rime: no whole answer within the 0.5 s deadline from .*, gave up after 1 tries"
    ):
        fetch(wiki, tmp_path, session, [("weather", "Rime")], timeout=0.5, max_retries=0)
    assert time.monotonic() - start < 2.0  # the headers alone take over 3 s to come
    assert wiki.answered.wait(10)  # the helper hangs up when the answer comes at last
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("content_length", [False, True], ids=["no-length", "short-of-length"])
def test_page_cut_short_is_retried_and_never_cached(wiki, tmp_path, session, sleeps, content_length):
    body = page("Dew forms at night.")
    cut = Reply(body=body, cut=len(body) - 10, content_length=content_length)
    wiki.add("Dew", cut)
    problem = "network error" if content_length else rf"page cut short after {len(body) - 10} bytes \(no closing </html>\)"
    with pytest.raises(wikipedia.FetchError, match=rf"^Dew: {problem}.*, gave up after 2 tries; "):
        fetch(wiki, tmp_path, session, [("weather", "Dew")], max_retries=1)
    assert wiki.hits("Dew") == 2
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    wiki.add("Dew", cut, Reply(body=body))  # a retry that gets the whole page succeeds
    (record,) = fetch(wiki, tmp_path, session, [("weather", "Dew")], max_retries=1)
    assert record["lead"] == "Dew forms at night."
    assert (tmp_path / "cache" / "dew.html").read_bytes() == body


@pytest.mark.parametrize(
    "cached", [page("Ice is cold.")[:-9], page("Ice is cold.").replace(b"cold", b"c\xffld")], ids=["half", "not-utf8"]
)
def test_bad_cached_page_is_downloaded_again(wiki, tmp_path, session, cached):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "ice.html").write_bytes(cached)
    (tmp_path / "cache" / "ice.title").write_text("Old ice")  # a stale redirect target goes too
    wiki.add("Ice", Reply(body=page("Ice is frozen water.")))
    (record,) = fetch(wiki, tmp_path, session, [("weather", "Ice")])
    assert (record["lead"], record["resolved_title"]) == ("Ice is frozen water.", "Ice")
    assert wiki.hits("Ice") == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ice.html"]
    assert (tmp_path / "cache" / "ice.html").read_bytes() == page("Ice is frozen water.")


def test_gzip_answer_is_decoded(wiki, tmp_path, session):
    """Wikipedia compresses its pages; the body is read in pieces and must come out whole."""
    lead = " ".join(f"Saturn has moon {i}." for i in range(4000))  # 80 kB: two reads at least
    body = page(lead)
    wiki.add("Saturn", Reply(body=gzip.compress(body), headers={"Content-Encoding": "gzip"}))
    (record,) = fetch(wiki, tmp_path, session, [("astronomy", "Saturn")])
    assert record["lead"] == lead
    assert (tmp_path / "cache" / "saturn.html").read_bytes() == body


def test_connection_error_is_retried_then_fails(tmp_path, session, sleeps):
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as server:
        port = server.server_address[1]  # a port that nobody listens on once closed
    with pytest.raises(wikipedia.FetchError, match="Snow: network error"):
        wikipedia.fetch_articles(
            [("weather", "Snow")], f"http://127.0.0.1:{port}", tmp_path, UA, max_retries=2, backoff=0.0, session=session
        )
    assert len(session.urls) == 3


def test_404_is_skipped_without_retry(wiki, tmp_path, session, sleeps):
    wiki.add("Wolf", Reply(body=page("Wolves hunt in packs.")))
    result = fetched(wiki, tmp_path, session, [("animals", "Nosuchpage"), ("animals", "Wolf")])
    assert [r["title"] for r in result.articles] == ["Wolf"]
    url = f"{wiki.base_url}{rest_path('Nosuchpage')}"
    assert result.skipped == [{"domain": "animals", "title": "Nosuchpage", "reason": f"HTTP 404 (no such article) from {url}"}]
    assert wiki.hits("Nosuchpage") == 1
    assert sleeps == []


def test_off_host_redirect_is_refused(wiki, tmp_path, session):
    wiki.add("Wolf", Reply(307, headers={"Location": "http://example.invalid/w/rest.php/v1/page/Wolf/html"}))
    (reason,) = skipped(wiki, tmp_path, session, [("animals", "Wolf")])
    assert reason.startswith("Wolf: refusing redirect to another host (http://example.invalid/")
    assert not any("example.invalid" in url for url in session.urls)


def test_old_endpoint_redirect_is_followed(wiki, tmp_path, session):
    wiki.add("Grey wolf", Reply(302, headers={"Location": "Wolf"}), endpoint="rest_v1")  # relative, as RESTBase answers
    wiki.add("Wolf", Reply(body=page("Wolves hunt in packs.")), endpoint="rest_v1")
    (record,) = fetch(wiki, tmp_path, session, [("animals", "Grey wolf")], endpoint="rest_v1")
    assert record["lead"] == "Wolves hunt in packs."
    assert (record["id"], record["title"], record["resolved_title"]) == ("animals/grey-wolf", "Grey wolf", "Wolf")
    assert record["url"] == f"{wiki.base_url}/wiki/Wolf"
    assert [path for path, _ in wiki.seen] == [rest_path("Grey wolf", "rest_v1"), rest_path("Wolf", "rest_v1")]


def test_new_endpoint_normalises_then_redirects(wiki, tmp_path, session):
    """rest.php answers 301 to a title's normal form, then 307 from a redirect page to its target."""
    wiki.add("grey wolf", Reply(301, headers={"Location": "/w/rest.php/v1/page/Grey_wolf/html"}))
    wiki.add("Grey wolf", Reply(307, headers={"Location": f"{wiki.base_url}/w/rest.php/v1/page/Wolf/html"}))
    wiki.add("Wolf", Reply(body=page("Wolves hunt in packs.")))
    (record,) = fetch(wiki, tmp_path, session, [("animals", "grey wolf")])
    assert (record["title"], record["resolved_title"], record["url"]) == ("grey wolf", "Wolf", f"{wiki.base_url}/wiki/Wolf")
    assert [path for path, _ in wiki.seen] == [rest_path("grey wolf"), rest_path("Grey wolf"), rest_path("Wolf")]
    assert (tmp_path / "cache" / "grey-wolf.title").read_text() == "Wolf"
    wiki.seen.clear()
    assert fetch(wiki, tmp_path, session, [("animals", "grey wolf")]) == [record]  # the cache keeps the resolved title
    assert wiki.seen == []


def test_unknown_endpoint_is_refused(tmp_path, session):
    with pytest.raises(wikipedia.FetchError, match="endpoint 'rest_v2' is not one of rest.php, rest_v1"):
        wikipedia.fetch_articles([("animals", "Wolf")], "http://127.0.0.1:9", tmp_path, UA, session=session, endpoint="rest_v2")


def test_redirect_loop_is_skipped(wiki, tmp_path, session):
    wiki.add("Loop", Reply(301, headers={"Location": rest_path("Loop")}))
    (reason,) = skipped(wiki, tmp_path, session, [("animals", "Loop")])
    assert reason.startswith("Loop: more than 5 redirects")
    assert wiki.hits("Loop") == 6


def test_second_title_for_a_fetched_page_is_skipped(wiki, tmp_path, session):
    """Two titles that land on one page would put the same text in two articles (and splits)."""
    wiki.add("Grey wolf", Reply(307, headers={"Location": rest_path("Wolf")}))
    wiki.add("Wolf", Reply(body=page("Wolves hunt in packs.")))
    result = fetched(wiki, tmp_path, session, [("animals", "Wolf"), ("animals", "Grey wolf")], workers=2)
    assert [r["title"] for r in result.articles] == ["Wolf"]
    assert result.skipped == [{"domain": "animals", "title": "Grey wolf", "reason": "the same page as 'Wolf'"}]


def test_non_http_base_url_is_refused(tmp_path, session):
    with pytest.raises(wikipedia.FetchError, match="must be an http"):
        wikipedia.fetch_articles([("animals", "Wolf")], "file:///etc", tmp_path, UA, session=session)
    assert session.urls == []


def test_cached_pages_need_no_request(wiki, tmp_path, session):
    wiki.add("Mars", Reply(body=page("Mars is red.")))
    wiki.add("Venus", Reply(body=page("Venus is hot.")))
    topics = [("astronomy", "Mars"), ("astronomy", "Venus")]
    first = fetch(wiki, tmp_path, session, topics)
    assert len(wiki.seen) == 2
    wiki.seen.clear()
    assert fetch(wiki, tmp_path, session, topics) == first
    assert wiki.seen == []


def test_rerun_after_failure_fetches_only_the_rest(wiki, tmp_path, session):
    """A page the server keeps failing on stops the run, after every other page is cached."""
    wiki.add("Nile", Reply(body=page("The Nile is long.")))
    wiki.add("Amazon River", Reply(503))
    wiki.add("Sahara", Reply(body=page("The Sahara is dry.")))
    topics = [("geography", "Nile"), ("geography", "Amazon River"), ("geography", "Sahara")]
    with pytest.raises(
        wikipedia.FetchError, match="^Amazon River: HTTP 503 .* gave up after 1 tries; the other pages are cached"
    ):
        fetch(wiki, tmp_path, session, topics, max_retries=0)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["nile.html", "sahara.html"]
    wiki.add("Amazon River", Reply(body=page("The Amazon is wide.")))
    wiki.seen.clear()
    records = fetch(wiki, tmp_path, session, topics)
    assert [r["lead"] for r in records] == ["The Nile is long.", "The Amazon is wide.", "The Sahara is dry."]
    assert [path for path, _ in wiki.seen] == [rest_path("Amazon River")]


def test_duplicate_topics_are_refused(tmp_path, session):
    with pytest.raises(wikipedia.FetchError, match="share the name 'mars'"):
        wikipedia.fetch_articles(
            [("astronomy", "Mars"), ("geography", "Mars")], "http://127.0.0.1:9", tmp_path, UA, session=session
        )


# What must never reach the text: IPA letters and slashes, respellings, the audio icon,
# references, edit links, navboxes, galleries, captions, hatnotes, TeX.
CLUTTER = re.compile(
    r"[ˈˌːəɪʊɛæɔʃʒθðŋⓘ\\]|\bU[SK]:|[A-Z]{2,}-[a-z]|Retrieved|\[\d|\bedit\b|Topic one|A photograph|redirects here|For other uses|displaystyle|\(\s*[;,)]"
)


def served(wiki, tmp_path, session) -> dict[str, dict]:
    """Every fixture page fetched through the local server, by file stem."""
    wiki.add_fixtures()
    records = fetch(wiki, tmp_path, session, [(domain, title) for domain, title, _ in PAGES.values()])
    return dict(zip(PAGES, records))


def test_realistic_pages_have_clean_leads_and_text(wiki, tmp_path, session):
    for stem, record in served(wiki, tmp_path, session).items():
        assert record["lead"].startswith(PAGES[stem][2] + " "), stem
        text = "\n".join([record["lead"]] + [f"{s['heading']}\n{s['text']}" for s in record["sections"]])
        assert not CLUTTER.search(text), (stem, CLUTTER.search(text))
        assert not {"Gallery", "See also", "References", "External links"} & {s["heading"] for s in record["sections"]}


def test_realistic_pages_keep_text_faithful(wiki, tmp_path, session):
    records = served(wiki, tmp_path, session)
    text = {stem: json.dumps(r, ensure_ascii=False) for stem, r in records.items()}
    assert "5.7×10^26 kg" in text["saturn"] and "10^8 km" in text["comet"] and "10^−5 m" in text["fog"]
    assert "molecular hydrogen (H2)" in text["saturn"] and "(Na^+)" in text["sodium_chloride"]
    assert "Kepler's third law, T^2 ∝ a^3, where T" in text["saturn"]  # formula from its alt text
    assert "CH4 + 2 O2 -> CO2 + 2 H2O" in text["methane"]
    assert "follows  for" not in text["comet"] and "Brightness changes quickly" in text["comet"]  # unreadable: sentence gone
    assert "33 minutes. The equator" in text["saturn"] and "grey. Females" in text["barn_owl"]  # <br> is a space
    assert "Its prey includes: sambar deer, chital, wild boar and gaur." in text["tiger"]
    assert "three layers: The endocardium lines the chambers and the valves. The myocardium" in text["heart"]
    assert "Pioneer 11 (1979), Voyager 1 (1980), Voyager 2 (1981) and Cassini–Huygens (2004–2017)." in text["saturn"]


def test_h3_that_means_another_heading_becomes_a_section(wiki, tmp_path, session):
    tiger = served(wiki, tmp_path, session)["tiger"]
    headings = [s["heading"] for s in tiger["sections"]]
    assert headings[3:6] == ["Behaviour and ecology", "Hunting and diet", "Reproduction and life cycle"]
    assert tiger["sections"][4]["text"].startswith("The tiger is a carnivore")


def test_list_without_readable_intro_is_dropped_with_its_intro():
    html = "<p>Rain is wet.</p><h2>Effects</h2><p>Floods follow. Names include:</p><ul><li>A</li></ul><dl><dd>x</dd></dl>"
    record = wikipedia.parse_article(html, "Rain", "weather", "u")
    assert record["sections"] == [{"heading": "Effects", "text": "Floods follow. Names include: A."}]
    html = "<p>Rain is wet.</p><h2>Effects</h2><p>Floods follow. The formula is:</p><dl><dd>x</dd></dl>"
    assert wikipedia.parse_article(html, "Rain", "weather", "u")["sections"][0]["text"] == "Floods follow."


@pytest.mark.parametrize(
    ("tex", "text"),
    [
        (r"{\displaystyle e\approx 0.967}", "e ≈ 0.967"),
        (r"{\displaystyle 1.8982\times 10^{27}\,{\text{kg}}}", "1.8982×10^27 kg"),
        (r"{\displaystyle \lambda =\frac{c}{f}}", "λ = c/f"),
        (r"{\displaystyle F=\frac{GMm}{r^{2}}}", "F = GMm/r^2"),
        (r"{\displaystyle \int f\,dx}", None),
        ("", None),
    ],
)
def test_tex_to_text(tex, text):
    assert wikipedia.tex_to_text(tex) == text


def test_too_deep_page_is_skipped_not_shortened(wiki, tmp_path, session):
    deep = "<div>" * 300 + "<p>Deep text.</p>" + "</div>" * 300
    wiki.add("Deep", Reply(body=f"<html><body><p>Deep is a page.</p>{deep}<p>More.</p></body></html>".encode()))
    (reason,) = skipped(wiki, tmp_path, session, [("weather", "Deep")])
    assert reason.startswith("Deep: cannot read the whole page (line 1: Excessive depth")
    assert not (tmp_path / "cache" / "deep.html").exists()


def test_page_that_is_not_utf8_is_an_error():
    with pytest.raises(wikipedia.FetchError, match=r"^Caf: page is not valid UTF-8 \(byte 12\)$"):
        wikipedia.parse_article(b"<html><p>Caf\xe9 is a place.</p></html>", "Caf", "geography", "u")


def test_most_section_words_sit_under_a_known_heading(wiki, tmp_path, session):
    """The heading mapping's reach on realistic pages (the issue asks for >= 90%)."""
    mapped = total = 0
    for record in served(wiki, tmp_path, session).values():
        for section in record["sections"]:
            words = len(section["text"].split())
            total += words
            mapped += words * (canonical_heading(record["domain"], section["heading"]) is not None)
    assert mapped / total >= 0.9
