using EdgeSlm.Intents.Examples;

namespace EdgeSlm.Intents.Tagging;

/// <summary>A slot found by the tagger: its name and UTF-16 range [Start, End) of the text.</summary>
public readonly record struct TaggedSpan(string Slot, int Start, int End);

/// <summary>
/// The BIO tags of a set of slots: tag 0 is O (outside every slot), slot s has B (begins it) at 1 + 2s and I
/// (inside it) at 2 + 2s. Word pieces are tagged from character spans and spans read back from tags; an I may only
/// follow the B or I of its own slot (<see cref="CanFollow"/>, <see cref="CanStart"/>).
/// </summary>
public sealed class SlotTags
{
    public const int Outside = 0;

    public SlotTags(IReadOnlyList<string> slots)
    {
        Slots = slots.ToArray();
        if (Slots.Distinct(StringComparer.Ordinal).Count() != Slots.Count)
        {
            throw new ArgumentException("slot names must differ", nameof(slots));
        }
        Index = Slots.Select((s, i) => (s, i)).ToDictionary(p => p.s, p => p.i, StringComparer.Ordinal);
    }

    public IReadOnlyList<string> Slots { get; }
    public IReadOnlyDictionary<string, int> Index { get; }
    public int Count => 1 + 2 * Slots.Count;

    public static int Begin(int slot) => 1 + 2 * slot;
    public static int Inside(int slot) => 2 + 2 * slot;
    /// <summary>The slot of a B or I tag; -1 for O.</summary>
    public static int SlotOf(int tag) => tag == Outside ? -1 : (tag - 1) / 2;
    public static bool IsInside(int tag) => tag != Outside && (tag - 1) % 2 == 1;

    /// <summary>Whether tag <paramref name="next"/> may follow tag <paramref name="previous"/>: an I only after its own slot's B or I.</summary>
    public static bool CanFollow(int previous, int next) => !IsInside(next) || SlotOf(previous) == SlotOf(next);

    /// <summary>Whether a sentence may start with <paramref name="tag"/>: anything but an I.</summary>
    public static bool CanStart(int tag) => !IsInside(tag);

    /// <summary>
    /// Tags pieces whose ranges are [starts[i], ends[i]) (empty ranges, [CLS] and [SEP], are O): a piece that
    /// overlaps a span is B when it is the span's first such piece, else I. Spans of slots not in this set are
    /// left O.
    /// </summary>
    public void Label(IReadOnlyList<SlotSpan> spans, ReadOnlySpan<int> starts, ReadOnlySpan<int> ends, Span<int> tags)
    {
        tags.Clear();
        foreach (SlotSpan span in spans)
        {
            if (!Index.TryGetValue(span.Slot, out int slot) || span.End <= span.Start)
            {
                continue;
            }
            bool begun = false;
            for (int i = 0; i < starts.Length; i++)
            {
                if (ends[i] > starts[i] && starts[i] < span.End && ends[i] > span.Start && tags[i] == Outside)
                {
                    tags[i] = begun ? Inside(slot) : Begin(slot);
                    begun = true;
                }
            }
        }
    }

    /// <summary>
    /// The spans of <paramref name="tags"/> over pieces [starts[i], ends[i]): a B and the I's of its slot after it,
    /// from the first piece's start to the last one's end, widened to whole words of <paramref name="text"/> (a
    /// span never ends inside a run of letters or of digits). An I without its B starts a span too.
    /// </summary>
    public void Spans(string text, ReadOnlySpan<int> tags, ReadOnlySpan<int> starts, ReadOnlySpan<int> ends, List<TaggedSpan> spans)
    {
        int open = -1, first = 0, last = 0;
        for (int i = 0; i <= tags.Length; i++)
        {
            int tag = i < tags.Length ? tags[i] : Outside;
            bool continues = open >= 0 && IsInside(tag) && SlotOf(tag) == open;
            if (continues)
            {
                last = i;
                continue;
            }
            if (open >= 0)
            {
                spans.Add(new TaggedSpan(Slots[open], WordStart(text, starts[first]), WordEnd(text, ends[last])));
                open = -1;
            }
            if (tag != Outside)
            {
                (open, first, last) = (SlotOf(tag), i, i);
            }
        }
    }

    private static bool SameRun(char a, char b) => (char.IsLetter(a) && char.IsLetter(b)) || (char.IsAsciiDigit(a) && char.IsAsciiDigit(b));

    private static int WordStart(string text, int start)
    {
        while (start > 0 && start < text.Length && SameRun(text[start - 1], text[start])) start--;
        return start;
    }

    private static int WordEnd(string text, int end)
    {
        while (end > 0 && end < text.Length && SameRun(text[end - 1], text[end])) end++;
        return end;
    }
}
