"""Download Wikipedia articles and turn them into plain-text article records.

This is the live source of the fetch stage (the default source is an offline snapshot).
Each page comes from Wikipedia's REST API as Parsoid HTML, is cached on disk, and is
reduced to what a language model should learn from: the lead paragraphs and the prose of
each section, without references, tables, captions, navigation boxes or "edit" links, and
without the pronunciation guides of a lead. What is kept stays faithful: 10<sup>27</sup>
becomes "10^27", a formula comes from its TeX alt text (or its sentence goes), a list
becomes sentences, and a page the parser could not read whole is refused, never shortened.

Being a polite and careful client matters more here than speed:
- every request carries the caller's User-Agent (Wikimedia blocks anonymous scripts);
- at most MAX_WORKERS requests are in flight at once (Wikimedia asks for 3 or fewer);
- 429 and 5xx answers are retried with exponential backoff; a Retry-After pauses every
  worker, not only the one that was told;
- `timeout` is a deadline for the whole answer, so a server dripping bytes can't hold us;
- a page cut short (no closing </html>) is retried, never cached; a cut cached copy is refetched;
- redirects are followed only on the configured host, so a bad answer can't send us elsewhere;
- the HTML is parsed with the network off, so a page can't make lxml fetch anything either.

A page that cannot be had (no such article, a redirect loop, a page that doesn't parse, a
second title for a page already fetched) is skipped and reported; a page the server or the
network kept failing on stops the run, after the others are cached, since a rerun may get it.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import lxml.html
import requests
import urllib3
from lxml import etree
from tqdm import tqdm

from src import utils
from src.headings import canonical_heading

MAX_REDIRECTS = 5  # a page renamed twice is common; more hops means something is wrong
# "Limit the number of concurrent requests to 3 or fewer" (mediawiki.org, Wikimedia APIs/Rate limits)
MAX_WORKERS = 3
MAX_WAIT = 60.0  # seconds; cap on any single backoff or Retry-After wait
CHUNK = 64 * 1024  # bytes asked of the socket per read while downloading a page
WHOLE_PAGE = re.compile(rb"</html>\s*\Z", re.IGNORECASE)  # Parsoid pages end so; a cut one does not
# Where a page's HTML lives. rest.php (MediaWiki's own REST API) is the default; the older
# RESTBase path is being retired. Both redirect: 301 to a title's normal form, 307 (rest.php)
# or 302 (rest_v1) from a redirect page to its target.
ENDPOINTS = {"rest.php": "/w/rest.php/v1/page/{title}/html", "rest_v1": "/api/rest_v1/page/html/{title}"}
DROPPED_SECTIONS = {
    "references",
    "notes",
    "see also",
    "external links",
    "further reading",
    "bibliography",
    "sources",
    "citations",
    "footnotes",
    "notes and references",
}
DROPPED_TAGS = {"table", "figure", "style", "script"}
DROPPED_CLASSES = {
    "reference",
    "references",
    "mw-references-wrap",
    "reflist",
    "infobox",
    "thumb",
    "navbox",
    "hatnote",
    "mw-editsection",
    "noprint",
    "gallery",
    "sistersitebox",
    # pronunciation: IPA, respelling ("METH-ayn") and the audio button (ⓘ)
    "IPA",
    "rt-commentedText",
    "ext-phonos",
    "haudio",
}
# Markers that survive as plain text, e.g. "[12]", "[note 3]", "[citation needed]", "[who?]".
# Lowercase only, so chemistry notation such as "[A]" or "[Fe(CN)6]" is kept.
CITATION = re.compile(r"\s*\[(?:\d+|(?:note|nb) ?\d+|[a-z][a-z ]*(?:needed|\?))\]")


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def _is_clutter(element: etree._Element) -> bool:
    """A table, figure, reference, navigation box, pronunciation guide...: text not to learn.

    One pass in Python over the elements: an XPath per class took 10x as long on a 100 kB page."""
    return (
        element.tag in DROPPED_TAGS
        or not DROPPED_CLASSES.isdisjoint(element.get("class", "").split())
        or "-fonipa" in element.get("lang", "")  # IPA
        or element.get("title") == "English pronunciation respelling"
    )


DROP_SENTENCE = "\ue000"  # stands for a formula with no readable form: its sentence goes
SHORT_ITEM_WORDS = 6  # list items this short are names, not sentences
ORDINAL = re.compile(r"\s*(?:st|nd|rd|th)\s*$")
FIRST_VERB = re.compile(r" (?:is|are|was|were|refers to) ")
EMPTY_BRACKETS = re.compile(r"\s*\((?:[\s,;:/]|\b(?:US|UK|listen|pronounced)\b)*\)")  # what pronunciations leave
SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([,;:.!?])(?=\s|$)")
MATH = etree.XPath(f"//*[{_has_class('mwe-math-element')}] | //math[not(ancestor::*[{_has_class('mwe-math-element')}])]")
SPACE = "\ue001"  # a space the formula means, kept while TeX's own spaces are removed
DISPLAYSTYLE = re.compile(r"^\{\\(?:displaystyle|textstyle)\s*(.*)\}$", re.DOTALL)
TEX_TEXT = re.compile(r"\\(?:text|mathrm|mathit|mathbf|rm|operatorname|ce)\s*\{([^{}]*)\}")
TEX_COMMAND = re.compile(r"\\(?:[A-Za-z]+|.)")
TEX_FRACTION = re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}")
TEX_ROOT = re.compile(r"\\sqrt\{([^{}]*)\}")
TEX_SCRIPT = re.compile(r"([\^_])\{([^{}]*)\}")
TEX_STRUCTURE = {r"\frac", r"\sqrt"}
GREEK = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon phi chi psi omega"
GREEK_CAPITALS = "Gamma Delta Theta Xi Pi Sigma Phi Psi Omega"
TEX_SYMBOLS = {
    **{f"\\{name}": unicodedata.lookup(f"GREEK SMALL LETTER {name.replace('lambda', 'lamda')}") for name in GREEK.split()},
    **{f"\\{name}": unicodedata.lookup(f"GREEK CAPITAL LETTER {name}") for name in GREEK_CAPITALS.split()},
    r"\approx": " ≈ ", r"\propto": " ∝ ", r"\sim": " ~ ", r"\neq": " ≠ ", r"\leq": " ≤ ", r"\le": " ≤ ",
    r"\geq": " ≥ ", r"\ge": " ≥ ", r"\to": " → ", r"\rightarrow": " → ", r"\times": "×", r"\cdot": "·",
    r"\pm": "±", r"\infty": "∞", r"\odot": "☉", r"\circ": "°", r"\degree": "°", r"\%": "%", r"\,": " ",
    r"\;": " ", r"\ ": " ", r"\quad": " ", r"\left": "", r"\right": "", r"\!": "",
}  # fmt: skip
TEX_SYMBOLS = {command: text.replace(" ", SPACE) for command, text in TEX_SYMBOLS.items()}


class FetchError(Exception):
    """An article could not be downloaded or parsed; the message is one line naming it."""


class GaveUp(FetchError):
    """The server or the network kept failing until the retries ran out: a later run may succeed."""


@dataclass
class Fetched:
    """What fetch_articles got: the articles and the skipped topics, both in topic order."""

    articles: list[dict]
    skipped: list[dict]  # {"domain", "title", "reason"}
    downloaded: int  # pages that came from the network, not from the cache


class Pause:
    """A wait shared by every worker: when the server says Retry-After, nobody asks before then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0  # time.monotonic() before which no request goes out

    def extend(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        left = self._until - time.monotonic()
        if left > 0:
            time.sleep(left)


def _slug(title: str) -> str:
    slug = utils.slugify(title)
    if not slug:
        raise FetchError(f"{title!r}: title has no letters or digits")
    return slug


def _page_name(title: str) -> str:
    """Wikipedia's form of a title in URLs: spaces become underscores."""
    return title.strip().replace(" ", "_")


def fetch_articles(
    topics: list[tuple[str, str]],
    base_url: str,
    cache_dir: Path,
    user_agent: str,
    timeout: float = 20.0,
    max_retries: int = 4,
    backoff: float = 1.0,
    session: requests.Session | None = None,
    endpoint: str = "rest.php",
    workers: int = 1,
    progress: bool = False,
) -> Fetched:
    """Fetch one record per (domain, title), downloading only uncached pages, `workers` at a time.

    Each downloaded page is cached as cache_dir/<slug>.html (atomically) as soon as it
    parses, so a run that fails half-way (network down, a server that keeps answering 503)
    keeps its progress: the rerun reads the cached pages without any request, and downloads
    again a cached page that is cut short or unreadable. A page reached through a redirect
    also keeps its resolved title in cache_dir/<slug>.title. timeout bounds each request as
    a whole, not each read. max_retries counts retries after the first try; waits are
    backoff * 2**attempt seconds unless the server says Retry-After. The result is the same
    whatever order the workers finish in; `progress` shows a bar on a terminal.
    """
    if endpoint not in ENDPOINTS:
        raise FetchError(f"endpoint {endpoint!r} is not one of {', '.join(ENDPOINTS)}")
    if not 1 <= workers <= MAX_WORKERS:
        raise FetchError(f"workers must be 1 to {MAX_WORKERS}, got {workers}")
    base_url = base_url.rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(f"base_url {base_url!r} must be an http:// or https:// URL")
    slugs = [_slug(title) for _, title in topics]
    seen: set[str] = set()
    for slug in slugs:
        if slug in seen:
            raise FetchError(f"two topics share the name {slug!r}; each article must appear once")
        seen.add(slug)
    own_session = session is None
    session = session or requests.Session()
    pause = Pause()

    def download(title: str) -> tuple[bytes, str]:
        api_url = base_url + ENDPOINTS[endpoint].format(title=quote(_page_name(title), safe=""))
        html, final_url = _download(session, api_url, title, user_agent, timeout, max_retries, backoff, pause)
        return html, _title_in(final_url, endpoint) or title

    def one(topic: tuple[str, str], slug: str) -> tuple[dict, bool]:
        return _cached_or_downloaded(*topic, Path(cache_dir) / f"{slug}.html", base_url, download)

    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(one, topic, slug): i for i, (topic, slug) in enumerate(zip(topics, slugs))}
        outcomes: list = [None] * len(topics)  # (record, downloaded) or the FetchError, by topic
        with tqdm(total=len(topics), desc="fetch", unit="page", disable=None if progress else True) as bar:
            for future in as_completed(futures):
                try:
                    outcomes[futures[future]] = future.result()
                except FetchError as err:
                    outcomes[futures[future]] = err
                bar.update()
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C, start nothing new
        if own_session:
            session.close()
    return _sorted_out(topics, outcomes)


