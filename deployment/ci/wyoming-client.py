#!/usr/bin/env python3
"""Drives EdgeSlm's Wyoming intent service with the reference implementation's own client (python3-wyoming).

    PYTHONPATH=<python3-wyoming>/usr/lib/python3/dist-packages python3 wyoming-client.py --port PORT

The module must be running with the wyoming profile on Home Assistant's English templates and fixtures
(tests/data/ha_intents_en/templates) and deployment/homeassistant/out-of-scope.jsonl (none of the sentences
below is in it). Prints one "check passed: ..." or "check FAILED: ..." line per case and
"wyoming: N passed, N failed" last; exits non-zero when a check failed. .ci/wyoming.sh runs it.
"""

import argparse
import asyncio
import json
import sys

from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import Describe, Info
from wyoming.intent import Intent, NotRecognized, Recognize

TIMEOUT = 30.0
CONTEXT = {"conversation_id": "01JCI0000000000000000000", "device_id": "ci-device", "satellite_id": "ci-satellite"}

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"check passed: {name}" + (f" ({detail})" if detail else ""))
    else:
        failed += 1
        print(f"check FAILED: {name}" + (f" ({detail})" if detail else ""))


async def request(host, port, event):
    """One request on its own connection, as Home Assistant does: the first event that comes back."""
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(event)
        return await asyncio.wait_for(client.read_event(), TIMEOUT)


