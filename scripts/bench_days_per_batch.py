#!/usr/bin/env python3
"""One client sends a batch whose events fall on 2,000 different days while another sends
small refresh=true batches; prints how each answer came and how long the small ones waited.

Usage: start a node (`target/release/shiplog up --no-docker --listen 127.0.0.1:7392
--data-dir /tmp/daysdata`), then `python3 scripts/bench_days_per_batch.py
http://127.0.0.1:7392`. Standard library only.
"""
import json, sys, threading, time, urllib.request, urllib.error
url = sys.argv[1]
def post(path, body):
    t = time.time()
    req = urllib.request.Request(url + path, data=body, headers={"content-type": "application/x-ndjson"})
    try:
        r = urllib.request.urlopen(req, timeout=120); code = r.status; text = r.read()
    except urllib.error.HTTPError as e:
        code = e.code; text = e.read()
    return time.time() - t, code, text
day0 = 18262
lines = []
for d in range(2000):
    secs = (day0 + d) * 86400 + 3600
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))
    lines.append(json.dumps({"ts": ts, "message": "day %d" % d, "service": "days"}))
body = ("\n".join(lines) + "\n").encode()
small_waits = []
stop = False
def small():
    i = 0
    while not stop:
        dt, code, _ = post("/api/v1/ingest?refresh=true", json.dumps({"message": "small %d" % i}).encode())
        small_waits.append((dt, code)); i += 1
t = threading.Thread(target=small); t.start()
time.sleep(0.5)
for path in ["/api/v1/ingest", "/api/v1/ingest?partial=true"]:
    dt, code, text = post(path, body)
    ans = json.loads(text)
    summary = ans.get("error", {}).get("message", "")[:90] if code != 200 else "accepted=%s rejected=%d" % (ans["accepted"], len(ans["rejected"]))
    print("%-30s %d in %.3f s  %s" % (path, code, dt, summary))
time.sleep(0.5)
stop = True; t.join()
print("concurrent refresh=true ingests: %d, slowest %.3f s, all 200: %s" % (len(small_waits), max(w for w, _ in small_waits), all(c == 200 for _, c in small_waits)))