def _sorted_out(topics: list[tuple[str, str]], outcomes: list) -> Fetched:
    """Keep each page once, in topic order; skip what can't be had; stop on what a rerun may get."""
    failed = [err for err in outcomes if isinstance(err, GaveUp)]
    if failed:
        more = f" (and {len(failed) - 1} more pages)" if len(failed) > 1 else ""
        raise FetchError(f"{failed[0]}{more}; the other pages are cached, so a rerun downloads only what is missing")
    result = Fetched([], [], 0)
    first_title: dict[str, str] = {}  # resolved title -> the topic that reached it first
    for (domain, title), outcome in zip(topics, outcomes):
        if isinstance(outcome, FetchError):
            reason = str(outcome).removeprefix(f"{title}: ")
        else:
            record, downloaded = outcome
            result.downloaded += downloaded
            first = first_title.setdefault(record["resolved_title"], title)
            if first == title:
                result.articles.append(record)
                continue
            reason = f"the same page as '{first}'"
        result.skipped.append({"domain": domain, "title": title, "reason": reason})
    return result


def _title_in(url: str, endpoint: str) -> str | None:
    """The page title in an endpoint URL, in its display form ('Mercury (planet)'); None if not one."""
    prefix, suffix = ENDPOINTS[endpoint].split("{title}")
    path = urlsplit(url).path
    if not (path.startswith(prefix) and path.endswith(suffix)) or len(path) <= len(prefix) + len(suffix):
        return None
    return unquote(path[len(prefix) : len(path) - len(suffix)]).replace("_", " ")


