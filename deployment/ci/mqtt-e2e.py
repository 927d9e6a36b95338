#!/usr/bin/env python3
"""End-to-end check of `edgeslm run` through a real mosquitto broker, as CI runs it (.ci/run).

    mqtt-e2e.py run --out RESULT.json --log-dir DIR [--site ci] [--timeout-start S] [--timeout-answer S] -- COMMAND...
    mqtt-e2e.py compare REFERENCE.json CANDIDATE.json [--tolerance 0.02]

`run` starts mosquitto on a free loopback port with a generated configuration, then COMMAND with
`--broker mqtt://127.0.0.1:PORT --site SITE` appended (COMMAND is e.g. `qemu-aarch64-static -cpu cortex-a72
out/edgeslm run --model out/models/minilm-q4_0.gguf`). It waits for the retained `edgeslm/SITE/status` to say
`online`, sends the sentences below one at a time as Hermes queries on `hermes/nlu/query` and waits for each
answer on `hermes/intent/<name>`, `hermes/nlu/intentNotRecognized` or the error topic. It then stops the module
with SIGTERM and expects the retained status to turn `offline`. RESULT.json holds the answers and the timings.
Exit status: 0 when every sentence was answered and the module stopped cleanly, 1 otherwise.

`compare` holds CANDIDATE (an emulated arm64 board) to REFERENCE (x64): the same intent for every sentence,
confidences within the tolerance, the same slots. It prints one line per sentence.

The MQTT side uses Debian's mosquitto_sub and mosquitto_pub (package mosquitto-clients); there is no Python
MQTT library on the CI machine.
"""

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# Requests for the sample home intents (deployment/intents/home.yaml): four that its templates match exactly
# (slots from the template), four that only the classifier on the embeddings answers, and one it has no intent for.
SENTENCES = [
    "turn on the kitchen lights",
    "set a timer for ten minutes",
    "what's the weather like tomorrow",
    "dim the living room lights to 30 percent",
    "will I need an umbrella this afternoon",
    "start a countdown for five minutes",
    "stop the music for a moment",
    "how warm is it inside",
    "could you make me a sandwich",
]