async def raw(host, port, data, read=True):
    """Sends bytes as they are; returns the event that comes back (read with the reference's reader) or None."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        if not read:
            return None
        return await asyncio.wait_for(async_read_event(reader), TIMEOUT)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def transcript(text, context):
    """A transcript as Home Assistant sends it. Built by hand because python3-wyoming 1.6.2's Transcript.event()
    leaves out the context, which later versions (the one Home Assistant ships) send."""
    return Event(type="transcript", data={"text": text, "language": "en", "context": context})


def entities_of(intent):
    return {e.name: e.value for e in intent.entities}


async def describe_works(host, port):
    event = await request(host, port, Describe().event())
    return event is not None and Info.is_type(event.type)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=24)
    args = parser.parse_args()
    host, port = args.host, args.port

    async def case(name, body):
        try:
            await body()
        except Exception as e:  # a broken case is a failed check, and the others still run
            check(name, False, f"{type(e).__name__}: {e}")

    # describe -> info, parsed by the reference's own Info class
    async def describe():
        event = await request(host, port, Describe().event())
        info = Info.from_event(event)
        programs = [p for p in info.intent if p.installed]
        languages = sorted({lang for p in programs for m in p.models if m.installed for lang in m.languages})
        check("describe -> info with one installed intent program and its model's languages",
              Info.is_type(event.type) and len(info.intent) == 1 and len(programs) == 1 and "en" in languages
              and programs[0].attribution.name != "" and programs[0].version,
              f"program {programs[0].name if programs else None}, version {programs[0].version if programs else None}, languages {languages}")
    await case("describe -> info", describe)

    # transcript (what Home Assistant sends) -> intent with Home Assistant's names and the context echoed
    async def transcript_intent():
        event = await request(host, port, transcript("turn on the living room lights", CONTEXT))
        ok = Intent.is_type(event.type)
        intent = Intent.from_event(event) if ok else None
        values = entities_of(intent) if intent else {}
        check("transcript 'turn on the living room lights' -> intent HassTurnOn, area 'Living Room', domain 'light', context echoed",
              ok and intent.name == "HassTurnOn" and values.get("area") == "Living Room" and values.get("domain") == "light"
              and intent.context == CONTEXT, f"{event.type} {event.data}")
    await case("transcript -> intent", transcript_intent)

    # numbers as numbers
    async def number():
        event = await request(host, port, transcript("set the bedroom lamp brightness to 50%", CONTEXT))
        intent = Intent.from_event(event) if Intent.is_type(event.type) else None
        values = entities_of(intent) if intent else {}
        check("transcript 'set the bedroom lamp brightness to 50%' -> HassLightSet, name 'Bedroom Lamp', brightness the number 50",
              intent is not None and intent.name == "HassLightSet" and values.get("name") == "Bedroom Lamp"
              and values.get("brightness") == 50 and not isinstance(values.get("brightness"), str), f"{event.type} {event.data}")
    await case("numbers", number)

    # a paraphrase no template spells out: the classifier's answer, with the slot as Home Assistant names it
    async def paraphrase():
        event = await request(host, port, transcript("i'd like the kitchen switch turned off", CONTEXT))
        intent = Intent.from_event(event) if Intent.is_type(event.type) else None
        values = entities_of(intent) if intent else {}
        check("paraphrase 'i'd like the kitchen switch turned off' (no template) -> HassTurnOff, name 'Kitchen Switch'",
              intent is not None and intent.name == "HassTurnOff" and values.get("name") == "Kitchen Switch", f"{event.type} {event.data}")
    await case("paraphrase", paraphrase)

    # not-recognized: its text is what Home Assistant says, the context is echoed
    async def not_recognized():
        event = await request(host, port, transcript("which team is playing tonight", CONTEXT))
        ok = NotRecognized.is_type(event.type)
        answer = NotRecognized.from_event(event) if ok else None
        check("transcript outside every intent -> not-recognized with a text to say and the context echoed",
              ok and bool(answer.text) and answer.context == CONTEXT, f"{event.type} {event.data}")
    await case("not-recognized", not_recognized)

    # recognize (the older request) -> intent
    async def recognize():
        event = await request(host, port, Recognize(text="what time is it", context={"conversation_id": "c2"}).event())
        intent = Intent.from_event(event) if Intent.is_type(event.type) else None
        check("recognize 'what time is it' -> intent HassGetCurrentTime, context echoed",
              intent is not None and intent.name == "HassGetCurrentTime" and intent.context == {"conversation_id": "c2"}, f"{event.type} {event.data}")
    await case("recognize", recognize)

    # data inside the header instead of after it; version in the answer's header
    async def data_in_header():
        header = {"type": "transcript", "data": {"text": "turn off the kitchen switch", "context": {"n": 1}}}
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(json.dumps(header).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        answer_header = json.loads(line)
        data = json.loads(await reader.readexactly(answer_header["data_length"]))
        writer.close()
        check("data inside the header line is read; the answer's header carries version and data_length",
              answer_header.get("type") == "intent" and data.get("name") == "HassTurnOff" and data.get("context") == {"n": 1}
              and isinstance(answer_header.get("version"), str), f"{answer_header} {data}")
    await case("data in header", data_in_header)

    # many connections at once, each its own request
    async def many():
        sentences = ["turn on the living room lights", "turn off the kitchen switch", "what time is it", "what is the date"]
        expected = ["HassTurnOn", "HassTurnOff", "HassGetCurrentTime", "HassGetCurrentDate"]
        events = await asyncio.gather(*(request(host, port, transcript(sentences[i % 4], {"i": i}))
                                        for i in range(args.connections)))
        good = sum(1 for i, e in enumerate(events) if e is not None and Intent.is_type(e.type)
                   and Intent.from_event(e).name == expected[i % 4] and Intent.from_event(e).context == {"i": i})
        check(f"{args.connections} connections at once each get their own answer", good == args.connections, f"{good} right")
    await case("many connections", many)

    # a malformed header: an error event, then the connection closes; the module goes on
    async def malformed():
        event = await raw(host, port, b"this is not json\n")
        error = Error.from_event(event) if event is not None and Error.is_type(event.type) else None
        check("a malformed header line -> error event (code header-invalid), and the module still answers",
              error is not None and error.code == "header-invalid" and await describe_works(host, port), f"{event}")
    await case("malformed header", malformed)

    # data_length over the limit: refused before anything is read
    async def oversized():
        event = await raw(host, port, json.dumps({"type": "transcript", "data_length": 1 << 30}).encode() + b"\n")
        error = Error.from_event(event) if event is not None and Error.is_type(event.type) else None
        check("data_length of 1 GiB -> error event (code data-too-long), and the module still answers",
              error is not None and error.code == "data-too-long" and await describe_works(host, port), f"{event}")
    await case("oversized data_length", oversized)

    # a client that disconnects in the middle of an event
    async def disconnect():
        for _ in range(5):
            await raw(host, port, json.dumps({"type": "transcript", "data_length": 200}).encode() + b"\n{\"text\": \"turn on", read=False)
        check("5 clients that disconnect inside an event: the module still answers", await describe_works(host, port))
    await case("disconnect mid-event", disconnect)

    print(f"wyoming: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
