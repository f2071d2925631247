#!/usr/bin/env python3
"""bench/api_load.py — an open-loop HTTP client for bench/combined.sh (standard library only).

    api_load.py --url http://127.0.0.1:PORT --key KEY --rate 200 --path /sync/status
                --path /health --path /sync/status/7 [--max-seconds 3600] [--workers 32]

Sends requests at a fixed total rate (request i is due at start + i / rate, whatever the
answers' speed: open loop), round-robin over the paths, with the API key as a bearer token,
on keep-alive connections of a pool of worker threads. Runs until SIGINT or SIGTERM, or
--max-seconds, then prints one JSON object: requests sent, errors (no answer or a status
other than 2xx) by kind, and the latency percentiles in milliseconds, each measured from the
moment the request was due (so a queue behind a slow answer counts, no coordinated omission).
"""
import argparse
import http.client
import json
import queue
import signal
import threading
import time
import urllib.parse


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--path", action="append", required=True)
    p.add_argument("--max-seconds", type=float, default=3600.0)
    p.add_argument("--workers", type=int, default=32)
    a = p.parse_args()
    u = urllib.parse.urlsplit(a.url)
    host, port = u.hostname, u.port or 80
    headers = {"Authorization": f"Bearer {a.key}"}

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    jobs = queue.Queue()
    lock = threading.Lock()
    latencies = []
    errors = {}

    def worker():
        conn = None
        while True:
            job = jobs.get()
            if job is None:
                break
            due, path = job
            kind = None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                r.read()
                if not 200 <= r.status < 300:
                    kind = f"http {r.status}"
                if r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                kind = type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            done = time.monotonic()
            with lock:
                if kind:
                    errors[kind] = errors.get(kind, 0) + 1
                else:
                    latencies.append((done - due) * 1000.0)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.workers)]
    for t in threads:
        t.start()
    start = time.monotonic()
    sent = 0
    while not stop.is_set():
        due = start + sent / a.rate
        now = time.monotonic()
        if due - start > a.max_seconds:
            break
        if due > now:
            stop.wait(due - now)
            if stop.is_set():
                break
        jobs.put((due, a.path[sent % len(a.path)]))
        sent += 1
    elapsed = time.monotonic() - start
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join(timeout=35)

    lat = sorted(latencies)

    def pct(q):
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)

    print(json.dumps({
        "sent": sent, "answered": len(lat), "errors": sum(errors.values()),
        "unanswered": sent - len(lat) - sum(errors.values()),
        "error_kinds": errors, "seconds": round(elapsed, 2),
        "rate": round(sent / elapsed, 1) if elapsed > 0 else 0,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": round(lat[-1], 2) if lat else None,
        # The clients' own CPU: on a small machine it is taken from the sync as well.
        "cpu_s": round(time.process_time(), 2),
    }))


if __name__ == "__main__":
    main()
