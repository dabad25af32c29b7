#!/usr/bin/python3
"""Fuzzed WMS messages for scripts/proof (scenario fuzz).

  proof_fuzz.py --write-master-data FILE --count N
      the reference ERP's seed: WH1..WH4, the SKUs FZ-0000000.. the messages use (one key each)
  proof_fuzz.py --amqp-url URL --gateway URL [--gateway-token T] [--gateway-secret S] --count N
                --gateway-count M --seed S --out FILE
      N messages over AMQP (confirmed, mandatory), each a valid event of its own key (sequence 1:
      the workers run with ACCEPT_FIRST_SEQUENCE) with one mutation of its body, properties,
      headers or routing key (or none); then M requests to wms-gateway (fuzz_gateway): mutated
      events to POST /events, batches of them to POST /events:batch, and requests it must refuse
      (credentials, headers, sizes, methods, paths). FILE gets the counts: amqpPublished,
      amqpUnroutable, gatewaySent, gatewayAccepted (events), gatewayStatuses ("route:status"),
      gatewayUnexpected (answers breaking docs/gateway.md) and samples of them, mutations
  proof_fuzz.py --amqp-url URL --drain-dead-letters --out FILE
      consumes whsync.dead-letters; FILE gets count, reasons (whsync-reason, or x-death's), withoutReason

Debian's python3-pika; no other dependency.
"""
import argparse
import hashlib
import hmac
import json
import random
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pika

WAREHOUSES = ["WH1", "WH2", "WH3", "WH4"]
UOM = "EA"


def master_data(count):
    return {
        "warehouses": [{"code": w, "name": w} for w in WAREHOUSES],
        "skus": [{"sku": f"FZ-{n:07d}", "uom": UOM, "description": "fuzz"} for n in range(count + 1)],
    }


def template(prefix, n, rng):
    """A valid event of a key of its own (sequence 1), its routing key and its sequencing key."""
    wh = WAREHOUSES[n % len(WAREHOUSES)]
    sku = f"FZ-{n:07d}"
    common = {"eventId": f"{prefix}-{n}", "occurredAt": "2025-01-15T10:00:00Z", "warehouse": wh, "sequence": 1,
              "correlationId": f"fz-corr-{n}", "source": "proof-fuzz"}
    kind = n % 3
    if kind == 0:
        body = {"schema": "inventory.delta/1", **common, "sku": sku, "quantity": rng.choice([5, -2, 12.5]),
                "uom": UOM, "status": "available", "reason": "adjustment", "location": "A-01"}
        return body, f"inventory.{wh}", f"{wh}/{sku}"
    if kind == 1:
        body = {"schema": "shipment.event/1", **common, "shipmentId": f"FZS-{n}", "orderRef": f"SO-{n}",
                "status": "packed", "lines": [{"sku": sku, "quantity": 2, "uom": UOM}]}
        return body, f"shipment.{wh}", f"{wh}/FZS-{n}"
    body = {"schema": "receipt.event/1", **common, "receiptId": f"FZR-{n}", "purchaseOrderRef": f"PO-{n}",
            "supplier": "ACME", "status": "received",
            "lines": [{"sku": sku, "quantityExpected": 3, "quantityReceived": 3, "uom": UOM}]}
    return body, f"receipt.{wh}", f"{wh}/FZR-{n}"


WEIRD_VALUES = [None, [], {}, True, "", "x" * 300, 0, -1, 1e308, 2**64, -(2**63) - 1, 1.5, "1", "\u0000", "\u202e"]


