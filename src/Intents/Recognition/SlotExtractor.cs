using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Templates;

namespace EdgeSlm.Intents.Recognition;

/// <summary>A slot of an intent and the list its values come from (a slot may have several lists, one definition each).</summary>
public sealed record SlotDefinition(string Slot, SlotList List);

/// <summary>
/// Finds an intent's slots in free text, for utterances no template matches exactly (the classifier's path).
/// <list type="bullet">
/// <item>List values match on word boundaries, case-insensitively, and tolerate small speech-recognition errors: per
/// word, one edit (substitution, insertion, deletion or swap of neighbours) for words of 4 to 7 letters, two from 8
/// letters, none below 4, so "on", "off" and "fan" never match by accident.</item>
/// <item>Range lists take numbers in digits or words within from..to; "percentage" ranges prefer "50%" or "fifty
/// percent". Slots named hours, minutes, seconds (or start_hours...) take the parts of a spoken duration, as Home
/// Assistant's timer templates do; slots named duration or *_duration a whole duration; time or *_time a time of day.</item>
/// <item>Wildcard slots take the text between words seen around them in the examples given.</item>
/// </list>
/// Overlaps are resolved greedily: exact before fuzzy, longer before shorter, earlier before later; each slot is filled
/// at most once. Everything about the lists is prepared in the constructor; <see cref="Extract"/> only reads.
/// </summary>
public sealed class SlotExtractor
{
    private enum Source { Phrases, Range, DurationPart, Duration, Time, Wildcard }

    private sealed record Phrase(string Slot, string Value, string[] Words);

    private sealed record NumericSlot(string Slot, NumberRange Range);

    private sealed record DurationPartSlot(string Slot, DurationUnit Unit, bool StartOfTimer);

    private sealed record Candidate(SlotValue Value, int FirstWord, int LastWord, int Score);

    private readonly Phrase[] _phrases;
    private readonly NumericSlot[] _numbers;
    private readonly DurationPartSlot[] _durationParts;
    private readonly string[] _durations;
    private readonly string[] _times;
    private readonly Dictionary<string, HashSet<(string Before, string? After)>> _wildcards;

    public SlotExtractor(IEnumerable<SlotDefinition> slots, IEnumerable<IntentExample>? examples = null)
    {
        var phrases = new List<Phrase>();
        var seenPhrases = new HashSet<(string, string)>();
        var numbers = new List<NumericSlot>();
        var parts = new List<DurationPartSlot>();
        var durations = new List<string>();
        var times = new List<string>();
        _wildcards = new Dictionary<string, HashSet<(string, string?)>>(StringComparer.Ordinal);
        var definitions = slots.ToList();
        Definitions = definitions;
        foreach (SlotDefinition definition in definitions)
        {
            string slot = definition.Slot;
            SlotList list = definition.List;
            if (DurationUnitOf(slot) is DurationUnit unit)
            {
                parts.Add(new DurationPartSlot(slot, unit, slot.StartsWith("start_", StringComparison.Ordinal)));
            }
            else if (slot is "duration" || slot.EndsWith("_duration", StringComparison.Ordinal))
            {
                durations.Add(slot);
            }
            else if (slot is "time" || slot.EndsWith("_time", StringComparison.Ordinal))
            {
                times.Add(slot);
            }
            else if (list.Range is NumberRange range)
            {
                numbers.Add(new NumericSlot(slot, range));
            }
            else if (list.Wildcard)
            {
                _wildcards.TryAdd(slot, []);
            }
            foreach (ListValue value in list.Values)
            {
                foreach (string spoken in SpokenForms(value.Spoken))
                {
                    string[] words = Words.Split(spoken).Select(w => w.Text).ToArray();
                    if (words.Length > 0 && seenPhrases.Add((slot, string.Join(' ', words))))
                    {
                        phrases.Add(new Phrase(slot, value.Value, words));
                    }
                }
            }
        }
        var typed = new HashSet<string>(numbers.Select(n => n.Slot).Concat(parts.Select(p => p.Slot)).Concat(durations).Concat(times), StringComparer.Ordinal);
        foreach (IntentExample example in examples ?? [])
        {
            List<Word>? words = null;
            foreach (SlotSpan span in example.Slots)
            {
                if (typed.Contains(span.Slot) || span.End > example.Text.Length || span.Start >= span.End) continue;
                if (_wildcards.TryGetValue(span.Slot, out var anchors))
                {
                    // The words just before and after the span are what finds it again in new text.
                    words ??= Words.Split(example.Text);
                    int before = words.FindLastIndex(w => w.End <= span.Start);
                    int after = words.FindIndex(w => w.Start >= span.End);
                    if (before >= 0)
                    {
                        anchors.Add((words[before].Text, after >= 0 ? words[after].Text : null));
                    }
                    continue;
                }
                string[] spokenWords = Words.Split(example.Text[span.Start..span.End]).Select(w => w.Text).ToArray();
                if (spokenWords.Length > 0 && seenPhrases.Add((span.Slot, string.Join(' ', spokenWords))))
                {
                    phrases.Add(new Phrase(span.Slot, span.Value, spokenWords));
                }
            }
        }
        _phrases = [.. phrases];
        _numbers = [.. numbers];
        _durationParts = [.. parts];
        _durations = [.. durations];
        _times = [.. times];
    }

