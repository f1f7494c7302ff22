"""How long fetching thousands of Wikipedia articles takes, and how much memory, by workers.

    python benchmarks/fetch_pages.py                     # 1,000 pages, 150 ms each, 1, 2 and 3 workers
    python benchmarks/fetch_pages.py --pages 200 --latency 0.1 --workers 1 3

Serves `--pages` pages from a local server on 127.0.0.1 that waits `--latency` seconds
before each answer (a stand-in for the round trip to Wikipedia), then runs the fetch stage as
`dvc repro` does (`python -m src.fetch`, fetch.source=wikipedia) with an empty cache, once
per worker count, and once more with the cache full (a rerun). Each page is one of the
realistic Parsoid fixtures (tests/fixtures/wikipedia/) with its sections repeated up to
`--page-kb` kilobytes, gzipped as Wikipedia sends it. Reports the wall time, and the fetch
process's CPU time and peak memory (its own rusage, from wait4), the requests the server saw,
checks that every run wrote the same bytes, and prints the machine's load and the process's
nice value, since others may share the machine.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "wikipedia"
PREFIX, SUFFIX = "/w/rest.php/v1/page/", "/html"
DOMAINS = ("astronomy", "anatomy", "animals", "geography", "chemistry", "weather")


def grown(html: bytes, size: int) -> bytes:
    """A fixture page with its sections (all but the lead) repeated until it is `size` bytes."""
    start, end = html.index(b'<section data-mw-section-id="1"'), html.rindex(b"</body>")
    head, sections, tail = html[:start], html[start:end], html[end:]
    return head + sections * max(1, math.ceil((size - len(head) - len(tail)) / len(sections))) + tail


def start_server(pages: list[bytes], count: int, latency: float) -> tuple[ThreadingHTTPServer, list[int]]:
    """Serve 'Page 0' .. 'Page <count-1>' (gzipped), each after `latency` seconds; the list counts requests."""
    asked = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            with lock:
                asked[0] += 1
            time.sleep(latency)
            title = self.path[len(PREFIX) : -len(SUFFIX)] if self.path.startswith(PREFIX) else ""
            number = title.removeprefix("Page_")
            if not (number.isdigit() and int(number) < count):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = pages[int(number) % len(pages)]
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked


def write_setup(folder: Path, base_url: str, count: int, workers: int) -> Path:
    """A topics file of title files (one per domain) and a params file; returns the params path."""
    for i, domain in enumerate(DOMAINS):
        titles = [f"Page {n}" for n in range(i, count, len(DOMAINS))]
        (folder / f"{domain}.txt").write_text("\n".join(titles) + "\n", encoding="utf-8")
    topics = {"topics": {domain: f"{domain}.txt" for domain in DOMAINS}}
    (folder / "topics.yaml").write_text(yaml.safe_dump(topics), encoding="utf-8")
    fetch = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["fetch"]
    fetch.update(source="wikipedia", base_url=base_url, topics=str(folder / "topics.yaml"), workers=workers)
    fetch["cache_dir"] = str(folder / "cache")
    (folder / "params.yaml").write_text(yaml.safe_dump({"fetch": fetch}), encoding="utf-8")
    return folder / "params.yaml"


def timed_fetch(params: Path, output: Path) -> tuple[float, float, float]:
    """Run the fetch stage once: (wall seconds, CPU seconds, peak resident memory in MiB) of its process.

    CPU time hardly depends on what else runs; wall time does, a lot, on a shared machine."""
    cmd = [sys.executable, "-m", "src.fetch", "--params", str(params), "--output", str(output)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, env={**os.environ, "NO_PROXY": "127.0.0.1"})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"fetch failed (exit {proc.returncode})")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.15, help="seconds the server waits before each answer")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--page-kb", type=int, default=100, help="size of each page's HTML before gzip")
    args = parser.parse_args()
    sources = [grown(path.read_bytes(), args.page_kb * 1024) for path in sorted(FIXTURES.glob("*.html"))]
    pages = [gzip.compress(html, mtime=0) for html in sources]
    server, asked = start_server(pages, args.pages, args.latency)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"{args.pages} pages of {args.page_kb} kB ({sum(map(len, pages)) // len(pages) // 1024} kB gzipped), "
          f"{args.latency * 1000:g} ms each; {os.cpu_count()} CPUs, load average before {os.getloadavg()[0]:.2f}, "
          f"nice {os.nice(0)}")  # fmt: skip
    print("| run | workers | wall time | pages/s | CPU time | peak memory | requests |\n|---|---|---|---|---|---|---|")
    digests = set()
    with tempfile.TemporaryDirectory() as tmp:
        for run, workers in [("empty cache", w) for w in args.workers] + [("full cache", args.workers[-1])]:
            folder = Path(tmp) / f"w{workers}"
            folder.mkdir(exist_ok=True)
            params = write_setup(folder, base_url, args.pages, workers)
            before = asked[0]
            seconds, cpu, mib = timed_fetch(params, folder / "articles.jsonl")
            digests.add(hashlib.sha256((folder / "articles.jsonl").read_bytes()).hexdigest())
            speed = f"{seconds:.1f} s | {args.pages / seconds:.1f} | {cpu:.1f} s | {mib:.0f} MiB"
            print(f"| {run} | {workers} | {speed} | {asked[0] - before} |", flush=True)
    server.shutdown()
    same = len(digests) == 1
    print(f"load average after {os.getloadavg()[0]:.2f}, nice {os.nice(0)}; every run wrote the same articles: {same}")


if __name__ == "__main__":
    main()
