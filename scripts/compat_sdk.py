#!/usr/bin/env python3
"""Wire-compatibility check for a running BoxRun server.

Replays the HTTP call sequences of the Python SDK (boxrun_sdk, spec section 17)
with the Python standard library only, and checks status codes, exact JSON key
sets, the SSE framing and the error envelope.

Usage:
    python3 compat_sdk.py http://127.0.0.1:9090 [--image IMAGE]
    python3 compat_sdk.py http+unix:///path/to/boxrun.sock [--image IMAGE]

Exit status 0 when every check passes; 1 with a message on the first failure.
The image must have /bin/sh, echo, cat and sleep (busybox is enough).
"""

import argparse
import http.client
import json
import os
import socket
import sys
import tempfile
import time
import urllib.parse
import uuid

BOX_KEYS = {
    "id", "name", "status", "image", "cpu", "memory_mb", "disk_size_gb", "network", "workdir",
    "env", "volumes", "boxlite_id", "error_code", "error_message", "created_at", "started_at",
    "stopped_at",
}
EXEC_KEYS = {
    "id", "box_id", "status", "cmd", "env", "workdir", "timeout_ms", "exit_code", "error_message",
    "created_at", "finished_at",
}
RUN_KEYS = {"exit_code", "stdout", "stderr", "error_message"}
EVENT_KEYS = {"stream", "data", "seq"}


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket; the Host header is 'localhost' like httpx's uds transport."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class BoxRunError(Exception):
    """Like the SDK's BoxRunError: str is '[code] message'."""

    def __init__(self, status, code, message):
        super().__init__("[%s] %s" % (code, message))
        self.status, self.code, self.message = status, code, message