def _cached_or_downloaded(
    domain: str, title: str, path: Path, base_url: str, download: Callable[[str], tuple[bytes, str]]
) -> tuple[dict, bool]:
    """One article record, and whether it was downloaded: from its cached page if it is whole
    and parses, else downloaded (then cached).

    A cached page cut short or unreadable (left by an older version, or edited by hand) is
    not trusted: it is downloaded again and replaced."""
    title_path = path.with_suffix(".title")  # only for pages reached through a redirect
    if path.is_file():
        resolved = title_path.read_text(encoding="utf-8") if title_path.is_file() else title
        cached = path.read_bytes()
        if WHOLE_PAGE.search(cached):
            try:
                return _record(cached, title, resolved, domain, base_url), False
            except FetchError:
                pass  # downloaded again below
    html, resolved = download(title)
    record = _record(html, title, resolved, domain, base_url)
    if resolved != title:  # written first: a cached page always has its title beside it
        utils.write_text(title_path, resolved)
    elif title_path.is_file():  # left by an older copy that came through a redirect
        title_path.unlink()
    with utils.atomic_path(path) as tmp:
        tmp.write_bytes(html)
    return record, True


def _record(html: bytes, title: str, resolved: str, domain: str, base_url: str) -> dict:
    """The article record of a page asked for as title and found under the resolved title."""
    url = f"{base_url}/wiki/{quote(_page_name(resolved), safe='/():,')}"
    return {**parse_article(html, title, domain, url), "resolved_title": resolved}


