using System.Globalization;
using System.Text;

namespace EdgeSlm.Intents.Slots;

public enum DurationUnit { Hours, Minutes, Seconds }

/// <summary>One "amount unit" part of a duration; Start and End are the range of the amount ("ten" in "ten minutes").</summary>
public readonly record struct DurationPart(DurationUnit Unit, double Amount, int Start, int End);

/// <summary>A duration found in a text, with the range of the whole phrase and of each part.</summary>
public sealed record DurationMatch(TimeSpan Duration, int Start, int End, IReadOnlyList<DurationPart> Parts)
{
    /// <summary>ISO 8601: PT10M, PT1H30M, PT1M30S, PT0S.</summary>
    public string Iso8601 => EnglishDurations.ToIso8601(Duration);
}

/// <summary>
/// Durations in English: "ten minutes", "1 hour and 30 minutes", "an hour and a half", "half an hour", "a quarter of
/// an hour", "90 seconds", "2h", "5 min". Parts must go from larger units to smaller ones.
/// </summary>
public static class EnglishDurations
{
    /// <summary>About 3,000 years: the longest duration read as one (TimeSpan ends near 29,000 years).</summary>
    private const double MaxSeconds = 1e11;

    public static List<DurationMatch> Find(string text)
    {
        List<Word> words = Words.Split(text);
        var result = new List<DurationMatch>();
        for (int i = 0; i < words.Count;)
        {
            DurationMatch? match = MatchAt(words, i, out int next);
            if (match is null)
            {
                i++;
                continue;
            }
            result.Add(match);
            i = next;
        }
        return result;
    }

    public static string ToIso8601(TimeSpan duration)
    {
        var iso = new StringBuilder("PT");
        long hours = (long)duration.TotalHours;
        if (hours > 0) iso.Append(hours).Append('H');
        if (duration.Minutes > 0) iso.Append(duration.Minutes).Append('M');
        double seconds = duration.TotalSeconds - Math.Floor(duration.TotalMinutes) * 60;
        if (seconds > 0 || iso.Length == 2) iso.Append(seconds.ToString(CultureInfo.InvariantCulture)).Append('S');
        return iso.ToString();
    }

    /// <summary>The longest duration starting at word <paramref name="i"/>; <paramref name="next"/> is the word after it.</summary>
    internal static DurationMatch? MatchAt(List<Word> words, int i, out int next)
    {
        next = i;
        var parts = new List<DurationPart>();
        int j = i;
        DurationUnit? previous = null;
        int end = -1;
        while (true)
        {
            int k = j;
            if (parts.Count > 0 && k < words.Count && words[k].Text == "and") k++;
            if (!TryPart(words, k, out DurationPart part, out int after) || (previous is DurationUnit p && part.Unit <= p))
            {
                break;
            }
            parts.Add(part);
            previous = part.Unit;
            end = words[after - 1].End;
            j = after;
        }
        if (parts.Count == 0) return null;
        double seconds = parts.Sum(p => p.Amount * (p.Unit switch { DurationUnit.Hours => 3600, DurationUnit.Minutes => 60, _ => 1 }));
        if (!(seconds <= MaxSeconds))
        {
            return null; // "99999999999999 hours" is no timer, and beyond TimeSpan's range
        }
        next = j;
        return new DurationMatch(TimeSpan.FromSeconds(seconds), words[i].Start, end, parts);
    }

    /// <summary>One part: "ten minutes", "an hour", "half an hour", "a quarter of an hour", "an hour and a half", "2h".</summary>
    private static bool TryPart(List<Word> words, int i, out DurationPart part, out int after)
    {
        part = default;
        after = i;
        if (i >= words.Count) return false;
        Word first = words[i];
        double amount;
        int unitWord;
        if (first.Text is "half" or "quarter" || (first.Text is "a" && i + 1 < words.Count && words[i + 1].Text is "half" or "quarter"))
        {
            // "half an hour", "a half hour", "quarter of an hour", "a quarter hour".
            int k = first.Text == "a" ? i + 1 : i;
            amount = words[k].Text == "half" ? 0.5 : 0.25;
            k++;
            if (k < words.Count && words[k].Text == "of") k++;
            if (k < words.Count && words[k].Text is "a" or "an") k++;
            unitWord = k;
        }
        else if (first.Text is "a" or "an")
        {
            amount = 1;
            unitWord = i + 1;
        }
        else
        {
            var ends = new List<(int LastWord, double Value)>();
            EnglishNumbers.EndsAt(words, i, ends);
            // The longest number that a unit follows ("twenty one minutes", not "twenty").
            int found = -1;
            for (int e = ends.Count - 1; e >= 0 && found < 0; e--)
            {
                if (UnitOf(words, ends[e].LastWord + 1, ends[e].LastWord) is not null) found = e;
            }
            if (found < 0) return false;
            amount = ends[found].Value;
            unitWord = ends[found].LastWord + 1;
        }
        if (UnitOf(words, unitWord, unitWord - 1) is not DurationUnit unit) return false;
        part = new DurationPart(unit, amount, first.Start, words[unitWord - 1].End);
        after = AfterHalf(words, unitWord + 1, ref part);
        return true;
    }

    /// <summary>"an hour and a half": a trailing half of the part's unit.</summary>
    private static int AfterHalf(List<Word> words, int i, ref DurationPart part)
    {
        if (i + 2 < words.Count && words[i].Text == "and" && words[i + 1].Text == "a" && words[i + 2].Text == "half" && part.Amount % 1 == 0)
        {
            part = part with { Amount = part.Amount + 0.5 };
            return i + 3;
        }
        return i;
    }

    /// <summary>
    /// The unit named by word <paramref name="i"/>. One-letter units ("2h", "5m", "30s") count only when written
    /// against the number (<paramref name="numberWord"/>), where they cannot be an article or a letter.
    /// </summary>
    private static DurationUnit? UnitOf(List<Word> words, int i, int numberWord)
    {
        if (i >= words.Count) return null;
        string w = words[i].Text;
        bool attached = numberWord >= 0 && words[numberWord].End == words[i].Start && words[numberWord].IsDigits;
        return w switch
        {
            "hour" or "hours" or "hr" or "hrs" => DurationUnit.Hours,
            "minute" or "minutes" or "min" or "mins" => DurationUnit.Minutes,
            "second" or "seconds" or "sec" or "secs" => DurationUnit.Seconds,
            "h" when attached => DurationUnit.Hours,
            "m" when attached => DurationUnit.Minutes,
            "s" when attached => DurationUnit.Seconds,
            _ => null,
        };
    }
}