def mutate_body(body, kind, rng, n):
    """Returns raw bytes: the event with one defect of kind `kind`."""
    b = json.loads(json.dumps(body))
    field = rng.choice(sorted(b.keys()))
    if kind == "none":
        pass
    elif kind == "drop-field":
        del b[field]
    elif kind == "wrong-type":
        b[field] = rng.choice(WEIRD_VALUES)
    elif kind == "number-extreme":
        target = "quantity" if "quantity" in b else "sequence"
        raw = json.dumps(b).replace(json.dumps(target) + ": " + json.dumps(b[target]),
                                    json.dumps(target) + ": " + rng.choice(
                                        ["1e400", "0.1234567", "-0", "1e-7", "0", "99999999999999999999999", "1E+3",
                                         "-1", "18446744073709551616", "NaN", "Infinity", "00012"]))
        return raw.encode()
    elif kind == "sequence-extreme":
        b["sequence"] = rng.choice([0, -1, 2**63, 2**63 - 1, 2**64, 1.0, 1.5, "1", None])
    elif kind == "long-eventid":
        b["eventId"] = f"{b['eventId']}-" + "e" * rng.choice([120, 128, 129, 5000])
    elif kind == "unicode-eventid":
        b["eventId"] = b["eventId"] + rng.choice(["\u00e9", "\U0001f4e6", "\u0000", "\u202e", " ", "\n", "\ud7ff"])
    elif kind == "bad-date":
        b["occurredAt"] = rng.choice(["yesterday", "2025-13-40T25:61:61Z", "", "2025-01-15", 1736935200, "2025-01-15T10:00:00+99:00"])
    elif kind == "unknown-status":
        b["status"] = rng.choice(["ONHAND", "Shipped", "", "available ", "AVAIL\u0000"])
    elif kind == "unknown-schema":
        b["schema"] = rng.choice(["inventory.delta/2", "shipment.event/0", "", "receipt.event/1 ", None])
    elif kind == "warehouse-mismatch":
        b["warehouse"] = rng.choice(["WH2", "WH9", "WH1/DOCK", "wh1", "W" * 65])
    elif kind == "bad-lines":
        if "lines" in b:
            b["lines"] = rng.choice([[], [{}], [{"sku": "FZ-0000000"}], "lines", [{"sku": None, "quantity": -1, "uom": 7}],
                                     [b["lines"][0]] * 1000])
        else:
            b["quantity"] = 0
    elif kind == "extra-fields":
        b["zzz"] = {"nested": [1, 2, {"deep": True}]}
        b["__proto__"] = "x"
    elif kind == "huge-string":
        b["correlationId"] = "c" * rng.choice([200 * 1024, 300 * 1024])
    elif kind == "deep-nesting":
        depth = rng.choice([100, 2000, 20000])
        return (json.dumps(b)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}").encode()
    elif kind == "duplicate-key":
        return (json.dumps(b)[:-1] + ', "eventId": "other-' + str(n) + '"}').encode()
    elif kind == "truncated":
        raw = json.dumps(b).encode()
        return raw[: rng.randrange(0, len(raw))]
    elif kind == "byte-flip":
        raw = bytearray(json.dumps(b).encode())
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    elif kind == "garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 2048)))
    elif kind == "empty":
        return b""
    elif kind == "not-an-object":
        return rng.choice([b"[]", b"null", b"42", b'"event"', json.dumps([b]).encode()])
    elif kind == "bom":
        return b"\xef\xbb\xbf" + json.dumps(b).encode()
    elif kind == "invalid-utf8":
        return json.dumps(b).encode().replace(b'"proof-fuzz"', b'"proof-\xff\xfe-fuzz"')
    return json.dumps(b, ensure_ascii=rng.random() < 0.5).encode()


BODY_KINDS = ["none", "drop-field", "wrong-type", "number-extreme", "sequence-extreme", "long-eventid", "unicode-eventid",
              "bad-date", "unknown-status", "unknown-schema", "warehouse-mismatch", "bad-lines", "extra-fields",
              "huge-string", "deep-nesting", "duplicate-key", "truncated", "byte-flip", "garbage", "empty",
              "not-an-object", "bom", "invalid-utf8"]
HEADER_KINDS = ["no-message-id", "message-id-mismatch", "content-type", "type-header", "partition-key",
                "forged-replay", "attempt-garbage", "x-death", "forged-reason", "header-soup", "transient",
                "other-stream", "odd-routing-key"]


