"""Load benchmark of the event webhook: ``python -m martech.events.bench``.

Serves the real app with uvicorn on loopback, then concurrent posters send signed batches of events
(and re-send a share of them, as SendGrid's retries do) over keep-alive connections. Afterwards it counts
what the warehouse holds: every distinct event posted must be stored exactly once. As a reference
measured in the same run, the same number of events is written by ``store_events`` directly (no HTTP,
no signature), so the HTTP figure reads as a share of what the database alone takes.

The events are tagged with a run id and deleted afterwards; the warehouse is ``--url`` or the usual one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from martech.events import signature
from martech.events.store import store_events
from martech.events.webhook import EVENTS_PATH, WebhookSettings, create_app

TARGET_PER_SECOND = 2000


def _events(tag: str, start: int, n: int) -> list[dict]:
    kinds = ("processed", "delivered", "open", "click", "open")
    now = int(time.time())
    return [{"email": f"r{i}@bench.example", "timestamp": now - 600 + i % 600, "event": kinds[i % len(kinds)],
             "sg_event_id": f"{tag}-{i}", "sg_message_id": f"{tag}.m{i // 5}", "send_id": f"{tag}-s{i // 5}",
             "campaign_id": tag, "run_id": "bench", "contact_id": f"c{i // 5}",
             "useragent": "Mozilla/5.0", "ip": "203.0.113.7", "sg_machine_open": i % 7 == 0}
            for i in range(start, start + n)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _poster(port: int, bodies: list[tuple[bytes, dict[str, str]]]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    failures = 0
    for body, headers in bodies:
        conn.request("POST", EVENTS_PATH, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        failures += response.status != 200
    conn.close()
    return failures


def run(url: str, *, events: int, batch: int, posters: int, retry_share: float) -> dict[str, float]:
    import uvicorn

    from martech.db import make_engine, migrate

    engine = make_engine(url, pool_size=posters + 2, max_overflow=4)
    migrate(engine)
    private = ec.generate_private_key(ec.SECP256R1())
    app = create_app(engine, WebhookSettings(public_key=signature.public_key_text(private)))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    tag, ref_tag = f"bench-{uuid.uuid4().hex[:8]}", f"benchref-{uuid.uuid4().hex[:8]}"
    stamp = str(int(time.time()))
    bodies = []
    for start in range(0, events, batch):
        body = json.dumps(_events(tag, start, min(batch, events - start))).encode()
        bodies.append((body, {"Content-Type": "application/json", signature.TIMESTAMP_HEADER: stamp,
                              signature.SIGNATURE_HEADER: signature.sign(private, stamp.encode(), body)}))
    retries = bodies[:: max(1, round(1 / retry_share))] if retry_share > 0 else []
    work = bodies + retries
    shares = [work[k::posters] for k in range(posters)]
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(posters) as pool:
            failures = sum(pool.map(lambda share: _poster(port, share), shares))
        http_seconds = time.perf_counter() - t0

        reference = _events(ref_tag, 0, events)
        t0 = time.perf_counter()
        for start in range(0, events, batch):
            with engine.begin() as conn:
                store_events(conn, reference[start:start + batch], received_at=dt.datetime.now(dt.timezone.utc))
        direct_seconds = time.perf_counter() - t0

        with engine.connect() as conn:
            stored = conn.execute(sa.text("select count(*), count(distinct sg_event_id) from raw.webhook_events"
                                          " where campaign_id = :t"), {"t": tag}).one()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        with engine.begin() as conn:
            conn.execute(sa.text("delete from raw.webhook_events where campaign_id in (:t, :r)"),
                         {"t": tag, "r": ref_tag})
        engine.dispose()
    return {"events": events, "posts": len(work), "retried_posts": len(retries), "failed_posts": failures,
            "stored": stored[0], "stored_distinct": stored[1], "http_seconds": http_seconds,
            "http_events_per_s": events / http_seconds, "direct_events_per_s": events / direct_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m martech.events.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="warehouse URL (default: MARTECH_WAREHOUSE_URL or the embedded one)")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100, help="events per POST")
    parser.add_argument("--posters", type=int, default=8, help="concurrent connections")
    parser.add_argument("--retry-share", type=float, default=0.1, help="share of batches posted twice")
    args = parser.parse_args(argv)
    from martech.warehouse import resolve_url

    r = run(resolve_url(args.url), events=args.events, batch=args.batch, posters=args.posters,
            retry_share=args.retry_share)
    print(f"posted {r['events']:,} events in {r['posts']:,} signed POSTs ({r['retried_posts']:,} retried) "
          f"with {args.posters} posters: {r['http_seconds']:.1f} s, {r['failed_posts']} not answered 200")
    print(f"stored {r['stored']:,} rows, {r['stored_distinct']:,} distinct "
          f"({'nothing lost, nothing twice' if r['stored'] == r['stored_distinct'] == r['events'] else 'MISMATCH'})")
    print(f"webhook: {r['http_events_per_s']:,.0f} events/s; store_events alone: {r['direct_events_per_s']:,.0f}"
          f" events/s; webhook / direct = {r['http_events_per_s'] / r['direct_events_per_s']:.2f};"
          f" webhook / target {TARGET_PER_SECOND:,} = {r['http_events_per_s'] / TARGET_PER_SECOND:.2f}")
    ok = r["stored"] == r["stored_distinct"] == r["events"] and r["failed_posts"] == 0
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
