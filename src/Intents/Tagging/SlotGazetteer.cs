using System.Buffers;

namespace EdgeSlm.Intents.Tagging;

/// <summary>
/// The phrases each slot was said as in the training examples (and, through template expansion, the lists'
/// values): a feature per slot that marks the word pieces inside a phrase of that slot, so a value seen in training
/// is found again where the words around it are new. Phrases are whole words of the text, lower case, matched on
/// the text as written (up to <see cref="MaxWords"/> words). Immutable; matching allocates nothing.
/// </summary>
public sealed class SlotGazetteer
{
    public const int MaxWords = 8;
    public const int MaxPhraseLength = 128;

    private readonly Dictionary<string, int[]> _phrases;
    private readonly Dictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    public SlotGazetteer(IReadOnlyDictionary<string, int[]> phrases)
    {
        _phrases = phrases.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        _lookup = _phrases.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Phrase → the slots (indices) it was a value of.</summary>
    public IReadOnlyDictionary<string, int[]> Phrases => _phrases;

    /// <summary>The phrase a span of text is looked up as: lower case, as written.</summary>
    public static string Key(string text, int start, int end) => text[start..end].ToLowerInvariant();

    /// <summary>
    /// Sets feature <c>offset + slot</c> of row t (stride <paramref name="stride"/>) to 1 for each piece t of
    /// [starts[t], ends[t]) that lies inside a phrase of that slot in <paramref name="text"/>.
    /// </summary>
    public void Mark(string text, ReadOnlySpan<int> starts, ReadOnlySpan<int> ends, Span<float> rows, int stride, int offset)
    {
        if (_phrases.Count == 0 || text.Length == 0) return;
        char[] lower = ArrayPool<char>.Shared.Rent(text.Length);
        int[] words = ArrayPool<int>.Shared.Rent(2 * text.Length + 2);
        try
        {
            int count = 0;
            for (int i = 0; i < text.Length; i++)
            {
                char c = text[i];
                lower[i] = char.ToLowerInvariant(c);
                bool inWord = char.IsLetterOrDigit(c);
                bool startsWord = inWord && (i == 0 || !char.IsLetterOrDigit(text[i - 1]));
                bool endsWord = inWord && (i + 1 == text.Length || !char.IsLetterOrDigit(text[i + 1]));
                if (startsWord) words[2 * count] = i;
                if (endsWord) words[2 * count++ + 1] = i + 1;
            }
            for (int w = 0; w < count; w++)
            {
                for (int last = w; last < count && last < w + MaxWords; last++)
                {
                    int start = words[2 * w], end = words[2 * last + 1];
                    if (end - start > MaxPhraseLength) break;
                    if (!_lookup.TryGetValue(lower.AsSpan(start, end - start), out int[]? slots)) continue;
                    for (int t = 0; t < starts.Length; t++)
                    {
                        if (starts[t] >= start && ends[t] <= end && ends[t] > starts[t])
                        {
                            foreach (int slot in slots) rows[t * stride + offset + slot] = 1;
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(lower);
            ArrayPool<int>.Shared.Return(words);
        }
    }
}
