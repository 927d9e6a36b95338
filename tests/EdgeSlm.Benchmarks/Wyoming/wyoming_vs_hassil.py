#!/usr/bin/env python3
"""Held-out Home Assistant sentences through EdgeSlm's Wyoming intent service and through hassil, on the same
templates and fixtures. Run by ../wyoming-vs-hassil.sh, which fetches python3-wyoming and python3-hassil and starts
the module; prints a Markdown table and writes every answer to --out (JSON lines).

Right means what Home Assistant would act on: the intent name, and the intent with every slot value (Home
Assistant's names: "Living Room", numbers as numbers), compared as whole dicts. An area or floor of the test
that the sentence does not name ("in here") is the satellite's, which Home Assistant fills from the device
itself; it is left out of the expected slots for both systems, and hassil gets it as its intent context. hassil is
called as Home Assistant's default agent calls it (recognize_best with best_slot_name="name"). Latency is one Wyoming request
as Home Assistant makes it (connect, transcript, answer), sequential, over loopback.
"""

import argparse
import asyncio
import json
import re
import statistics
import time
from pathlib import Path

import yaml
from hassil import Intents, recognize_best
from hassil.intents import TextSlotList
from wyoming.client import AsyncTcpClient
from wyoming.event import Event


def load_hassil(templates: Path):
    """The templates folder as Home Assistant's build hands it to hassil: the per-intent folders' files under
    intents.<Intent>.data, inferred_domain as the domain slot; the fixtures as the runtime lists."""
    merged = {"language": "en", "intents": {}, "lists": {}, "expansion_rules": {}, "skip_words": []}
    for file in sorted(templates.rglob("*.yaml")):
        if file.name.startswith("_fixtures") or file.name == "intents.yaml":
            continue
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        blocks = []
        if "intents" in doc:
            for name, body in doc["intents"].items():
                blocks += [(name, d) for d in body.get("data", [])]
        elif "data" in doc:
            blocks += [(file.parent.name, d) for d in doc["data"]]
        for name, data in blocks:
            if "inferred_domain" in data:
                data.setdefault("slots", {}).setdefault("domain", data.pop("inferred_domain"))
            merged["intents"].setdefault(name, {"data": []})["data"].append(data)
        merged["lists"].update(doc.get("lists", {}))
        merged["expansion_rules"].update(doc.get("expansion_rules", {}))
        merged["skip_words"] += doc.get("skip_words", [])
    # Templates that use an expansion rule the snapshot does not define (<percent>) are left out, as EdgeSlm
    # leaves them out (it logs "Template skipped"); hassil would refuse the whole set.
    for body in merged["intents"].values():
        for data in body["data"]:
            known = set(merged["expansion_rules"]) | set(data.get("expansion_rules", {}))
            data["sentences"] = [t for t in data["sentences"] if set(re.findall(r"<([^>]+)>", t)) <= known]
    intents = Intents.from_dict(merged)

    fixtures = yaml.safe_load((templates / "_fixtures.yaml").read_text(encoding="utf-8"))
    floors = {f["id"]: f["name"] for f in fixtures.get("floors", [])}
    areas = {a["id"]: a["name"] for a in fixtures.get("areas", [])}
    names = []
    for entity in fixtures.get("entities", []):
        context = {"domain": entity["id"].split(".")[0]}
        device_class = (entity.get("attributes") or {}).get("device_class")
        if device_class:
            context["device_class"] = device_class
        names.append((entity["name"], entity["name"], context))
    slot_lists = {
        "area": TextSlotList.from_tuples([(n, n) for n in areas.values()]),
        "floor": TextSlotList.from_tuples([(n, n) for n in floors.values()]),
        "name": TextSlotList.from_tuples(names),
    }
    return intents, slot_lists


def same_value(predicted, gold):
    if isinstance(gold, list):
        return any(same_value(predicted, g) for g in gold)
    if isinstance(gold, (int, float)) and not isinstance(gold, bool):
        try:
            return abs(float(predicted) - float(gold)) < 1e-9
        except (TypeError, ValueError):
            return False
    return predicted == gold


def same_slots(predicted, gold):
    return set(predicted) == set(gold) and all(same_value(predicted[k], gold[k]) for k in gold)


async def ask_wyoming(port, text):
    start = time.perf_counter()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Event(type="transcript", data={"text": text, "language": "en", "context": {"conversation_id": "bench"}}))
        event = await client.read_event()
    elapsed = (time.perf_counter() - start) * 1000
    if event.type == "intent":
        return event.data["name"], {e["name"]: e.get("value") for e in event.data.get("entities", [])}, elapsed
    return None, {}, elapsed


