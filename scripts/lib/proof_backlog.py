#!/usr/bin/python3
"""The backlog of scripts/proof (scenario backlog): generated, then judged from the ERP's ledger.

  proof_backlog.py generate --dir DIR --events N --keys K --held H --out-of-order P --seed S
      DIR/master-data.json  the reference ERP's seed: WH1..WH10 and the SKUs the keys use
      DIR/held-first.jsonl  the held key's sequences 2..H (published first: held until 1 comes)
      DIR/events.jsonl      N - H inventory.delta/1 events over the K - 1 other keys, round robin
                            (event i: key i % (K-1), sequence i // (K-1) + 1), a fraction P of them
                            in swapped pairs (an event published after its key's next sequence)
      DIR/held-last.jsonl   the held key's sequence 1 (published last: it releases the H - 1)
      DIR/expected.txt      every eventId (each must be booked once)
      DIR/backlog.json      the counts: events, keys, heldKey, heldEvents, displaced
  proof_backlog.py analyze --documents FILE --backlog DIR/backlog.json --samples FILE --start T [--slices 10]
      JSON on stdout: the drain's time per event overall and per slice of the postings (in ledger
      order), the held key's postings (count, in order, release time), the worker's RSS samples

The lines are what `whsync publish` publishes (it validates each, as the workers will).
"""
import argparse
import json
import random
import statistics
import sys
from datetime import datetime

WAREHOUSES = [f"WH{n}" for n in range(1, 11)]
HELD_WAREHOUSE, HELD_SKU = "WH1", "BL-HELD"


def sku_of(index):
    return f"BL-{index:06d}"


def line(event_id, warehouse, sku, sequence, n):
    sign = "" if n % 2 == 0 else "-"
    return (
        f'{{"schema":"inventory.delta/1","eventId":"{event_id}","occurredAt":"2025-01-15T10:00:00Z",'
        f'"warehouse":"{warehouse}","sequence":{sequence},"correlationId":"MV-{event_id}","source":"proof-backlog",'
        f'"sku":"{sku}","quantity":{sign}{n % 7 + 1},"uom":"EA","status":"available","reason":"adjustment",'
        f'"location":"A-{n % 40 + 1}-{n % 5 + 1}"}}\n'
    )


