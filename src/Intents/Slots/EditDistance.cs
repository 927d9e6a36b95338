namespace EdgeSlm.Intents.Slots;

/// <summary>Damerau-Levenshtein distance (optimal string alignment: insertions, deletions, substitutions, adjacent swaps).</summary>
internal static class EditDistance
{
    /// <summary>The distance, or <paramref name="limit"/> + 1 when it is larger than the limit (words only: at most 62 letters).</summary>
    public static int Within(ReadOnlySpan<char> a, ReadOnlySpan<char> b, int limit)
    {
        if (Math.Abs(a.Length - b.Length) > limit) return limit + 1;
        if (a.SequenceEqual(b)) return 0;
        if (b.Length > 62) return limit + 1;
        // Three rows of the table: two back for swaps, one back, and the current one.
        Span<int> rows = stackalloc int[3 * (b.Length + 1)];
        Span<int> before = rows[..(b.Length + 1)], previous = rows.Slice(b.Length + 1, b.Length + 1), current = rows[(2 * (b.Length + 1))..];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                int value = Math.Min(Math.Min(previous[j] + 1, current[j - 1] + 1), previous[j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    value = Math.Min(value, before[j - 2] + 1);
                }
                current[j] = value;
            }
            Span<int> recycled = before;
            before = previous;
            previous = current;
            current = recycled;
        }
        return Math.Min(previous[b.Length], limit + 1);
    }
}