QUERY_TOPIC = "hermes/nlu/query"
ANSWER_TOPICS = ["hermes/intent/#", "hermes/nlu/intentNotRecognized", "hermes/error/nlu"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class Subscriber:
    """mosquitto_sub -v on the given topics; every message goes to a queue as (topic, payload, monotonic time)."""

    def __init__(self, port, topics, log_path):
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-v", "-i", f"ci-e2e-{os.getpid()}"]
        for topic in topics:
            args += ["-t", topic]
        self.messages = queue.Queue()
        self._log = open(log_path, "w", encoding="utf-8")
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self._process.stdout:
            topic, _, payload = line.rstrip("\n").partition(" ")
            self._log.write(line)
            self._log.flush()
            self.messages.put((topic, payload, time.monotonic()))

    def next(self, deadline):
        """The next message, or None once the deadline has passed."""
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return None
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._log.close()


def publish(port, topic, payload, retain=False):
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-m", payload]
    if retain:
        args.append("-r")
    subprocess.run(args, check=True, timeout=30, stdin=subprocess.DEVNULL)


def start_broker(port, work):
    # Nothing is written to disk (no persistence, log to stderr), so it does not matter that mosquitto started
    # as root switches to the 'mosquitto' user; `user` is still set so a machine without that user works too.
    conf = os.path.join(work, "mosquitto.conf")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
                "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
        if os.geteuid() == 0:
            f.write("user root\n")
    log = open(os.path.join(work, "mosquitto.log"), "w", encoding="utf-8")
    return subprocess.Popen(["mosquitto", "-c", conf], stdout=log, stderr=log, stdin=subprocess.DEVNULL)


def stop(process, timeout):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
    return process.returncode


def tail(path, lines=25):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def slots_of(answer):
    """The parts of each slot that must match across machines: name, raw text and value."""
    return [{"slotName": s.get("slotName"), "rawValue": s.get("rawValue"), "value": s.get("value")}
            for s in answer.get("slots") or []]


def run(options):
    os.makedirs(options.log_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="edgeslm-e2e-")
    port = free_port()
    site = options.site
    result = {"command": options.command, "site": site, "answers": [], "problems": []}
    broker = start_broker(port, work)
    subscriber = module = None
    module_log = os.path.join(options.log_dir, "module.log")
    try:
        if not wait_for_port(port, time.monotonic() + 30):
            result["problems"].append("mosquitto did not start: " + tail(os.path.join(work, "mosquitto.log")))
            return result
        status_topic = f"edgeslm/{site}/status"
        subscriber = Subscriber(port, [status_topic, f"edgeslm/{site}/intents/status", "ci/ready"] + ANSWER_TOPICS,
                                os.path.join(options.log_dir, "messages.log"))
        # Subscribed once our own marker comes back (mosquitto_sub gives no other sign).
        deadline = time.monotonic() + 30
        m = None
        while m is None and time.monotonic() < deadline:
            publish(port, "ci/ready", "1")
            while (m := subscriber.next(min(deadline, time.monotonic() + 0.5))) is not None and m[0] != "ci/ready":
                pass
        if m is None:
            result["problems"].append("mosquitto_sub did not subscribe")
            return result

        command = options.command + ["--broker", f"mqtt://127.0.0.1:{port}", "--site", site]
        with open(module_log, "w", encoding="utf-8") as log:
            started = time.monotonic()
            module = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = started + options.timeout_start
        online = None
        while online is None:
            m = subscriber.next(min(deadline, time.monotonic() + 1))
            if m is not None and m[0] == status_topic and m[1] == "online":
                online = m[2]
            elif module.poll() is not None:
                result["problems"].append(f"the module exited ({module.returncode}) before it was online:\n" + tail(module_log))
                return result
            elif time.monotonic() >= deadline:
                result["problems"].append(f"no retained '{status_topic}' = online after {options.timeout_start} s:\n" + tail(module_log))
                return result
        result["start_seconds"] = round(online - started, 1)

        for i, sentence in enumerate(SENTENCES, 1):
            query_id = f"{site}-{i}"
            sent = time.monotonic()
            publish(port, QUERY_TOPIC, json.dumps({"input": sentence, "siteId": site, "id": query_id, "sessionId": f"{site}-session"}))
            deadline = sent + options.timeout_answer
            answer = None
            while answer is None and (m := subscriber.next(deadline)) is not None:
                topic, payload, at = m
                if not any(topic == t or (t.endswith("/#") and topic.startswith(t[:-1])) for t in ANSWER_TOPICS):
                    continue
                try:
                    body = json.loads(payload)
                except ValueError:
                    continue
                if body.get("id") == query_id:
                    answer = (topic, body, at)
            if answer is None:
                result["problems"].append(f"no answer to '{sentence}' after {options.timeout_answer} s")
                result["answers"].append({"id": query_id, "input": sentence, "topic": None})
                continue
            topic, body, at = answer
            intent = (body.get("intent") or {}).get("intentName") if topic.startswith("hermes/intent/") else None
            confidence = (body.get("intent") or {}).get("confidenceScore") if intent else body.get("confidenceScore")
            if topic == "hermes/error/nlu":
                result["problems"].append(f"'{sentence}' was answered with an error: {body.get('error')}")
            result["answers"].append({"id": query_id, "input": sentence, "topic": topic, "intent": intent,
                                      "confidence": confidence, "slots": slots_of(body), "seconds": round(at - sent, 2)})

        # A clean stop publishes the retained offline status (the last will covers a crash).
        stopping = time.monotonic()
        code = stop(module, 120)
        result["stop_seconds"] = round(time.monotonic() - stopping, 1)
        result["exit_code"] = code
        if code != 0:
            result["problems"].append(f"the module exited with {code} after SIGTERM:\n" + tail(module_log))
        deadline = time.monotonic() + 15
        while (m := subscriber.next(deadline)) is not None and not (m[0] == status_topic and m[1] == "offline"):
            pass
        if m is None:
            result["problems"].append(f"'{status_topic}' did not turn offline after the module stopped")
        return result
    finally:
        if module is not None:
            stop(module, 30)
        if subscriber is not None:
            subscriber.close()
        stop(broker, 10)
        with open(os.path.join(options.log_dir, "mosquitto.log"), "w", encoding="utf-8") as f:
            f.write(tail(os.path.join(work, "mosquitto.log"), 200))
        with open(options.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


def describe(answer):
    if not answer.get("topic"):
        return "no answer"
    intent = answer.get("intent") or "(not recognized)"
    slots = ", ".join(f"{s['slotName']}={json.dumps(s['value'])}" for s in answer.get("slots") or [])
    return f"{intent} {answer.get('confidence')}" + (f" [{slots}]" if slots else "")


def compare(options):
    with open(options.reference, encoding="utf-8") as f:
        reference = json.load(f)
    with open(options.candidate, encoding="utf-8") as f:
        candidate = json.load(f)
    ref, cand = reference["answers"], candidate["answers"]
    ok = len(ref) == len(cand) == len(SENTENCES)
    if not ok:
        print(f"{len(ref)} reference answers, {len(cand)} candidate answers, {len(SENTENCES)} sentences")
    for a, b in zip(ref, cand):
        same = (a.get("topic") is not None and a.get("topic") == b.get("topic") and a.get("intent") == b.get("intent")
                and a.get("slots") == b.get("slots") and a.get("confidence") is not None and b.get("confidence") is not None
                and abs(a["confidence"] - b["confidence"]) <= options.tolerance)
        ok &= same
        print(f"  {'same' if same else 'DIFFERENT':9} {a['input']!r}: {describe(b)}" + ("" if same else f"; x64: {describe(a)}"))
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="what", required=True)
    r = commands.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--log-dir", required=True)
    r.add_argument("--site", default="ci")
    r.add_argument("--timeout-start", type=float, default=900)
    r.add_argument("--timeout-answer", type=float, default=300)
    r.add_argument("command", nargs=argparse.REMAINDER)
    c = commands.add_parser("compare")
    c.add_argument("reference")
    c.add_argument("candidate")
    c.add_argument("--tolerance", type=float, default=0.02)
    options = parser.parse_args()
    if options.what == "compare":
        return compare(options)
    if options.command[:1] == ["--"]:
        options.command = options.command[1:]
    if not options.command:
        parser.error("run: no module command after --")
    result = run(options)
    for answer in result["answers"]:
        print(f"  {answer['input']!r}: {describe(answer)}" + (f" in {answer['seconds']} s" if answer.get("seconds") is not None else ""))
    if "start_seconds" in result:
        print(f"  online {result['start_seconds']} s after start; stopped in {result.get('stop_seconds', '?')} s")
    for problem in result["problems"]:
        print("  problem: " + problem.rstrip())
    return 0 if not result["problems"] and len(result["answers"]) == len(SENTENCES) else 1


if __name__ == "__main__":
    sys.exit(main())
