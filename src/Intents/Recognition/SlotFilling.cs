using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Tagging;

namespace EdgeSlm.Intents.Recognition;

/// <summary>
/// The slots of an utterance the classifier decided: the spans the <see cref="SlotTagger"/> found, each with its
/// value from the intent's <see cref="SlotExtractor"/> (<see cref="SlotExtractor.ValueOf"/>), then what the extractor
/// finds on its own for slots the tagger never learned (none of the examples spelt them out), where no tagged
/// span lies. Without a tagger, the extractor alone.
/// </summary>
public static class SlotFilling
{
    public static IReadOnlyList<SlotValue> Fill(string text, IReadOnlyList<TaggedSpan> spans, SlotExtractor? extractor, SlotTagger? tagger)
    {
        if (tagger is null)
        {
            return extractor?.Extract(text) ?? [];
        }
        var slots = new List<SlotValue>(spans.Count);
        foreach (TaggedSpan span in spans)
        {
            slots.Add(extractor?.ValueOf(text, span.Slot, span.Start, span.End) ?? SlotValue.Spoken(text, span.Slot, text[span.Start..span.End], span.Start, span.End));
        }
        if (extractor is not null && extractor.Definitions.Any(d => !tagger.Knows(d.Slot)))
        {
            foreach (SlotValue found in extractor.Extract(text))
            {
                bool free = !slots.Any(s => s.Start < found.End && found.Start < s.End);
                if (!tagger.Knows(found.Slot) && free)
                {
                    slots.Add(found);
                }
            }
            slots.Sort((a, b) => a.Start.CompareTo(b.Start));
        }
        return slots;
    }
}