    public IReadOnlyList<SlotDefinition> Definitions { get; }

    /// <summary>
    /// The slots an intent's templates refer to ({list:slot}, through expansion rules), with values also learnt from
    /// <paramref name="examples"/> of that intent (spoken text and value of each annotated slot).
    /// </summary>
    public static SlotExtractor ForIntent(IntentLibrary library, string intent, IEnumerable<IntentExample>? examples = null)
    {
        var definitions = new List<SlotDefinition>();
        var seen = new HashSet<(string, string)>();
        var visitedRules = new HashSet<string>(StringComparer.Ordinal);
        IntentTemplates? scope = null;
        void Walk(TemplateExpression expression)
        {
            switch (expression)
            {
                case TemplateSequence sequence:
                    foreach (TemplateExpression item in sequence.Items) Walk(item);
                    break;
                case TemplateAlternatives alternatives:
                    foreach (TemplateExpression option in alternatives.Options) Walk(option);
                    break;
                case TemplatePermutation permutation:
                    foreach (TemplateExpression item in permutation.Items) Walk(item);
                    break;
                case TemplateRuleReference rule when visitedRules.Add(rule.Rule) && library.TryGetRule(scope, rule.Rule, out TemplateSequence? body):
                    Walk(body);
                    break;
                case TemplateListReference reference when library.TryGetList(scope, reference.List, out SlotList? list) && seen.Add((reference.Slot, reference.List)):
                    definitions.Add(new SlotDefinition(reference.Slot, list));
                    break;
            }
        }
        foreach (IntentTemplates block in library.Templates.Where(t => t.Intent == intent))
        {
            scope = block;
            visitedRules.Clear();
            foreach (TemplateSequence sentence in block.Sentences) Walk(sentence);
        }
        var ofIntent = (examples ?? []).Where(e => e.Intent == intent).ToList();
        // Slots only the examples know: a list of what they said.
        foreach (var group in ofIntent.SelectMany(e => e.Slots).GroupBy(s => s.Slot, StringComparer.Ordinal))
        {
            if (!definitions.Any(d => d.Slot == group.Key))
            {
                definitions.Add(new SlotDefinition(group.Key, new SlotList(group.Key, [], null, Wildcard: false)));
            }
        }
        return new SlotExtractor(definitions, ofIntent);
    }

    /// <summary>The slots found in <paramref name="text"/>, in the order they occur.</summary>
    public IReadOnlyList<SlotValue> Extract(string text)
    {
        List<Word> words = Words.Split(text);
        if (words.Count == 0) return [];
        var candidates = new List<Candidate>();

        List<(DurationMatch Match, int First, int Last)> durations = FindAll(words, (w, i) => (EnglishDurations.MatchAt(w, i, out int next), next));
        List<(TimeOfDayMatch? Match, int First, int Last)> times = _times.Length > 0
            ? FindAll(words, (w, i) => (EnglishTimesOfDay.MatchAt(w, i, out int next), next))
            : [];
        AddDurations(text, words, durations, candidates);
        foreach ((TimeOfDayMatch? match, int first, int last) in times)
        {
            TimeOfDayMatch time = match!.Value;
            foreach (string slot in _times)
            {
                candidates.Add(new Candidate(SlotValue.Spoken(text, slot, time.Text, time.Start, time.End, SlotKind.Time, time.Time.ToTimeSpan().TotalSeconds), first, last, 1000 + time.End - time.Start));
            }
        }
        bool Claimed(int first, int last) =>
            durations.Any(d => d.First <= last && first <= d.Last) || times.Any(t => t.First <= last && first <= t.Last);
        AddNumbers(text, words, Claimed, candidates);
        AddPhrases(text, words, candidates);
        AddWildcards(text, words, candidates);
        return Resolve(candidates, words.Count);
    }

    /// <summary>
    /// The value of <paramref name="slot"/> spoken as <paramref name="text"/>[<paramref name="start"/>..<paramref name="end"/>]
    /// (a span the slot tagger found): what this extractor finds for that slot within the span (a list's value, a
    /// number, a duration, a time), over the whole span; else the spoken words themselves.
    /// </summary>
    public SlotValue ValueOf(string text, string slot, int start, int end)
    {
        string spoken = text[start..end];
        foreach (SlotValue found in Extract(spoken))
        {
            if (found.Slot == slot)
            {
                return found with { Raw = spoken, Start = start, End = end };
            }
        }
        return SlotValue.Spoken(text, slot, spoken, start, end, _wildcards.ContainsKey(slot) ? SlotKind.Wildcard : SlotKind.Custom);
    }