def fuzz_amqp(args, rng, counts):
    params = pika.URLParameters(args.amqp_url)
    params.heartbeat = 60
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.confirm_delivery()
    published = unroutable = 0
    for n in range(args.count):
        body, routing_key, key = template("fz", n, rng)
        headers = {"partition-key": key}
        props = dict(content_type="application/json", delivery_mode=2, message_id=body["eventId"],
                     correlation_id=body["correlationId"], type=body["schema"])
        if rng.random() < 0.35:
            kind = rng.choice(HEADER_KINDS)
            raw = json.dumps(body).encode()
            if kind == "no-message-id":
                props.pop("message_id")
            elif kind == "message-id-mismatch":
                props["message_id"] = f"not-{body['eventId']}"
            elif kind == "content-type":
                props["content_type"] = rng.choice(["text/plain", "application/xml", "", None])
            elif kind == "type-header":
                props["type"] = rng.choice(["inventory.delta/9", "", None, "x" * 255])
            elif kind == "partition-key":
                headers["partition-key"] = rng.choice(["", "WH1/OTHER", "k" * 10000, 42, None, ["a"]])
            elif kind == "forged-replay":
                headers["whsync-replay-of"] = rng.choice(["1", "999999", "", "-1", 7, "x" * 500])
            elif kind == "attempt-garbage":
                headers["whsync-attempt"] = rng.choice(["abc", -5, 10**9, 2**62, None, Decimal("1.5"), "3"])
            elif kind == "x-death":
                headers["x-death"] = rng.choice([[{"count": 99, "reason": "rejected", "queue": "erp.inventory",
                                                    "exchange": "wms.events", "routing-keys": [routing_key]}],
                                                 "x-death", [], [1, 2]])
            elif kind == "forged-reason":
                headers["whsync-reason"] = "retries-exhausted"
                headers["whsync-error"] = "forged"
            elif kind == "header-soup":
                headers.update({"a" * 200: "b", "bytes": b"\x00\xff", "dec": Decimal("1.5"), "nested": {"x": [1, {"y": None}]},
                                "bool": True, "big": 2**62})
            elif kind == "transient":
                props["delivery_mode"] = 1
            elif kind == "other-stream":
                stream = routing_key.split(".")[0]
                other = rng.choice([s for s in ["inventory", "shipment", "receipt"] if s != stream])
                routing_key = f"{other}.{body['warehouse']}"
            elif kind == "odd-routing-key":
                stream = routing_key.split(".")[0]
                routing_key = f"{stream}." + rng.choice(["WH2", "WH9", "", "WH1 EAST", "WH\u00d8", "x" * 200])
        else:
            kind = rng.choice(BODY_KINDS)
            raw = mutate_body(body, kind, rng, n)
        counts[kind] = counts.get(kind, 0) + 1
        try:
            channel.basic_publish("wms.events", routing_key, raw, pika.BasicProperties(headers=headers, **props),
                                  mandatory=True)
            published += 1
        except pika.exceptions.UnroutableError:
            unroutable += 1
        if n % 5000 == 0:
            print(f"proof_fuzz: {n} of {args.count} over AMQP", file=sys.stderr)
    connection.close()
    return published, unroutable


GATEWAY_ROUTES = ["events"] * 5 + ["batch"] * 2 + ["refused"] * 3
REFUSALS = ["no-credentials", "wrong-token", "malformed-authorization", "hmac-bad-signature", "hmac-stale",
            "hmac-malformed", "hmac-bad-timestamp", "reserved-header", "oversized-event", "oversized-batch-body",
            "batch-too-many", "batch-empty", "batch-broken-array", "wrong-method", "unknown-path"]
# what each refusal must get: a clear 4xx (JSON with an "error" for the event routes; 404 with an empty body elsewhere)
REFUSAL_STATUS = {"no-credentials": 401, "wrong-token": 401, "malformed-authorization": 401, "hmac-bad-signature": 401,
                  "hmac-stale": 401, "hmac-malformed": 401, "hmac-bad-timestamp": 401, "reserved-header": 400,
                  "oversized-event": 413, "oversized-batch-body": 413, "batch-too-many": 413, "batch-empty": 400,
                  "batch-broken-array": 400, "wrong-method": 404, "unknown-path": 404}
CONTENT_TYPES = [None, "application/json", "application/x-ndjson", "text/plain", "application/xml", "",
                 "application/json; charset=latin1", "multipart/form-data; boundary=x"]


class Gateway:
    """Requests to wms-gateway with its bearer token or an HMAC signature (or deliberately bad ones)."""

    def __init__(self, url, token, secret):
        self.url, self.token, self.secret = url, token, secret

    def sign(self, body, timestamp=None):
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return {"X-WHSync-Timestamp": stamp, "X-WHSync-Signature": "sha256=" + digest}

    def credentials(self, body, rng):
        """Good credentials: the token (any case of 'Bearer') or, without a secret, nothing; or a signature."""
        if self.secret and rng.random() < 0.3:
            return self.sign(body)
        if self.token:
            return {"Authorization": rng.choice(["Bearer", "bearer", "BEARER"]) + " " + self.token}
        return {}

    def send(self, path, body, headers, method="POST"):
        request = urllib.request.Request(self.url + path, data=body if method in ("POST", "PUT") else None,
                                         method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, ConnectionError, OSError) as error:
            # the gateway closing the connection on an oversized body before reading it all
            return "connection: " + type(getattr(error, "reason", error)).__name__, b""