def percentile(values, p):
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dev", required=True, help="JSON lines: text, intent, slot_values")
    parser.add_argument("--out-of-scope", required=True, help="sentences that are no command, one a line")
    parser.add_argument("--templates", required=True)
    parser.add_argument("--module", action="append", required=True, metavar="NAME=PORT", help="a running module to ask, by its row name")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    rows = [json.loads(line) for line in Path(args.dev).read_text(encoding="utf-8").splitlines() if line.strip()]
    out_of_scope = [line.strip() for line in Path(args.out_of_scope).read_text(encoding="utf-8").splitlines() if line.strip()]
    intents, slot_lists = load_hassil(Path(args.templates))
    modules = {name: int(port) for name, port in (m.rsplit("=", 1) for m in args.module)}

    # Warm-up requests, not counted: a template match and paraphrases (the classifier's path), on each module.
    for text in ["turn on the lights", "could you please switch off the kitchen switch", "how warm is it in the garage", "dim the hall a little"]:
        for port in modules.values():
            await ask_wyoming(port, text)
    recognize_best("turn on the lights", intents, slot_lists=slot_lists, language="en", best_slot_name="name")

    names = list(modules) + ["hassil 3.0.1"]
    marks = {name: [] for name in names}
    rejected = {name: 0 for name in names}
    latency = {name: [] for name in names}

    async def answer(name, text, context):
        if name in modules:
            return await ask_wyoming(modules[name], text)
        start = time.perf_counter()
        result = recognize_best(text, intents, slot_lists=slot_lists, intent_context=context or None, language="en", best_slot_name="name")
        elapsed = (time.perf_counter() - start) * 1000
        slots = {k: e.value for k, e in result.entities.items() if not (k in context and e.value == context[k])} if result else {}
        return (result.intent.name if result else None), slots, elapsed

    with open(args.out, "w", encoding="utf-8") as out:
        for row in rows:
            text, gold_intent, gold_slots = row["text"], row["intent"], dict(row["slot_values"])
            # "in here", "this room": the test's context area (the satellite's), which Home Assistant itself fills
            # from the device when it handles the intent; no recognizer sees it in the text. hassil gets it as
            # Home Assistant gives it: as the intent context (and its copy in the slots is dropped).
            context = {}
            for key in ("area", "floor"):
                if isinstance(gold_slots.get(key), str) and gold_slots[key].lower() not in text.lower():
                    context[key] = gold_slots.pop(key)
            record = {"text": text, "intent": gold_intent, "slots": gold_slots}
            for name in names:
                intent, slots, ms = await answer(name, text, context)
                intent_right = intent == gold_intent
                all_right = intent_right and same_slots(slots, gold_slots)
                marks[name].append((intent_right, all_right, intent is None))
                latency[name].append(ms)
                record[name] = {"intent": intent, "slots": slots, "intent_right": intent_right, "all_right": all_right, "ms": round(ms, 3)}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        for text in out_of_scope:
            record = {"text": text, "intent": None}
            for name in names:
                intent, slots, ms = await answer(name, text, {})
                rejected[name] += intent is None
                record[name] = {"intent": intent, "slots": slots, "ms": round(ms, 3)}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")

    n, m = len(rows), len(out_of_scope)
    print(f"{n} held-out Home Assistant sentences (every 5th line of ha_intents_en/train.jsonl, {len(intents.intents)} intents)"
          f" and {m} sentences that are no command (tests/EdgeSlm.Benchmarks/Wyoming/out-of-scope-dev.txt)\n")
    print("| system | intent right | intent and every slot right | commands not recognized | no-command sentences not recognized | latency p50 | latency p99 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        intent_right = sum(1 for mark in marks[name] if mark[0])
        all_right = sum(1 for mark in marks[name] if mark[1])
        none = sum(1 for mark in marks[name] if mark[2])
        p50, p99 = percentile(latency[name], 50), percentile(latency[name], 99)
        print(f"| {name} | {intent_right}/{n} ({100 * intent_right / n:.1f}%) | {all_right}/{n} ({100 * all_right / n:.1f}%) "
              f"| {none} | {rejected[name]}/{m} | {p50:.2f} ms | {p99:.2f} ms |")
    print("\nLatency: EdgeSlm rows per Wyoming request (connect, transcript, answer) over loopback; hassil in-process recognize_best.")


if __name__ == "__main__":
    asyncio.run(main())
