using System.Globalization;

namespace EdgeSlm.Intents.Slots;

/// <summary>A number found in a text: its value and the UTF-16 range (end exclusive) it was spoken in.</summary>
public readonly record struct NumberMatch(double Value, int Start, int End);

/// <summary>
/// English cardinal numbers in digits ("21", "3.5", "1,000") or words ("twenty one", "twenty-one", "one hundred and
/// five", "a hundred", "two point five", "two and a half"), and percentages ("50%", "fifty percent", "50 per cent").
/// Works on <see cref="Words"/>, so hyphens and punctuation between words do not matter.
/// </summary>
public static class EnglishNumbers
{
    private enum Last { None, Unit, Teen, Tens, Hundred, Scale }

    private static readonly Dictionary<string, int> Units = new(StringComparer.Ordinal)
    {
        ["one"] = 1, ["two"] = 2, ["three"] = 3, ["four"] = 4, ["five"] = 5, ["six"] = 6, ["seven"] = 7, ["eight"] = 8, ["nine"] = 9,
    };

    private static readonly Dictionary<string, int> Teens = new(StringComparer.Ordinal)
    {
        ["ten"] = 10, ["eleven"] = 11, ["twelve"] = 12, ["thirteen"] = 13, ["fourteen"] = 14, ["fifteen"] = 15,
        ["sixteen"] = 16, ["seventeen"] = 17, ["eighteen"] = 18, ["nineteen"] = 19,
    };

    private static readonly Dictionary<string, int> Tens = new(StringComparer.Ordinal)
    {
        ["twenty"] = 20, ["thirty"] = 30, ["forty"] = 40, ["fourty"] = 40, ["fifty"] = 50, ["sixty"] = 60, ["seventy"] = 70,
        ["eighty"] = 80, ["ninety"] = 90,
    };

    private static readonly Dictionary<string, long> Scales = new(StringComparer.Ordinal)
    {
        ["thousand"] = 1_000, ["million"] = 1_000_000, ["billion"] = 1_000_000_000,
    };

    /// <summary>True when the whole text (ignoring spaces and punctuation around it) is one number.</summary>
    public static bool TryParse(string text, out double value)
    {
        List<Word> words = Words.Split(text);
        var ends = new List<(int LastWord, double Value)>();
        EndsAt(words, 0, ends);
        foreach ((int last, double v) in ends)
        {
            if (last == words.Count - 1)
            {
                value = v;
                return true;
            }
        }
        value = 0;
        return false;
    }

    /// <summary>All numbers in a text, left to right, each as long as it can be ("twenty one" is 21, not 20 and 1).</summary>
    public static List<NumberMatch> FindNumbers(string text)
    {
        List<Word> words = Words.Split(text);
        var result = new List<NumberMatch>();
        var ends = new List<(int LastWord, double Value)>();
        for (int i = 0; i < words.Count;)
        {
            ends.Clear();
            EndsAt(words, i, ends);
            if (ends.Count == 0)
            {
                i++;
                continue;
            }
            (int last, double value) = ends[^1];
            result.Add(new NumberMatch(value, words[i].Start, words[last].End));
            i = last + 1;
        }
        return result;
    }

    /// <summary>Percentages: a number followed by '%', "percent", "per cent" or "pct". The range covers the sign or word.</summary>
    public static List<NumberMatch> FindPercentages(string text)
    {
        List<Word> words = Words.Split(text);
        var result = new List<NumberMatch>();
        var ends = new List<(int LastWord, double Value)>();
        for (int i = 0; i < words.Count;)
        {
            ends.Clear();
            EndsAt(words, i, ends);
            int next = i + 1;
            if (ends.Count > 0)
            {
                (int last, double value) = ends[^1];
                next = last + 1;
                int sign = PercentSignEnd(words, last + 1);
                if (sign >= 0)
                {
                    result.Add(new NumberMatch(value, words[i].Start, words[sign].End));
                    next = sign + 1;
                }
            }
            i = next;
        }
        return result;
    }

    /// <summary>The last word of a percent sign or word starting at word <paramref name="i"/>, or -1.</summary>
    internal static int PercentSignEnd(List<Word> words, int i)
    {
        if (i >= words.Count) return -1;
        return words[i].Text switch
        {
            "%" or "percent" or "pct" or "percents" => i,
            "per" when i + 1 < words.Count && words[i + 1].Text == "cent" => i + 1,
            _ => -1,
        };
    }