class Client:
    """The HTTP usage of boxrun_sdk.BoxRunClient, over http.client."""

    def __init__(self, base_url):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme == "http+unix":
            self.unix = urllib.parse.unquote(u.netloc + u.path) if u.netloc else u.path
            self.host = None
        else:
            self.unix = None
            self.host, self.port = u.hostname, u.port or 80

    def conn(self, timeout):
        if self.unix:
            return UnixHTTPConnection(self.unix, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def raw(self, method, path, body=None, headers=None, timeout=30):
        c = self.conn(timeout)
        c.request(method, path, body=body, headers=headers or {})
        res = c.getresponse()
        data = res.read()
        c.close()
        return res, data

    def call(self, method, path, payload=None, timeout=30, want=(200, 201)):
        headers = {}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        res, data = self.raw(method, path, body, headers, timeout)
        if res.status >= 400:
            raise parse_error(res.status, data)
        check(res.status in want, "%s %s: status %d" % (method, path, res.status))
        check(res.getheader("Content-Type", "").startswith("application/json"),
              "%s %s: content type %r" % (method, path, res.getheader("Content-Type")))
        return json.loads(data) if data else None

    # --- SDK methods (spec 17.3) ---
    def info(self):
        return self.call("GET", "/v1/info", timeout=10)

    def create(self, image, name=None, cpu=2, memory_mb=1024, disk_size_gb=8, network=False,
               workdir="/root", env=None, volumes=None):
        body = {"image": image, "cpu": cpu, "memory_mb": memory_mb, "disk_size_gb": disk_size_gb,
                "network": network, "workdir": workdir}
        if name is not None:
            body["name"] = name
        if env is not None:
            body["env"] = env
        if volumes is not None:
            body["volumes"] = volumes
        return self.call("POST", "/v1/boxes", body, timeout=60)

    def get_box(self, box):
        return self.call("GET", "/v1/boxes/" + q(box), timeout=10)

    def list_boxes(self, status=None):
        path = "/v1/boxes" + ("?status=" + q(status) if status else "")
        return self.call("GET", path, timeout=10)

    def stop_box(self, box):
        return self.call("POST", "/v1/boxes/%s:stop" % q(box))

    def start_box(self, box):
        return self.call("POST", "/v1/boxes/%s:start" % q(box))

    def remove_box(self, box, force=False):
        return self.call("DELETE", "/v1/boxes/" + q(box) + ("?force=true" if force else ""))

    def start_exec(self, box, cmd, env=None, workdir=None, timeout_ms=None):
        body = {"cmd": cmd}
        if env is not None:
            body["env"] = env
        if workdir is not None:
            body["workdir"] = workdir
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        return self.call("POST", "/v1/boxes/%s/exec" % q(box), body)

    def get_exec(self, box, exec_id):
        return self.call("GET", "/v1/boxes/%s/exec/%s" % (q(box), q(exec_id)), timeout=10)

    def exec_stream(self, box, exec_id):
        """Yields (event, data dict) until the server closes the stream, like httpx-sse."""
        c = self.conn(None)
        c.request("GET", "/v1/boxes/%s/exec/%s/events" % (q(box), q(exec_id)),
                  headers={"Accept": "text/event-stream", "Cache-Control": "no-store"})
        res = c.getresponse()
        ctype = res.getheader("Content-Type", "")
        if "text/event-stream" not in ctype:
            data = res.read()
            c.close()
            raise parse_error(res.status, data, sse=True)
        event, data_lines = "message", []
        while True:
            line = res.readline()
            if not line:
                break
            line = line.decode("utf-8").rstrip("\r\n")
            if line == "":
                if data_lines:
                    yield event, json.loads("\n".join(data_lines))
                event, data_lines = "message", []
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data_lines.append(value)
                elif field in ("id", "retry"):
                    raise CheckFailed("unexpected %r line in a default SSE stream" % field)
        c.close()

    def upload_file(self, box, local_path, dest_path):
        boundary = uuid.uuid4().hex
        with open(local_path, "rb") as f:
            content = f.read()
        name = os.path.basename(local_path)
        body = (
            ("--%s\r\nContent-Disposition: form-data; name=\"dest\"\r\n\r\n%s\r\n" % (boundary, dest_path)).encode()
            + ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
               "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name)).encode()
            + content + ("\r\n--%s--\r\n" % boundary).encode()
        )
        res, data = self.raw("POST", "/v1/boxes/%s/files/upload" % q(box), body,
                             {"Content-Type": "multipart/form-data; boundary=" + boundary}, 60)
        if res.status >= 400:
            raise parse_error(res.status, data)
        return json.loads(data)

    def download_file(self, box, remote_path, local_path):
        res, data = self.raw("POST", "/v1/boxes/%s/files/download" % q(box),
                             json.dumps({"path": remote_path}).encode(),
                             {"Content-Type": "application/json"}, 60)
        if res.status >= 400:
            raise parse_error(res.status, data)
        with open(local_path, "wb") as f:
            f.write(data)
        return res

    def run(self, image, cmd, env=None, timeout_ms=None, disk_size_gb=8, volumes=None):
        body = {"image": image, "cmd": cmd, "disk_size_gb": disk_size_gb}
        if env is not None:
            body["env"] = env
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        if volumes is not None:
            body["volumes"] = volumes
        return self.call("POST", "/v1/run", body, timeout=300)

    def gc(self, older_than=3600):
        return self.call("POST", "/v1/gc", {"older_than": older_than}).get("removed", 0)

    # BoxHandle.exec: start, then poll every 0.5 s while running.
    def exec_and_wait(self, box, cmd, env=None, timeout_ms=None):
        info = self.start_exec(box, cmd, env=env, timeout_ms=timeout_ms)
        deadline = time.time() + (timeout_ms / 1000 + 30 if timeout_ms else 600)
        while info["status"] == "running" and time.time() < deadline:
            time.sleep(0.5)
            info = self.get_exec(box, info["id"])
        return info


def q(s):
    return urllib.parse.quote(s, safe="")


def parse_error(status, data, sse=False):
    """The SDK's error parsing: JSON code/message, else RUNTIME_ERROR + raw text."""
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError
        code, message = obj.get("code", "RUNTIME_ERROR"), obj.get("message", data.decode())
        if not sse:
            check(set(obj) == {"code", "message"}, "error envelope keys %s" % sorted(obj))
    except ValueError:
        code, message = "RUNTIME_ERROR", data.decode(errors="replace")
    return BoxRunError(status, code, message)


def expect_error(fn, status, code):
    try:
        fn()
    except BoxRunError as e:
        check(e.status == status and e.code == code,
              "expected %d %s, got %d %s (%s)" % (status, code, e.status, e.code, e.message))
        return e
    raise CheckFailed("expected %d %s, call succeeded" % (status, code))


def keys(obj, want, what):
    check(isinstance(obj, dict), "%s is not an object: %r" % (what, obj))
    check(set(obj) == want, "%s keys differ: extra %s, missing %s"
          % (what, sorted(set(obj) - want), sorted(want - set(obj))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--image", default="busybox")
    args = ap.parse_args()
    c = Client(args.url)
    image = args.image
    info = c.info()
    keys(info, {"max_cpu", "max_memory_mb"}, "info")
    check(isinstance(info["max_cpu"], int) and info["max_cpu"] > 0, "max_cpu %r" % info["max_cpu"])
    print("ok   info")

    name = "compat-" + uuid.uuid4().hex[:8]
    box = c.create(image, name=name, env={"COMPAT": "yes"})
    keys(box, BOX_KEYS, "created box")
    check(box["status"] == "running" and box["name"] == name and box["image"] == image, "created box %r" % box)
    check(box["cpu"] == 2 and box["memory_mb"] == 1024 and box["disk_size_gb"] == 8, "defaults %r" % box)
    check(box["workdir"] == "/root" and box["network"] is False and box["env"] == {"COMPAT": "yes"}, "box %r" % box)
    check(box["stopped_at"] is None and box["error_code"] is None and box["volumes"] is None, "nulls %r" % box)
    check(box["id"].startswith("box_"), "box id %r" % box["id"])
    bid = box["id"]
    print("ok   create")

    keys(c.get_box(bid), BOX_KEYS, "get by id")
    check(c.get_box(name)["id"] == bid, "get by name")
    listed = c.list_boxes()
    check(isinstance(listed, list) and bid in [b["id"] for b in listed], "list")
    for b in listed:
        keys(b, BOX_KEYS, "listed box")
    check(bid in [b["id"] for b in c.list_boxes(status="running")], "list running")
    check(bid not in [b["id"] for b in c.list_boxes(status="stopped")], "list stopped")
    print("ok   get/list")

    ex = c.start_exec(bid, ["sh", "-c", "echo out; echo err >&2"])
    keys(ex, EXEC_KEYS, "started exec")
    check(ex["status"] == "running" and ex["box_id"] == bid and ex["exit_code"] is None, "started exec %r" % ex)
    check(ex["env"] is None and ex["workdir"] is None and ex["timeout_ms"] is None, "exec nulls %r" % ex)
    done = c.exec_and_wait(bid, ["sh", "-c", "echo $COMPAT $X"], env={"X": "1"}, timeout_ms=20000)
    keys(done, EXEC_KEYS, "finished exec")
    check(done["status"] == "succeeded" and done["exit_code"] == 0 and done["finished_at"], "exec %r" % done)
    check(done["env"] == {"X": "1"} and done["timeout_ms"] == 20000, "exec as requested %r" % done)
    failed = c.exec_and_wait(name, ["sh", "-c", "exit 3"])
    check(failed["status"] == "failed" and failed["exit_code"] == 3, "failed exec %r" % failed)
    print("ok   exec + poll")

    events = list(c.exec_stream(bid, ex["id"]))
    check(events and events[-1][0] == "exit", "stream ends with exit: %r" % events)
    out, err = "", ""
    for i, (ev, data) in enumerate(events):
        keys(data, EVENT_KEYS, "event data")
        check("event_type" not in data, "event_type key")
        check(data["seq"] == i, "seq %d at position %d" % (data["seq"], i))
        if ev == "log":
            if data["stream"] == "stdout":
                out += data["data"]
            else:
                check(data["stream"] == "stderr", "stream %r" % data["stream"])
                err += data["data"]
        else:
            check(ev == "exit" and i == len(events) - 1, "event %r" % ev)
            check(data["stream"] is None, "exit stream")
            check(json.loads(data["data"]) == {"exit_code": 0}, "exit data %r" % data["data"])
    check(out == "out\n" and err == "err\n", "streamed output %r %r" % (out, err))
    live = c.start_exec(bid, ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done"])
    live_events = list(c.exec_stream(bid, live["id"]))
    check("".join(d["data"] for e, d in live_events if e == "log") == "1\n2\n3\n", "live stream %r" % live_events)
    try:
        list(c.exec_stream(bid, "exec_doesnotexist"))
        raise CheckFailed("stream of an unknown exec succeeded")
    except BoxRunError as e:
        check(e.status == 404 and e.code == "EXEC_NOT_FOUND", "unknown exec stream: %d %s" % (e.status, e.code))
    print("ok   sse")

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "hello.txt")
        payload = b"hello compat\n\x00\xff binary"
        with open(src, "wb") as f:
            f.write(payload)
        up = c.upload_file(bid, src, "/root/uploaded.txt")
        check(up == {"ok": True, "dest": "/root/uploaded.txt"}, "upload %r" % up)
        dst = os.path.join(tmp, "back.txt")
        res = c.download_file(bid, "/root/uploaded.txt", dst)
        check(res.getheader("Content-Type") == "application/octet-stream", "download type")
        check(res.getheader("Content-Disposition") == 'attachment; filename="uploaded.txt"', "disposition")
        with open(dst, "rb") as f:
            check(f.read() == payload, "downloaded bytes differ")
        catted = c.exec_and_wait(bid, ["cat", "uploaded.txt"])  # relative to the box workdir /root
        check(catted["exit_code"] == 0, "uploaded file visible to execs")
        expect_error(lambda: c.download_file(bid, "/root/missing.txt", dst), 400, "RUNTIME_ERROR")
    print("ok   upload/download")

    stopped = c.stop_box(bid)
    keys(stopped, BOX_KEYS, "stopped box")
    check(stopped["status"] == "stopped" and stopped["stopped_at"], "stop %r" % stopped)
    expect_error(lambda: c.stop_box(bid), 400, "BOX_NOT_RUNNING")
    expect_error(lambda: c.start_exec(bid, ["true"]), 400, "BOX_NOT_RUNNING")
    started = c.start_box(name)
    check(started["status"] == "running" and started["stopped_at"] is None, "start %r" % started)
    expect_error(lambda: c.start_box(bid), 409, "BOX_ALREADY_RUNNING")
    print("ok   stop/start")

    e = expect_error(lambda: c.get_box("no-such-box"), 404, "BOX_NOT_FOUND")
    check(str(e) == "[BOX_NOT_FOUND] Box 'no-such-box' not found", "error str %r" % str(e))
    expect_error(lambda: c.get_exec(bid, "exec_doesnotexist"), 404, "EXEC_NOT_FOUND")
    expect_error(lambda: c.create(image, name=name), 409, "NAME_ALREADY_EXISTS")
    expect_error(lambda: c.create(image, cpu=0), 422, "VALIDATION_ERROR")
    expect_error(lambda: c.start_exec(bid, []), 422, "VALIDATION_ERROR")
    expect_error(lambda: c.remove_box(bid), 409, "BOX_ALREADY_RUNNING")
    expect_error(lambda: c.call("POST", "/v1/boxes/%s:reboot" % bid), 400, "VALIDATION_ERROR")
    res, data = c.raw("POST", "/v1/boxes", b"{not json", {"Content-Type": "application/json"})
    check(res.status == 400 and json.loads(data)["code"] == "VALIDATION_ERROR", "bad JSON: %d %r" % (res.status, data))
    res, data = c.raw("POST", "/v1/boxes", b"{}", {})
    check(res.status == 415, "no content type: %d" % res.status)
    res, data = c.raw("GET", "/no/such/route")
    check(res.status == 404 and set(json.loads(data)) == {"code", "message"}, "unknown route %d %r" % (res.status, data))
    print("ok   errors")

    r = c.run(image, ["sh", "-c", "echo run-out; echo run-err >&2; exit 4"], env={"A": "b"}, timeout_ms=60000)
    keys(r, RUN_KEYS, "run result")
    check(r == {"exit_code": 4, "stdout": "run-out\n", "stderr": "run-err\n", "error_message": None}, "run %r" % r)
    print("ok   run")

    check(c.remove_box(bid, force=True) == {"ok": True}, "remove")
    expect_error(lambda: c.get_box(bid), 404, "BOX_NOT_FOUND")
    spare = c.create(image)
    c.stop_box(spare["id"])
    removed = c.gc(older_than=0)
    check(isinstance(removed, int) and removed >= 1, "gc removed %r" % removed)
    default_gc = c.call("POST", "/v1/gc", {})
    check(set(default_gc) == {"removed"} and isinstance(default_gc["removed"], int), "gc default %r" % default_gc)
    expect_error(lambda: c.get_box(spare["id"]), 404, "BOX_NOT_FOUND")
    print("ok   remove/gc")

    res, _ = c.raw("GET", "/")
    check(res.status in (301, 302, 303, 307, 308) and res.getheader("Location", "").endswith("/ui"), "redirect %d" % res.status)
    res, data = c.raw("GET", "/ui")
    check(res.status == 200 and res.getheader("Content-Type") == "text/html; charset=utf-8" and b"BoxRun" in data, "ui")
    print("ok   ui")
    print("PASS")


if __name__ == "__main__":
    try:
        main()
    except (CheckFailed, BoxRunError, OSError, ValueError, KeyError) as e:
        print("FAIL %s: %s" % (type(e).__name__, e))
        sys.exit(1)