def json_error(raw):
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value.get("error") if isinstance(value, dict) else None


def fuzz_gateway(args, rng, counts):
    """The gateway's routes: POST /events (a mutated event), POST /events:batch (a JSON array or JSON
    lines of mutated events), and requests it must refuse with a clear 4xx (credentials, reserved
    headers, oversized bodies and batches, empty or broken batches, other methods and paths), each
    with a random Content-Type (not looked at). Every answer is checked against what the route
    promises (docs/gateway.md); `unexpected` lists the answers that broke a promise."""
    gateway = Gateway(args.gateway, args.gateway_token, args.gateway_secret)
    sent = accepted = 0
    statuses, unexpected = {}, []
    next_n = args.count + args.gateway_count  # batch events take numbers (SKUs) after the singles

    def note(route, kind, status, raw, ok):
        key = f"{route}:{status}"
        statuses[key] = statuses.get(key, 0) + 1
        if not ok and len(unexpected) < 50:
            unexpected.append({"route": route, "kind": kind, "status": status, "body": raw[:300].decode("utf-8", "replace")})
        return ok

    for n in range(args.gateway_count):
        route = rng.choice(GATEWAY_ROUTES)
        headers = {}
        content_type = rng.choice(CONTENT_TYPES)
        if content_type is not None:
            headers["Content-Type"] = content_type
        if route == "events":
            body, _, _ = template("fg", n + args.count, rng)
            kind = rng.choice(BODY_KINDS)
            raw = mutate_body(body, kind, rng, n)
            counts["gateway:" + kind] = counts.get("gateway:" + kind, 0) + 1
            status, answer = gateway.send("/events", raw, {**headers, **gateway.credentials(raw, rng)})
            if status == 202:
                accepted += 1
            # 202 accepted, 400 invalid (JSON with error "invalid"), 413 over 256 KiB: nothing else
            ok = status == 202 or (status in (400, 413) and json_error(answer) in ("invalid", "too-large"))
            note("events", kind, status, answer, ok)
        elif route == "batch":
            size = rng.randint(1, 10)
            kinds, items = [], []
            for _ in range(size):
                body, _, _ = template("fb", next_n, rng)
                kind = rng.choice(BODY_KINDS)
                items.append(mutate_body(body, kind, rng, next_n))
                kinds.append(kind)
                next_n += 1
            form = rng.choice(["array", "lines", "lines-crlf"])
            if form == "array":
                raw = b"[" + b",".join(items) + b"]"
            else:
                end = b"\r\n" if form == "lines-crlf" else b"\n"
                raw = end.join(items) + (end if rng.random() < 0.5 else b"")
            counts["gateway-batch:" + form] = counts.get("gateway-batch:" + form, 0) + 1
            status, answer = gateway.send("/events:batch", raw, {**headers, **gateway.credentials(raw, rng)})
            try:
                result = json.loads(answer)
            except ValueError:
                result = None
            good = isinstance(result, dict)
            if good and status in (202, 207) and isinstance(result.get("accepted"), int):
                accepted += result["accepted"]
                good = result["accepted"] == sum(1 for r in result.get("results", []) if r.get("status") == "accepted")
            elif good and status == 400:
                good = result.get("error") == "invalid" or result.get("accepted") == 0
            elif good and status == 413:
                good = result.get("error") == "too-large"
            else:
                good = False
            note("batch", form, status, answer, good)
        else:
            kind = rng.choice(REFUSALS)
            counts["gateway-refused:" + kind] = counts.get("gateway-refused:" + kind, 0) + 1
            body, _, _ = template("fr", n + args.count, rng)  # a valid event, refused for another reason
            raw = json.dumps(body).encode()
            path, method, creds = "/events", "POST", None
            if kind == "no-credentials":
                creds = {}
            elif kind == "wrong-token":
                creds = {"Authorization": "Bearer " + rng.choice(["wrong", (args.gateway_token or "x") + "x", "x" * 5000])}
            elif kind == "malformed-authorization":
                creds = {"Authorization": rng.choice(["Basic Z3Vlc3Q6Z3Vlc3Q=", "Bearer", "Token abc", "bearer  ", "\u00e9"])}
            elif kind == "hmac-bad-signature":
                creds = gateway.sign(raw + b" ")
            elif kind == "hmac-stale":
                creds = gateway.sign(raw, int(time.time()) + rng.choice([-3600, -601, 601, 86400]))
            elif kind == "hmac-malformed":
                creds = {**gateway.sign(raw), "X-WHSync-Signature": rng.choice(["sha256=zz", "md5=00", "", "sha256=" + "0" * 63])}
            elif kind == "hmac-bad-timestamp":
                creds = {**gateway.sign(raw), "X-WHSync-Timestamp": rng.choice(["now", "", "1.5", "-1", "9" * 30])}
            elif kind == "reserved-header":
                headers[rng.choice(["whsync-replay-of", "whsync-attempt", "Whsync-Reason", "WHSYNC-X"])] = "1"
                path = rng.choice(["/events", "/events:batch"])
            elif kind == "oversized-event":
                body["correlationId"] = "c" * (300 * 1024)
                raw = json.dumps(body).encode()
            elif kind == "oversized-batch-body":
                path = "/events:batch"
                raw = b"\n".join([raw] * (4 * 1024 * 1024 // len(raw) + 2))
            elif kind == "batch-too-many":
                path = "/events:batch"
                raw = b"[" + b",".join([raw] * 1001) + b"]"
            elif kind == "batch-empty":
                path = "/events:batch"
                raw = rng.choice([b"", b"\n\n", b"[]", b"   "])
            elif kind == "batch-broken-array":
                path = "/events:batch"
                raw = b"[" + raw + b","
            elif kind == "wrong-method":
                method = rng.choice(["GET", "PUT", "DELETE", "PATCH"])
                path = rng.choice(["/events", "/events:batch"])
            elif kind == "unknown-path":
                path = rng.choice(["/event", "/events:batchx", "/EVENTS", "/events:bulk", "/", "/admin"])
            if creds is None:  # refused for what it is, not for its credentials: good ones
                creds = gateway.credentials(raw, rng)
            status, answer = gateway.send(path, raw, {**headers, **creds}, method=method)
            if status in (202, 207):  # published after all: counted, so that the accounting stays whole
                accepted += (json.loads(answer).get("accepted", 1) if path == "/events:batch" else 1)
            want = REFUSAL_STATUS[kind]
            if want == 404:
                ok = status in (404, 405)  # docs/gateway.md: 404 with an empty body for any other path or method
            else:
                ok = status == want and json_error(answer) is not None
            if kind == "oversized-batch-body" and isinstance(status, str):
                ok = True  # the gateway may close the connection on a body over its limit before the answer is read
            note("refused", kind, status, answer, ok)
        sent += 1
    return sent, accepted, statuses, unexpected


def drain(args):
    connection = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel = connection.channel()
    count = without = 0
    reasons = {}
    while True:
        method, props, _ = channel.basic_get("whsync.dead-letters", auto_ack=False)
        if method is None:
            break
        headers = props.headers or {}
        reason = headers.get("whsync-reason")
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        if not reason and headers.get("x-death"):
            reason = "x-death:" + str(headers["x-death"][0].get("reason"))
        if not reason:
            without += 1
            reason = "(none)"
        reasons[reason] = reasons.get(reason, 0) + 1
        count += 1
        channel.basic_ack(method.delivery_tag)
    connection.close()
    return {"count": count, "reasons": reasons, "withoutReason": without}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp-url")
    parser.add_argument("--gateway")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--gateway-count", type=int, default=0)
    parser.add_argument("--gateway-token", help="the gateway's bearer token (GATEWAY_TOKEN_FILE's content)")
    parser.add_argument("--gateway-secret", help="the gateway's HMAC secret (GATEWAY_HMAC_SECRET_FILE's content)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out")
    parser.add_argument("--write-master-data")
    parser.add_argument("--drain-dead-letters", action="store_true")
    args = parser.parse_args()
    if args.write_master_data:
        with open(args.write_master_data, "w") as f:
            # the SKUs of the AMQP messages, the gateway's single events and its batches' (at most 10 each)
            json.dump(master_data(args.count + 11 * args.gateway_count), f)
        return
    if args.drain_dead_letters:
        result = drain(args)
    else:
        rng = random.Random(args.seed)
        counts = {}
        published, unroutable = fuzz_amqp(args, rng, counts)
        sent, accepted, statuses, unexpected = fuzz_gateway(args, rng, counts) if args.gateway else (0, 0, {}, [])
        result = {"amqpPublished": published, "amqpUnroutable": unroutable, "gatewaySent": sent,
                  "gatewayAccepted": accepted, "gatewayStatuses": statuses, "gatewayUnexpected": len(unexpected),
                  "gatewayUnexpectedSamples": unexpected, "mutations": counts}
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