def _download(
    session: requests.Session,
    url: str,
    title: str,
    user_agent: str,
    timeout: float,
    max_retries: int,
    backoff: float,
    pause: Pause,
) -> tuple[bytes, str]:
    """GET one page: retry what may pass (429, 5xx, network errors, timeouts, pages cut
    short), fail fast on the rest.

    Returns the page and the URL it was found at, after redirects."""
    origin = urlsplit(url)[:2]  # (scheme, host[:port]) we are allowed to talk to
    headers = {"User-Agent": user_agent, "Accept": "text/html"}
    attempt = hops = 0
    while True:
        wait = backoff * 2**attempt
        pause.wait()
        try:
            resp, body = _get(session, url, headers, timeout)
        except (requests.Timeout, urllib3.exceptions.TimeoutError):
            problem = f"no whole answer within the {timeout:g} s deadline"
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError) as err:
            problem = f"network error ({type(err).__name__})"
        except requests.RequestException as err:
            raise FetchError(f"{title}: request to {url} failed ({type(err).__name__})") from None
        else:
            if resp.status_code == 200:
                if WHOLE_PAGE.search(body):
                    return body, url
                problem = f"page cut short after {len(body)} bytes (no closing </html>)"
            elif resp.is_redirect:  # a 3xx with a Location header
                target = urljoin(url, resp.headers["Location"])
                if urlsplit(target)[:2] != origin:
                    raise FetchError(f"{title}: refusing redirect to another host ({target})")
                hops += 1
                if hops > MAX_REDIRECTS:
                    raise FetchError(f"{title}: more than {MAX_REDIRECTS} redirects (last to {target})")
                url = target
                continue
            elif resp.status_code != 429 and resp.status_code < 500:
                hint = " (no such article)" if resp.status_code == 404 else ""
                raise FetchError(f"{title}: HTTP {resp.status_code}{hint} from {url}")
            else:
                problem = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("Retry-After", "").strip()
                if retry_after.isdigit():  # an HTTP-date form is rare; it falls back to backoff
                    pause.extend(min(float(retry_after), MAX_WAIT))  # every worker waits, at pause.wait()
                    wait = 0.0
        if attempt >= max_retries:
            raise GaveUp(f"{title}: {problem} from {url}, gave up after {attempt + 1} tries")
        if wait > 0:
            time.sleep(min(wait, MAX_WAIT))
        attempt += 1


