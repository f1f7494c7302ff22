"""Download Wikipedia articles and turn them into plain-text article records.

This is the live source of the fetch stage (the default source is an offline snapshot).
Each page comes from Wikipedia's REST API as Parsoid HTML, is cached on disk, and is
reduced to what a language model should learn from: the lead paragraphs and the prose of
each section, without references, tables, captions, navigation boxes or "edit" links.

Being a polite and careful client matters more here than speed:
- every request carries the caller's User-Agent (Wikimedia blocks anonymous scripts);
- 429 and 5xx answers are retried with exponential backoff, honouring Retry-After;
- redirects are followed only on the configured host, so a bad answer can't send us elsewhere;
- the HTML is parsed with the network off, so a page can't make lxml fetch anything either.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import lxml.html
import requests
from lxml import etree

from src import utils

MAX_REDIRECTS = 5  # a page renamed twice is common; more hops means something is wrong
MAX_WAIT = 60.0  # seconds; cap on any single backoff or Retry-After wait
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
DROPPED_TAGS = ("table", "figure", "style", "script", "annotation")  # annotation = TeX behind math
DROPPED_CLASSES = (
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
    "mwe-math-fallback-image-inline",
    "mwe-math-fallback-image-display",
)
# Markers that survive as plain text, e.g. "[12]", "[note 3]", "[citation needed]", "[who?]".
# Lowercase only, so chemistry notation such as "[A]" or "[Fe(CN)6]" is kept.
CITATION = re.compile(r"\s*\[(?:\d+|(?:note|nb) ?\d+|[a-z][a-z ]*(?:needed|\?))\]")


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


DROPPED = etree.XPath(" | ".join([f"//{tag}" for tag in DROPPED_TAGS] + [f"//*[{_has_class(c)}]" for c in DROPPED_CLASSES]))


class FetchError(Exception):
    """An article could not be downloaded or parsed; the message is one line naming it."""


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
) -> list[dict]:
    """Return one record per (domain, title), in order, downloading only uncached pages.

    Each downloaded page is cached as cache_dir/<slug>.html as soon as it parses, so a run
    that fails half-way (network down, a misspelt title) keeps its progress: the rerun
    reads the cached pages without any request. max_retries counts retries after the
    first try; waits are backoff * 2**attempt seconds unless the server says Retry-After.
    """
    base_url = base_url.rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(f"base_url {base_url!r} must be an http:// or https:// URL")
    slugs = [_slug(title) for _, title in topics]
    for slug in slugs:
        if slugs.count(slug) > 1:
            raise FetchError(f"two topics share the name {slug!r}; each article must appear once")
    own_session = session is None
    session = session or requests.Session()

    def download(title: str) -> bytes:
        api_url = f"{base_url}/api/rest_v1/page/html/{quote(_page_name(title), safe='')}"
        return _download(session, api_url, title, user_agent, timeout, max_retries, backoff)

    try:
        return [
            _cached_or_downloaded(domain, title, Path(cache_dir) / f"{slug}.html", base_url, download)
            for (domain, title), slug in zip(topics, slugs)
        ]
    finally:
        if own_session:
            session.close()


def _cached_or_downloaded(domain: str, title: str, path: Path, base_url: str, download: Callable[[str], bytes]) -> dict:
    """One article record: from its cached page if there is one, else downloaded (then cached)."""
    url = f"{base_url}/wiki/{quote(_page_name(title), safe='/():,')}"
    if path.is_file():
        try:
            return parse_article(path.read_bytes(), title, domain, url)
        except FetchError as err:
            raise FetchError(f"{err} (cached copy {path}; delete it to download again)") from None
    html = download(title)
    record = parse_article(html, title, domain, url)
    with utils.atomic_path(path) as tmp:
        tmp.write_bytes(html)
    return record


def _download(
    session: requests.Session, url: str, title: str, user_agent: str, timeout: float, max_retries: int, backoff: float
) -> bytes:
    """GET one page: retry what may pass (429, 5xx, network errors), fail fast on the rest."""
    origin = urlsplit(url)[:2]  # (scheme, host[:port]) we are allowed to talk to
    headers = {"User-Agent": user_agent, "Accept": "text/html"}
    attempt = hops = 0
    while True:
        wait = backoff * 2**attempt
        try:
            resp = session.get(url, headers=headers, timeout=timeout, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
            problem = f"network error ({type(err).__name__})"
        except requests.RequestException as err:
            raise FetchError(f"{title}: request to {url} failed ({type(err).__name__})") from None
        else:
            if resp.status_code == 200:
                return resp.content
            if resp.is_redirect:  # a 3xx with a Location header
                target = urljoin(url, resp.headers["Location"])
                if urlsplit(target)[:2] != origin:
                    raise FetchError(f"{title}: refusing redirect to another host ({target})")
                hops += 1
                if hops > MAX_REDIRECTS:
                    raise FetchError(f"{title}: more than {MAX_REDIRECTS} redirects (last to {target})")
                url = target
                continue
            problem = f"HTTP {resp.status_code}"
            if resp.status_code != 429 and resp.status_code < 500:
                hint = " (no such article)" if resp.status_code == 404 else ""
                raise FetchError(f"{title}: {problem}{hint} from {url}")
            retry_after = resp.headers.get("Retry-After", "").strip()
            if retry_after.isdigit():  # an HTTP-date form is rare; it falls back to backoff
                wait = float(retry_after)
        if attempt >= max_retries:
            raise FetchError(f"{title}: {problem} from {url}, gave up after {attempt + 1} tries")
        time.sleep(min(wait, MAX_WAIT))
        attempt += 1


def parse_article(html: str | bytes, title: str, domain: str, url: str) -> dict:
    """Turn one article's HTML (Parsoid, or the older flat layout) into a record.

    Paragraphs before the first h2 form the lead; each h2 starts a section that collects
    the paragraphs after it, h3 subsections included. Walking the paragraphs in document
    order makes nested <section> elements and flat h2/p siblings look the same.
    """
    data = html.encode("utf-8") if isinstance(html, str) else html
    # Wikipedia serves UTF-8; no_network stops lxml from loading DTDs or entities, and
    # huge_tree=False keeps libxml2's limits on depth and text size against hostile input.
    parser = lxml.html.HTMLParser(encoding="utf-8", no_network=True, huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(data, parser=parser)
    except (etree.ParserError, etree.ParseError) as err:
        raise FetchError(f"{title}: cannot parse HTML ({str(err).splitlines()[0]})") from None
    for element in DROPPED(root):
        if element.getparent() is not None:
            element.drop_tree()  # keeps the text that follows the element
    lead: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    current: list[str] | None = lead  # None while inside a dropped section such as References
    for element in root.iter("h2", "p"):
        text = _clean(element.text_content())
        if element.tag == "h2":
            current = None if text.lower() in DROPPED_SECTIONS else []
            if current is not None:
                sections.append((text, current))
        elif current is not None and text:
            current.append(text)
    if not lead:
        raise FetchError(f"{title}: page has no lead text")
    return {
        "id": utils.article_id(domain, title),
        "title": title,
        "domain": domain,
        "url": url,
        "aliases": [],  # Wikipedia pages have no alias list; questions use the title and the lead's name
        "lead": "\n\n".join(lead),
        "sections": [{"heading": h, "text": "\n\n".join(ps)} for h, ps in sections if ps],
    }


def _clean(text: str) -> str:
    """Collapse whitespace and remove leftover citation markers."""
    return " ".join(CITATION.sub("", " ".join(text.split())).split())
