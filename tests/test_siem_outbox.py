"""The outbox: order kept, nothing removed before the sink took it, retries after an outage,
counted drops past the bound with one overflow alert, and no loss across kill -9 of a real
process writing through it (every event arrives, in order, once after dedup by event id)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from plantguard.errors import InputError
from plantguard.siem import Outbox, open_sink
from plantguard.siem.events import alert, event_id


def events(n, start=0):
    return [alert(f"e{i}", f"event {i}", "medium", when=1700000000.0 + i) for i in range(start, start + n)]


def lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OctetCountingListener:
    """A syslog collector on loopback: reads RFC 5425 frames, closes when the sender does."""

    def __init__(self, port: int):
        self.frames: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while chunk := conn.recv(65536):
                    buf += chunk
                while buf:
                    n, _, rest = buf.partition(b" ")
                    self.frames.append(rest[:int(n)])
                    buf = rest[int(n):]

    def close(self):
        self.sock.close()


def test_put_then_flush_delivers_in_order_and_empties(tmp_path):
    out = tmp_path / "out.jsonl"
    box = Outbox(tmp_path / "box.db", open_sink(f"file://{out}?format=ecs"))
    evs = events(50)
    assert all(box.put(e) for e in evs) and box.depth() == 50
    assert box.flush(5) and box.depth() == 0 and box.stored_bytes == 0
    assert [d["event"]["id"] for d in lines(out)] == [e.id for e in evs]
    box.close()


def test_outage_keeps_events_and_retries_with_backoff(tmp_path):
    port = free_port()
    sink = open_sink(f"syslog+tcp://127.0.0.1:{port}?format=cef")
    box = Outbox(tmp_path / "box.db", sink, batch_events=7, backoff_first=0.05, backoff_max=0.2)
    evs = events(30)
    for e in evs:
        box.put(e)
    t0 = time.monotonic()
    assert not box.flush(0.5)
    assert time.monotonic() - t0 < 1.5
    assert box.depth() == 30 and box.failures >= 2 and "refused" in box.last_error.lower()
    listener = OctetCountingListener(port)
    try:
        assert box.flush(10), box.last_error
        assert box.failures == 0 and box.last_error is None
        time.sleep(0.1)
        assert listener.frames == [sink.encode(e) for e in evs]
    finally:
        listener.close()
        box.close()


def test_bound_drops_are_counted_with_one_overflow_alert_per_episode(tmp_path):
    out = tmp_path / "out.jsonl"
    sink = open_sink(f"file://{out}?format=ecs")
    box = Outbox(tmp_path / "box.db", sink, max_events=5)
    evs = events(9)
    assert [box.put(e) for e in evs] == [True] * 5 + [False] * 4
    assert box.dropped == 4 and box.depth() == 6          # five events and the overflow alert
    assert box.flush(5)
    assert box.put(events(1, 100)[0])                       # accepted again: the episode ends
    assert box.flush(5)
    docs = lines(out)
    assert [d["event"]["id"] for d in docs[:5]] == [e.id for e in evs[:5]]
    overflow, end, last = docs[5:]
    assert overflow["event"]["kind"] == "alert" and overflow["event"]["action"] == "sink-overflow"
    assert end["event"]["action"] == "sink-overflow-end" and "4 events were dropped" in end["message"]
    assert last["message"] == "event 100"
    box.close()
    again = Outbox(tmp_path / "box.db", sink, max_events=5)
    assert again.dropped == 4 and again.depth() == 0       # the count survives a restart
    again.close()


def test_bound_in_bytes(tmp_path):
    sink = open_sink(f"file://{tmp_path / 'o.jsonl'}?format=ecs")
    size = len(sink.encode(events(1)[0]))
    box = Outbox(tmp_path / "box.db", sink, max_bytes=size * 3 + size // 2)
    assert [box.put(e) for e in events(5)] == [True, True, True, False, False]
    assert box.dropped == 2
    box.close()


def test_an_outbox_belongs_to_one_sink(tmp_path):
    Outbox(tmp_path / "box.db", open_sink(f"file://{tmp_path / 'a.jsonl'}?format=ecs")).close()
    with pytest.raises(InputError, match="holds events for"):
        Outbox(tmp_path / "box.db", open_sink(f"file://{tmp_path / 'a.jsonl'}?format=cef"))


def test_background_delivery_thread(tmp_path):
    out = tmp_path / "out.jsonl"
    box = Outbox(tmp_path / "box.db", open_sink(f"file://{out}?format=ocsf"))
    box.start()
    evs = events(40)
    for e in evs:
        box.put(e)
    box.close(timeout=10)
    assert [d["metadata"]["uid"] for d in lines(out)] == [e.id for e in evs]


WRITER = textwrap.dedent("""
    import sys
    from plantguard.siem import Outbox, open_sink
    from plantguard.siem.events import alert
    box_path, out, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    box = Outbox(box_path, open_sink(f"file://{out}?format=ecs"), batch_events=16)
    box.start()
    for i in range(start, end):
        box.put(alert(f"e{i}", f"event {i}", "medium", when=1700000000.0 + i))
        print(i, flush=True)
    box.close(timeout=60)
    print("done", box.depth(), flush=True)
""")


@pytest.mark.slow
def test_no_loss_across_kill_9(tmp_path):
    """A real process puts events through the outbox to a file sink and is killed with SIGKILL
    three times mid-stream; each restart resumes after the last event it confirmed putting (so
    the one in flight may be put twice, as a monitor replaying from its checkpoint would)."""
    n, box, out = 3000, tmp_path / "box.db", tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = 0
    for kill_at in (400, 1200, 2100):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(box), str(out), str(start), str(n)],
                             stdout=subprocess.PIPE, text=True, env=env)
        last = start - 1
        for line in p.stdout:
            last = int(line)
            if last >= kill_at and out.exists() and out.stat().st_size:
                break
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
        assert p.returncode == -signal.SIGKILL
        start = last + 1
    done = subprocess.run([sys.executable, "-c", WRITER, str(box), str(out), str(start), str(n)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "done 0"
    ids = [d["event"]["id"] for d in lines(out)]          # every line whole: json.loads each
    first = list(dict.fromkeys(ids))
    assert first == [event_id("alert", f"e{i}") for i in range(n)]
    assert len(ids) - len(first) < 3 * 20                  # repeats: at most a batch in flight per kill