    private static List<(T Match, int First, int Last)> FindAll<T>(List<Word> words, Func<List<Word>, int, (T? Match, int Next)> matchAt)
    {
        var found = new List<(T, int, int)>();
        for (int i = 0; i < words.Count;)
        {
            (T? match, int next) = matchAt(words, i);
            if (match is null || next <= i)
            {
                i++;
                continue;
            }
            found.Add((match, i, next - 1));
            i = next;
        }
        return found;
    }

    private void AddDurations(string text, List<Word> words, List<(DurationMatch Match, int First, int Last)> durations, List<Candidate> candidates)
    {
        for (int d = 0; d < durations.Count; d++)
        {
            (DurationMatch match, int first, int last) = durations[d];
            foreach (string slot in _durations)
            {
                candidates.Add(new Candidate(SlotValue.Spoken(text, slot, match.Iso8601, match.Start, match.End, SlotKind.Duration, match.Duration.TotalSeconds), first, last, 1000 + match.End - match.Start));
            }
            // Timers: "cancel the 5 minute timer" names the timer (start_minutes), "add 2 minutes" changes it (minutes).
            bool namesTimer = last + 1 < words.Count && words[last + 1].Text is "timer" or "timers";
            bool anyStartSlots = _durationParts.Any(p => p.StartOfTimer), anyPlainSlots = _durationParts.Any(p => !p.StartOfTimer);
            bool toStart = anyStartSlots && (namesTimer || !anyPlainSlots);
            // Whole units per slot: "an hour and a half" is hours 1 and minutes 30.
            long seconds = (long)Math.Round(match.Duration.TotalSeconds);
            var amounts = new Dictionary<DurationUnit, long>
            {
                [DurationUnit.Hours] = seconds / 3600, [DurationUnit.Minutes] = seconds % 3600 / 60, [DurationUnit.Seconds] = seconds % 60,
            };
            foreach (DurationPartSlot slot in _durationParts.Where(p => p.StartOfTimer == toStart))
            {
                long amount = amounts[slot.Unit];
                if (amount == 0) continue;
                int score = 2000 + (int)slot.Unit;
                if (match.Parts.FirstOrDefault(p => p.Unit == slot.Unit && p.Amount == amount) is { End: > 0 } part)
                {
                    int firstWord = words.FindIndex(first, w => w.Start >= part.Start), lastWord = words.FindLastIndex(last, w => w.End <= part.End);
                    candidates.Add(new Candidate(SlotValue.Spoken(text, slot.Slot, SlotValue.FormatNumber(amount), part.Start, part.End, SlotKind.Number, amount), firstWord, lastWord, score));
                }
                else
                {
                    // Part of a fraction ("an hour and a half" gives minutes 30): the whole duration is its range,
                    // shared with the other parts, so it claims no words of its own.
                    candidates.Add(new Candidate(SlotValue.Spoken(text, slot.Slot, SlotValue.FormatNumber(amount), match.Start, match.End, SlotKind.Number, amount), -1, -1, score));
                }
            }
        }
    }

    private void AddNumbers(string text, List<Word> words, Func<int, int, bool> claimed, List<Candidate> candidates)
    {
        if (_numbers.Length == 0) return;
        var ends = new List<(int LastWord, double Value)>();
        for (int i = 0; i < words.Count; i++)
        {
            ends.Clear();
            EnglishNumbers.EndsAt(words, i, ends);
            if (ends.Count == 0) continue;
            (int last, double value) = ends[^1];
            if (claimed(i, last)) continue;
            int sign = EnglishNumbers.PercentSignEnd(words, last + 1);
            foreach (NumericSlot slot in _numbers)
            {
                NumberRange range = slot.Range;
                if (value < range.From || value > range.To) continue;
                bool percentage = range.Type == "percentage";
                int score = 500 + (percentage && sign >= 0 ? 100 : 0) + words[last].End - words[i].Start;
                candidates.Add(new Candidate(SlotValue.Spoken(text, slot.Slot, SlotValue.FormatNumber(value), words[i].Start, words[last].End,
                    percentage ? SlotKind.Percentage : SlotKind.Number, value), i, percentage && sign >= 0 ? sign : last, score));
            }
            i = last;
        }
    }