def _get(session: requests.Session, url: str, headers: dict[str, str], timeout: float) -> tuple[requests.Response, bytes]:
    """One GET that must be over, headers and body, within timeout seconds.

    requests' own timeout bounds each socket read, so a server sending a few bytes every
    second could hold a request open for ever. Here the headers must come by the deadline
    (`_headers_before`) and every read of the body may only wait for what is left of it.
    The body of an answer other than 200 is not read."""
    deadline = time.monotonic() + timeout
    ask = partial(session.get, url, headers=headers, timeout=timeout, allow_redirects=False, stream=True)
    with _headers_before(ask, deadline) as resp:
        chunks = []
        while resp.status_code == 200 and (chunk := _read_before(resp.raw, deadline)):
            chunks.append(chunk)
        return resp, b"".join(chunks)


def _headers_before(ask: Callable[[], requests.Response], deadline: float) -> requests.Response:
    """ask() (a streamed GET, which returns once the headers are in), given until the deadline.

    requests has no hook inside the header read, so the request runs on a helper thread
    and we stop waiting for it at the deadline. The helper may go on until the server lets
    go (each of its reads still ends within `timeout`); it closes the answer it then gets.
    """
    done: dict = {}  # "response" or "error" when ask() is over; "abandoned" once we stopped waiting
    lock, over = threading.Lock(), threading.Event()

    def run() -> None:
        try:
            outcome = ("response", ask())
        except BaseException as err:  # handed to the caller below
            outcome = ("error", err)
        with lock:
            if "abandoned" in done:
                if outcome[0] == "response":
                    outcome[1].close()
                return
            done[outcome[0]] = outcome[1]
            over.set()

    threading.Thread(target=run, daemon=True).start()  # daemon: a stuck helper never holds the process open
    over.wait(max(0.0, deadline - time.monotonic()))
    with lock:
        if not over.is_set():
            done["abandoned"] = True
            raise urllib3.exceptions.TimeoutError("deadline passed before the headers came")
    if "error" in done:
        raise done["error"]
    return done["response"]