def generate(args):
    held = max(1, args.held)
    keys = max(2, args.keys) - 1  # the other keys
    normal = args.events - held
    if normal < keys:
        sys.exit("proof_backlog.py: fewer events than keys")
    skus_per_warehouse = (keys + len(WAREHOUSES) - 1) // len(WAREHOUSES)
    with open(f"{args.dir}/master-data.json", "w") as f:
        json.dump({
            "warehouses": [{"code": w, "name": f"Backlog warehouse {w}"} for w in WAREHOUSES],
            "skus": [{"sku": sku_of(n), "uom": "EA", "description": "backlog"} for n in range(skus_per_warehouse)]
            + [{"sku": HELD_SKU, "uom": "EA", "description": "backlog, the held key"}],
        }, f)

    def key_of(index):
        k = index % keys
        return WAREHOUSES[k % len(WAREHOUSES)], sku_of(k // len(WAREHOUSES))

    # swapped pairs (slot i, slot i + keys: the key's next sequence): a fraction p of the eligible
    # slots (all but the last `keys`) in pairs when each free one starts a pair with probability
    # q = p / (2 - p); p is P scaled to the eligible slots, so that P of all the events are in pairs
    rng = random.Random(args.seed)
    p = min(1.0, args.out_of_order * normal / max(1, normal - keys))
    q = p / (2 - p)
    order = list(range(normal))
    taken = bytearray(normal)
    displaced = 0
    for i in range(normal - keys):
        if not taken[i] and rng.random() < q:
            order[i], order[i + keys] = order[i + keys], order[i]
            taken[i + keys] = 1
            displaced += 2
    with open(f"{args.dir}/expected.txt", "w") as expected:
        with open(f"{args.dir}/held-first.jsonl", "w") as f:
            for sequence in range(2, held + 1):
                event_id = f"bh-{sequence}"
                f.write(line(event_id, HELD_WAREHOUSE, HELD_SKU, sequence, sequence))
                expected.write(event_id + "\n")
        with open(f"{args.dir}/events.jsonl", "w", buffering=1 << 20) as f:
            for index in order:
                warehouse, sku = key_of(index)
                event_id = f"bl-{index}"
                f.write(line(event_id, warehouse, sku, index // keys + 1, index))
                expected.write(event_id + "\n")
        with open(f"{args.dir}/held-last.jsonl", "w") as f:
            f.write(line("bh-1", HELD_WAREHOUSE, HELD_SKU, 1, 1))
            expected.write("bh-1\n")
    summary = {"events": args.events, "keys": keys + 1, "heldKey": f"{HELD_WAREHOUSE}/{HELD_SKU}", "heldEvents": held,
               "displaced": displaced, "outOfOrder": args.out_of_order, "seed": args.seed}
    with open(f"{args.dir}/backlog.json", "w") as f:
        json.dump(summary, f)
    print(json.dumps(summary))


def stamp(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def analyze(args):
    backlog = json.load(open(args.backlog))
    held_key = backlog["heldKey"]
    times = []  # postedAt of each posting, in ledger order
    held = []  # (position, sequence, postedAt) of the held key
    for raw in open(args.documents):
        d = json.loads(raw)
        at = stamp(d["postedAt"])
        times.append(at)
        if d["key"] == held_key:
            held.append((d["position"], d["sequence"], at))
    # the ledger is in position order (fetch_documents pages by position); postedAt has ms resolution
    n = len(times)
    out = {"postings": n}
    if n:
        first, last = times[0], times[-1]
        out["firstPostingAfterStart"] = round(first - args.start, 1)
        out["drainSeconds"] = round(last - args.start, 1)
        out["usPerEvent"] = round((last - args.start) / n * 1e6)
        out["usPerEventPosting"] = round((last - first) / max(1, n - 1) * 1e6)
        slices = []
        size = max(1, n // args.slices)
        begin_time = first
        for s in range(args.slices):
            lo = s * size
            hi = n if s == args.slices - 1 else min(n, (s + 1) * size)
            if lo >= hi:
                break
            end_time = times[hi - 1]
            slices.append(round((end_time - begin_time) / (hi - lo) * 1e6))
            begin_time = end_time
        out["sliceUsPerEvent"] = slices
        median = statistics.median(slices)
        out["sliceMaxOverMedian"] = round(max(slices) / median, 2) if median > 0 else None
        out["sliceLastOverFirst"] = round(slices[-1] / slices[0], 2) if slices[0] > 0 else None
    held_sequences = [sequence for _, sequence, _ in sorted(held)]
    out["held"] = {
        "key": held_key,
        "expected": backlog["heldEvents"],
        "posted": len(held),
        "inOrder": held_sequences == list(range(1, backlog["heldEvents"] + 1)),
    }
    if held:
        at = sorted(t for _, _, t in held)
        out["held"]["releaseSeconds"] = round(at[-1] - at[0], 1)
        out["held"]["firstPostedAfterStart"] = round(at[0] - args.start, 1)
    rss = []
    for raw in open(args.samples):
        parts = raw.split()
        if len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) > 0:
            rss.append((float(parts[0]), int(parts[1])))
    if rss:
        out["rssSamples"] = len(rss)
        out["rssMaxMiB"] = round(max(r for _, r in rss) / 1024)
        half = len(rss) // 2
        out["rssFirstHalfMaxMiB"] = round(max(r for _, r in rss[:half] or rss) / 1024)
        out["rssSecondHalfMaxMiB"] = round(max(r for _, r in rss[half:]) / 1024)
    json.dump(out, sys.stdout)
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--dir", required=True)
    g.add_argument("--events", type=int, default=1_000_000)
    g.add_argument("--keys", type=int, default=100_000)
    g.add_argument("--held", type=int, default=10_000)
    g.add_argument("--out-of-order", type=float, default=0.3)
    g.add_argument("--seed", type=int, default=17)
    a = sub.add_parser("analyze")
    a.add_argument("--documents", required=True)
    a.add_argument("--backlog", required=True)
    a.add_argument("--samples", required=True)
    a.add_argument("--start", type=float, required=True)
    a.add_argument("--slices", type=int, default=10)
    args = parser.parse_args()
    generate(args) if args.command == "generate" else analyze(args)


if __name__ == "__main__":
    main()
