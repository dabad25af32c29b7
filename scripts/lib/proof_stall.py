#!/usr/bin/python3
"""The longest stall of a run, from the ERP's ledger: scripts/proof's "longest stall" column.

  proof_stall.py DOCUMENTS [PUBLISHED]

DOCUMENTS: the ledger's documents as JSON lines (eventId, type, position, postedAt).
PUBLISHED: lines `<unix time> <events file>`, written when that file's events were all published.

A stall is time in which a document type posted nothing although work of that type was waiting:
an event ready before the gap began and posted only after it. An event is ready once it and its
key's earlier sequences were published (its file's time): one held for a predecessor that came
later was not waiting on the pipeline. A gap in
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
    documents = [json.loads(line) for line in open(sys.argv[1])]
    # an event can post only once its key's earlier sequences are there: it waits from the moment
    # the last of them (or itself) was published, not from its own publication
    ready_at = {}
    by_key = {}
    for d in documents:
        by_key.setdefault(d["key"], []).append(d)
    for rows in by_key.values():
        rows.sort(key=lambda d: d["sequence"])
        latest = 0.0
        for d in rows:
            latest = max(latest, published_at.get(d["eventId"], 0.0))
            ready_at[d["eventId"]] = latest
    by_type = {}
    for d in documents:
        at = datetime.fromisoformat(d["postedAt"].replace("Z", "+00:00")).timestamp()
        by_type.setdefault(d["type"], []).append((at, d["position"], ready_at[d["eventId"]]))
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