    internal static bool IsNumberWord(string word) =>
        Units.ContainsKey(word) || Teens.ContainsKey(word) || Tens.ContainsKey(word) || word is "zero" or "hundred" || Scales.ContainsKey(word);

    /// <summary>
    /// Every number that starts at word <paramref name="i"/>, by its last word, shortest first: "twenty one" gives
    /// (twenty, 20) and (one, 21). Callers that need a particular end (a template) choose among them.
    /// </summary>
    internal static void EndsAt(List<Word> words, int i, List<(int LastWord, double Value)> ends)
    {
        if (i >= words.Count) return;
        Word first = words[i];
        if (first.IsDigits)
        {
            if (first.Text.Contains(':') || !double.TryParse(first.Text.Replace(",", ""), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double digits))
            {
                return;
            }
            ends.Add((i, digits));
            if (i + 1 < words.Count && Scales.TryGetValue(words[i + 1].Text, out long scale))
            {
                ends.Add((i + 1, digits * scale));
            }
            else if (IsAndAHalf(words, i + 1))
            {
                ends.Add((i + 3, digits + 0.5));
            }
            return;
        }
        if (first.Text == "zero")
        {
            ends.Add((i, 0));
            AddDecimals(words, i + 1, 0, ends);
            return;
        }

        long total = 0, current = 0, lastScale = long.MaxValue;
        Last last = Last.None;
        int j = i;
        if (first.Text is "a" or "an" && i + 1 < words.Count && (words[i + 1].Text == "hundred" || Scales.ContainsKey(words[i + 1].Text)))
        {
            // "a hundred", "a thousand": the article stands for one.
            current = 1;
            last = Last.Unit;
            j++;
        }
        for (; j < words.Count; j++)
        {
            string w = words[j].Text;
            if (w == "and" && last is Last.Hundred or Last.Scale && j + 1 < words.Count
                && (Units.ContainsKey(words[j + 1].Text) || Teens.ContainsKey(words[j + 1].Text) || Tens.ContainsKey(words[j + 1].Text)))
            {
                continue;
            }
            if (Units.TryGetValue(w, out int unit) && last is Last.None or Last.Tens or Last.Hundred or Last.Scale)
            {
                current += unit;
                last = Last.Unit;
            }
            else if ((Teens.TryGetValue(w, out int value) || Tens.TryGetValue(w, out value)) && last is Last.None or Last.Hundred or Last.Scale)
            {
                current += value;
                last = value < 20 ? Last.Teen : Last.Tens;
            }
            else if (w == "hundred" && last is Last.Unit or Last.Teen or Last.Tens && current is > 0 and < 100)
            {
                current *= 100;
                last = Last.Hundred;
            }
            else if (Scales.TryGetValue(w, out long scale) && current > 0 && scale < lastScale)
            {
                total += current * scale;
                current = 0;
                lastScale = scale;
                last = Last.Scale;
            }
            else
            {
                break;
            }
            ends.Add((j, total + current));
        }
        if (last == Last.None) return;
        double whole = total + current;
        int after = j;
        if (IsAndAHalf(words, after))
        {
            ends.Add((after + 2, whole + 0.5));
        }
        else if (last is not Last.Scale and not Last.Hundred)
        {
            AddDecimals(words, after, whole, ends);
        }
    }

    /// <summary>"point five", "point two five": digits spoken one by one after the whole part.</summary>
    private static void AddDecimals(List<Word> words, int i, double whole, List<(int LastWord, double Value)> ends)
    {
        if (i >= words.Count || words[i].Text != "point") return;
        string digits = "";
        for (int j = i + 1; j < words.Count; j++)
        {
            int digit = words[j].Text == "zero" || words[j].Text == "oh" ? 0 : Units.GetValueOrDefault(words[j].Text, -1);
            if (digit < 0) break;
            digits += (char)('0' + digit);
            ends.Add((j, whole + double.Parse("0." + digits, CultureInfo.InvariantCulture)));
        }
    }

    private static bool IsAndAHalf(List<Word> words, int i) =>
        i + 2 < words.Count && words[i].Text == "and" && words[i + 1].Text is "a" && words[i + 2].Text == "half";
}
