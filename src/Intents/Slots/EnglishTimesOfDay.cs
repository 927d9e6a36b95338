namespace EdgeSlm.Intents.Slots;

/// <summary>A time of day found in a text and the range it was spoken in.</summary>
public readonly record struct TimeOfDayMatch(TimeOnly Time, int Start, int End)
{
    /// <summary>24-hour "HH:mm".</summary>
    public string Text => Time.ToString("HH:mm", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>
/// Times of day in English: "6:30", "18:30", "half past six", "quarter to seven", "ten past five", "six thirty",
/// "seven pm", "7 a.m.", "ten o'clock", "noon", "midnight", "at 7", with "in the morning", "in the evening",
/// "at night" and so on. Without am/pm a 12-hour time is taken as morning ("half past six" is 06:30), as spoken.
/// </summary>
public static class EnglishTimesOfDay
{
    public static List<TimeOfDayMatch> Find(string text)
    {
        List<Word> words = Words.Split(text);
        var result = new List<TimeOfDayMatch>();
        for (int i = 0; i < words.Count;)
        {
            if (MatchAt(words, i, out int next) is TimeOfDayMatch match)
            {
                result.Add(match);
                i = next;
            }
            else
            {
                i++;
            }
        }
        return result;
    }

    internal static TimeOfDayMatch? MatchAt(List<Word> words, int i, out int next)
    {
        next = i;
        if (i >= words.Count) return null;
        int start = i;
        int hour, minute = 0, after;
        string w = words[i].Text;
        bool twelveHour = true;
        if (w is "noon" or "midday")
        {
            next = i + 1;
            return new TimeOfDayMatch(new TimeOnly(12, 0), words[i].Start, words[i].End);
        }
        if (w == "midnight")
        {
            next = i + 1;
            return new TimeOfDayMatch(new TimeOnly(0, 0), words[i].Start, words[i].End);
        }
        if (words[i].IsDigits && w.Contains(':'))
        {
            string[] parts = w.Split(':');
            if (parts.Length != 2 || parts[1].Length != 2 || !int.TryParse(parts[0], out hour) || !int.TryParse(parts[1], out minute)
                || hour > 23 || minute > 59)
            {
                return null;
            }
            twelveHour = hour is >= 1 and <= 12;
            after = i + 1;
        }
        else if (RelativeMinutes(words, i, out int minutes, out int hourWord))
        {
            // "half past six", "quarter to seven", "ten past five", "twenty minutes to eight".
            if (!TryHour(words, hourWord, out hour, out after)) return null;
            if (minutes < 0)
            {
                hour = (hour + 23) % 24;
                minute = 60 + minutes;
            }
            else
            {
                minute = minutes;
            }
        }
        else if (TryHour(words, i, out hour, out after))
        {
            bool bare = true;
            if (after < words.Count && words[after].Text is "o'clock" or "oclock")
            {
                after++;
                bare = false;
            }
            else if (after + 1 < words.Count && words[after].Text == "o" && words[after + 1].Text == "clock")
            {
                after += 2;
                bare = false;
            }
            else if (!words[i].IsDigits && MinutesWords(words, after, out int spokenMinutes, out int minutesAfter))
            {
                // "six thirty", "seven oh five".
                minute = spokenMinutes;
                after = minutesAfter;
                bare = false;
            }
            if (bare)
            {
                // A bare hour is a time only with am/pm, a part of the day, or "at" before it.
                bool marked = Meridiem(words, after, out _, out _) || (start > 0 && words[start - 1].Text == "at" && hour <= 24);
                if (!marked) return null;
            }
        }
        else
        {
            return null;
        }

        if (Meridiem(words, after, out bool pm, out int meridiemAfter))
        {
            if (!twelveHour) return null;
            hour = pm ? hour % 12 + 12 : hour % 12;
            after = meridiemAfter;
        }
        if (hour == 24) hour = 0;
        if (hour > 23) return null;
        next = after;
        return new TimeOfDayMatch(new TimeOnly(hour, minute), words[start].Start, words[after - 1].End);
    }

    /// <summary>An hour 0 to 24 in digits or words starting at word <paramref name="i"/>.</summary>
    private static bool TryHour(List<Word> words, int i, out int hour, out int after)
    {
        hour = -1;
        after = i;
        if (i >= words.Count) return false;
        if (words[i].Text is "noon" or "midday" or "midnight")
        {
            hour = words[i].Text == "midnight" ? 0 : 12;
            after = i + 1;
            return true;
        }
        if (words[i].IsDigits)
        {
            if (!int.TryParse(words[i].Text, out hour) || hour > 24) return false;
            after = i + 1;
            return true;
        }
        // Only the first word: "six thirty" is six and thirty, not thirty-six.
        var ends = new List<(int LastWord, double Value)>();
        EnglishNumbers.EndsAt(words, i, ends);
        foreach ((int last, double value) in ends)
        {
            if (last == i && value is >= 1 and <= 24 && value % 1 == 0)
            {
                hour = (int)value;
                after = i + 1;
                return true;
            }
        }
        return false;
    }

    /// <summary>"half past", "quarter to", "ten (minutes) past": minutes after (positive) or before (negative) the hour.</summary>
    private static bool RelativeMinutes(List<Word> words, int i, out int minutes, out int hourWord)
    {
        minutes = 0;
        hourWord = i;
        int k = i;
        if (words[k].Text == "a" && k + 1 < words.Count && words[k + 1].Text == "quarter") k++;
        if (words[k].Text == "half") minutes = 30;
        else if (words[k].Text == "quarter") minutes = 15;
        else
        {
            var ends = new List<(int LastWord, double Value)>();
            EnglishNumbers.EndsAt(words, k, ends);
            if (ends.Count == 0 || ends[^1].Value is < 1 or > 59 || ends[^1].Value % 1 != 0) return false;
            minutes = (int)ends[^1].Value;
            k = ends[^1].LastWord;
            if (k + 1 < words.Count && words[k + 1].Text is "minute" or "minutes") k++;
        }
        k++;
        if (k >= words.Count) return false;
        switch (words[k].Text)
        {
            case "past" or "after":
                break;
            case "to" or "till" or "til" or "before":
                if (minutes == 30) return false;
                minutes = -minutes;
                break;
            default:
                return false;
        }
        hourWord = k + 1;
        return true;
    }

    /// <summary>Spoken minutes after an hour: "thirty", "forty five", "oh five".</summary>
    private static bool MinutesWords(List<Word> words, int i, out int minutes, out int after)
    {
        minutes = 0;
        after = i;
        if (i >= words.Count || words[i].IsDigits) return false;
        int k = i;
        bool oh = words[k].Text == "oh";
        if (oh) k++;
        var ends = new List<(int LastWord, double Value)>();
        EnglishNumbers.EndsAt(words, k, ends);
        if (ends.Count == 0) return false;
        (int last, double value) = ends[^1];
        if (value % 1 != 0 || (oh ? value is < 1 or > 9 : value is < 10 or > 59)) return false;
        minutes = (int)value;
        after = last + 1;
        return true;
    }

    /// <summary>"am", "pm", "a.m.", "p m", "in the morning", "in the afternoon", "in the evening", "at night", "tonight".</summary>
    private static bool Meridiem(List<Word> words, int i, out bool pm, out int after)
    {
        pm = false;
        after = i;
        if (i >= words.Count) return false;
        string w = words[i].Text;
        string? next = i + 1 < words.Count ? words[i + 1].Text : null;
        string? third = i + 2 < words.Count ? words[i + 2].Text : null;
        if (w is "am" or "pm")
        {
            pm = w == "pm";
            after = i + 1;
            return true;
        }
        if (w is "a" or "p" && next == "m")
        {
            pm = w == "p";
            after = i + 2;
            return true;
        }
        if (w == "in" && next == "the" && third is "morning" or "afternoon" or "evening")
        {
            pm = third != "morning";
            after = i + 3;
            return true;
        }
        if ((w == "at" && next == "night") || w == "tonight")
        {
            pm = true;
            after = w == "tonight" ? i + 1 : i + 2;
            return true;
        }
        return false;
    }
}
