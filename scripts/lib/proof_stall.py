#!/usr/bin/python3
"""The longest stall of a run, from the ERP's ledger: scripts/proof's "longest stall" column.

  proof_stall.py DOCUMENTS [PUBLISHED]

DOCUMENTS: the ledger's documents as JSON lines (eventId, type, position, postedAt).
PUBLISHED: lines `<unix time> <events file>`, written when that file's events were all published.

A stall is time in which a document type posted nothing although work of that type was waiting:
an event published (its file's time) before the gap began and posted only after it. A gap in
which everything published so far was posted is idle, not a stall. Without PUBLISHED every event
counts as published at the start, so every gap between postings counts. Prints `<seconds> s
(<type>)`, or `0.0 s (-)`.
"""
import json
import sys
from datetime import datetime


def main():
    published_at = {}
    if len(sys.argv) > 2:
        for line in open(sys.argv[2]):
            stamp, _, path = line.strip().partition(" ")
            for event_line in open(path, errors="replace"):
                try:
                    event_id = json.loads(event_line).get("eventId")
                except (ValueError, AttributeError):
                    continue
                if isinstance(event_id, str):
                    published_at.setdefault(event_id, float(stamp))
    by_type = {}
    for line in open(sys.argv[1]):
        d = json.loads(line)
        at = datetime.fromisoformat(d["postedAt"].replace("Z", "+00:00")).timestamp()
        by_type.setdefault(d["type"], []).append((at, d["position"], published_at.get(d["eventId"], 0.0)))
    worst, worst_type = 0.0, "-"
    for kind, rows in by_type.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        # suffix minimum of publish times: the earliest-published event still unposted after row i
        suffix = [0.0] * len(rows)
        low = float("inf")
        for i in range(len(rows) - 1, -1, -1):
            low = min(low, rows[i][2])
            suffix[i] = low
        for i in range(len(rows) - 1):
            waiting_since = suffix[i + 1]
            if waiting_since >= rows[i + 1][0]:
                continue
            stall = rows[i + 1][0] - max(rows[i][0], waiting_since)
            if stall > worst:
                worst, worst_type = stall, kind
    print(f"{worst:.1f} s ({worst_type})")


if __name__ == "__main__":
    main()