def _read_before(raw: urllib3.HTTPResponse, deadline: float) -> bytes:
    """The next bytes of a body (b"" at its end), from one socket read that ends by the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise urllib3.exceptions.TimeoutError("deadline passed")
    # http.client lets go of the socket when the server will close it (HTTP/1.0, "Connection:
    # close"); then a read may still wait the full timeout, and the deadline is checked after it.
    sock = getattr(raw.connection, "sock", None)
    if sock is not None:
        sock.settimeout(left)
    return raw.read1(CHUNK, decode_content=True)  # read1: one socket read, so one wait at most


def parse_article(html: str | bytes, title: str, domain: str, url: str) -> dict:
    """Turn one article's HTML (Parsoid, or the older flat layout) into a record.

    Paragraphs before the first h2 form the lead; each h2 starts a section that collects
    the paragraphs and lists after it, h3 subsections included, except an h3 whose heading
    means another of the domain's headings ("Hunting and diet" under "Behaviour and
    ecology"): it becomes a section of its own. Walking the blocks in document order makes
    nested <section> elements and flat h2/p siblings look the same.
    """
    root = _parse_whole(html, title)
    _rewrite_inline(root)
    for element in [e for e in root.iter(etree.Element) if _is_clutter(e)]:
        if element.getparent() is not None:
            element.drop_tree()  # keeps the text that follows the element
    lead: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    current: list[str] | None = lead  # None while inside a dropped section such as References
    chapter: tuple[str, list[str]] | None = None  # the h2 section that h3s return to
    for element in root.iter("h2", "h3", "p", "ul", "ol"):
        if any(True for _ in element.iterancestors("li", "p")):
            continue  # a nested list is part of its item; a list inside a paragraph is its text
        if element.tag == "h2":
            heading = _clean(element.text_content())
            chapter = None if heading.lower() in DROPPED_SECTIONS else (heading, [])
            current = chapter[1] if chapter else None
            if chapter:
                sections.append(chapter)
        elif element.tag == "h3":
            if chapter:
                current = _subsection(domain, chapter, _clean(element.text_content()), sections)
        elif current is not None:
            _add_block(current, element)
    lead[:1] = [_without_subject_parentheses(p) for p in lead[:1]]
    lead = [p for p in map(_without_dangling_intro, lead) if p]
    if not lead:
        raise FetchError(f"{title}: page has no lead text")
    kept = [(h, [p for p in map(_without_dangling_intro, ps) if p]) for h, ps in sections]
    return {
        "id": utils.article_id(domain, title),
        "title": title,
        "domain": domain,
        "url": url,
        "aliases": [],  # Wikipedia pages have no alias list; questions use the title and the lead's name
        "lead": "\n\n".join(lead),
        "sections": [{"heading": h, "text": "\n\n".join(ps)} for h, ps in kept if ps],
    }


def _parse_whole(html: str | bytes, title: str) -> etree._Element:
    """Parse a page, or fail naming it: libxml2 would silently cut a page it can't read whole."""
    data = html.encode("utf-8") if isinstance(html, str) else html
    try:
        data.decode("utf-8")  # Wikipedia serves UTF-8; libxml2 would replace bad bytes unseen
    except UnicodeDecodeError as err:
        raise FetchError(f"{title}: page is not valid UTF-8 (byte {err.start})") from None
    # no_network stops lxml from loading DTDs or entities, and huge_tree=False keeps
    # libxml2's limits on depth and text size against hostile input.
    parser = lxml.html.HTMLParser(encoding="utf-8", no_network=True, huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(data, parser=parser)
    except (etree.ParserError, etree.ParseError) as err:
        raise FetchError(f"{title}: cannot parse HTML ({str(err).splitlines()[0]})") from None
    fatal = [e for e in parser.error_log if e.level == etree.ErrorLevels.FATAL]
    if fatal:  # e.g. "Excessive depth in document: 256": everything after it is missing
        raise FetchError(f"{title}: cannot read the whole page (line {fatal[0].line}: {fatal[0].message.strip()})")
    return root


def _rewrite_inline(root: etree._Element) -> None:
    """Make inline markup survive as plain text: math, superscripts and line breaks."""
    for element in MATH(root):
        if element.getparent() is None:
            continue  # inside a math element replaced already
        tex = element.get("alttext") or next(iter(element.xpath(".//math/@alttext | .//img/@alt")), "")
        _replace_with_text(element, tex_to_text(tex) or DROP_SENTENCE)
    for sup in root.iter("sup"):
        if not ORDINAL.match(sup.text_content()):  # 1<sup>st</sup> stays "1st"
            sup.text = "^" + (sup.text or "")
    for br in root.iter("br"):
        br.tail = " " + (br.tail or "")


def _replace_with_text(element: etree._Element, text: str) -> None:
    element.tail = f"{text}{element.tail or ''}"
    element.drop_tree()


def _subsection(domain: str, chapter: tuple[str, list[str]], heading: str, sections: list) -> list[str]:
    """Where the text under an h3 goes: its own section if its heading means another
    vocabulary heading than its chapter's, else back into the chapter."""
    meaning = canonical_heading(domain, heading)
    if heading.lower() in DROPPED_SECTIONS or meaning is None or meaning == canonical_heading(domain, chapter[0]):
        return chapter[1]
    sections.append((heading, []))
    return sections[-1][1]


def _add_block(paragraphs: list[str], element: etree._Element) -> None:
    """Add a paragraph, or a list: its items as sentences of their own, or, when short
    ("deer, wild boar and water buffalo"), as the end of the sentence that introduces them."""
    if element.tag == "p":
        text = _clean(element.text_content())
        if text:
            paragraphs.append(text)
        return
    items = [_clean(li.text_content()).rstrip(";,") for li in element.iterchildren("li")]
    items = [item for item in items if item]
    introduced = bool(paragraphs) and paragraphs[-1].endswith(":")
    if not items:
        return
    if all(len(item.split()) <= SHORT_ITEM_WORDS and not item.endswith(".") for item in items):
        if introduced:  # a list of bare names with nothing to say them about is left out
            and_list = items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
            paragraphs[-1] = f"{paragraphs[-1]} {and_list}."
        return
    sentences = " ".join(item if item[-1] in ".!?" else f"{item}." for item in items)
    if introduced:
        paragraphs[-1] = f"{paragraphs[-1]} {sentences}"
    else:
        paragraphs.append(sentences)


def _without_dangling_intro(paragraph: str) -> str:
    """Drop the sentences that lost something: one ending in ':' whose list was left out,
    one with a formula that had no readable form."""
    sentences = [s for s in utils.split_sentences(paragraph) if DROP_SENTENCE not in s]
    if sentences and sentences[-1].endswith(":"):
        sentences.pop()
    return " ".join(sentences)


def _without_subject_parentheses(paragraph: str) -> str:
    """'The tiger (Panthera tigris) is a large cat' -> 'The tiger is a large cat'.

    Questions name the subject by what comes before the lead's first 'is', so whatever sits
    in brackets there (pronunciation, a Latin name, a formula) must go."""
    kept, depth = [], 0
    for i, char in enumerate(paragraph):
        if depth == 0 and FIRST_VERB.match(paragraph, i):
            return _clean("".join(kept) + paragraph[i:])
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    return paragraph  # no verb outside brackets: not a definition, leave it alone


def _clean(text: str) -> str:
    """Collapse whitespace; remove leftover citation markers, audio icons and empty brackets."""
    text = CITATION.sub("", " ".join(text.replace("\u24d8", " ").split()))
    text = EMPTY_BRACKETS.sub("", text)
    return SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(text.split()))