    private void AddPhrases(string text, List<Word> words, List<Candidate> candidates)
    {
        foreach (Phrase phrase in _phrases)
        {
            int length = phrase.Words.Length;
            for (int i = 0; i + length <= words.Count; i++)
            {
                int edits = 0;
                for (int k = 0; k < length && edits >= 0; k++)
                {
                    string expected = phrase.Words[k], heard = words[i + k].Text;
                    int allowed = expected.Length >= 8 ? 2 : expected.Length >= 4 ? 1 : 0;
                    int distance = allowed == 0 ? (expected == heard ? 0 : 1) : EditDistance.Within(expected, heard, allowed);
                    edits = distance > allowed ? -1 : edits + distance;
                }
                if (edits < 0) continue;
                int start = words[i].Start, end = words[i + length - 1].End;
                // Exact matches win over fuzzy ones of the same length; a longer phrase wins over both.
                int score = 10 * (end - start) - 6 * edits + 100;
                candidates.Add(new Candidate(SlotValue.Spoken(text, phrase.Slot, phrase.Value, start, end), i, i + length - 1, score));
            }
        }
    }

    private void AddWildcards(string text, List<Word> words, List<Candidate> candidates)
    {
        foreach ((string slot, HashSet<(string Before, string? After)> anchors) in _wildcards)
        {
            foreach ((string before, string? after) in anchors)
            {
                for (int i = 0; i + 1 < words.Count; i++)
                {
                    if (words[i].Text != before) continue;
                    int last = words.Count - 1;
                    if (after is not null)
                    {
                        last = words.FindIndex(i + 2, w => w.Text == after) - 1;
                        if (last < i + 1) continue;
                    }
                    int start = words[i + 1].Start, end = words[last].End;
                    string raw = text[start..end];
                    candidates.Add(new Candidate(SlotValue.Spoken(text, slot, raw, start, end, SlotKind.Wildcard), i + 1, last, 1 + (after is null ? 0 : 1)));
                }
            }
        }
    }

    private static List<SlotValue> Resolve(List<Candidate> candidates, int wordCount)
    {
        var taken = new bool[wordCount];
        var filled = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<SlotValue>();
        foreach (Candidate candidate in candidates.OrderByDescending(c => c.Score).ThenBy(c => c.Value.Start).ThenBy(c => c.Value.Slot, StringComparer.Ordinal))
        {
            if (filled.Contains(candidate.Value.Slot)) continue;
            bool free = true;
            if (candidate.FirstWord < 0)
            {
                filled.Add(candidate.Value.Slot);
                result.Add(candidate.Value);
                continue;
            }
            for (int w = candidate.FirstWord; w <= candidate.LastWord && free; w++) free = !taken[w];
            if (!free) continue;
            for (int w = candidate.FirstWord; w <= candidate.LastWord; w++) taken[w] = true;
            filled.Add(candidate.Value.Slot);
            result.Add(candidate.Value);
        }
        result.Sort((a, b) => a.Start != b.Start ? a.Start.CompareTo(b.Start) : string.CompareOrdinal(a.Slot, b.Slot));
        return result;
    }

    private static DurationUnit? DurationUnitOf(string slot) => slot switch
    {
        "hours" or "start_hours" => DurationUnit.Hours,
        "minutes" or "start_minutes" => DurationUnit.Minutes,
        "seconds" or "start_seconds" => DurationUnit.Seconds,
        _ => null,
    };

    /// <summary>Every text a list value's spoken template can produce ("light[s]" is "light" and "lights"), at most 64.</summary>
    internal static List<string> SpokenForms(TemplateExpression spoken)
    {
        List<string> forms = [""];
        Expand(spoken, forms);
        return forms.Select(f => string.Join(' ', f.Split(' ', StringSplitOptions.RemoveEmptyEntries))).Where(f => f.Length > 0).Distinct(StringComparer.Ordinal).ToList();

        static void Expand(TemplateExpression expression, List<string> forms)
        {
            const int Limit = 64;
            switch (expression)
            {
                case TemplateText text:
                    for (int i = 0; i < forms.Count; i++) forms[i] += text.Text;
                    break;
                case TemplateSequence sequence:
                    foreach (TemplateExpression item in sequence.Items) Expand(item, forms);
                    break;
                case TemplateAlternatives alternatives:
                    var expanded = new List<string>();
                    if (alternatives.Optional) expanded.AddRange(forms);
                    foreach (TemplateExpression option in alternatives.Options)
                    {
                        var copy = new List<string>(forms);
                        Expand(option, copy);
                        expanded.AddRange(copy);
                    }
                    forms.Clear();
                    forms.AddRange(expanded.Take(Limit));
                    break;
                case TemplatePermutation permutation:
                    foreach (TemplateExpression item in permutation.Items)
                    {
                        for (int i = 0; i < forms.Count; i++) forms[i] += " ";
                        Expand(item, forms);
                    }
                    break;
                default:
                    // A rule or list inside a list value cannot be resolved here; that value is said some other way.
                    break;
            }
        }
    }
}