def tex_to_text(tex: str) -> str | None:
    r"""A formula's TeX alt text as readable plain text; None if it uses anything unknown.

    >>> tex_to_text(r"{\displaystyle T^{2}\propto a^{3}}")
    'T^2 ∝ a^3'
    >>> tex_to_text(r"{\displaystyle \int f\,dx}") is None
    True
    """
    tex = DISPLAYSTYLE.sub(r"\1", tex.strip())
    tex = TEX_TEXT.sub(lambda m: m.group(1).replace(" ", SPACE), tex)
    unknown = [m for m in TEX_COMMAND.findall(tex) if m not in TEX_SYMBOLS and m not in TEX_STRUCTURE]
    if unknown or not tex:
        return None
    tex = TEX_COMMAND.sub(lambda m: TEX_SYMBOLS.get(m.group(0), m.group(0)), tex)
    tex = re.sub(r"\s+", "", tex.replace("=", f"{SPACE}={SPACE}"))
    previous = None
    while tex != previous:  # innermost groups first: \frac{a^{2}}{b}
        previous = tex
        tex = TEX_FRACTION.sub(lambda m: f"{_group(m.group(1))}/{_group(m.group(2))}", tex)
        tex = TEX_ROOT.sub(lambda m: f"√{_group(m.group(1))}", tex)
        tex = TEX_SCRIPT.sub(lambda m: m.group(1) + _group(m.group(2)), tex)
    text = " ".join(tex.replace("{", "").replace("}", "").replace(SPACE, " ").split())
    return None if "\\" in text or not text else text


def _group(text: str) -> str:
    """Bracket a sub-expression unless it is one number or name: 27 -> 27, a+b -> (a+b)."""
    return text if re.fullmatch(r"[-−+]?[\w.^]+", text) else f"({text})"
