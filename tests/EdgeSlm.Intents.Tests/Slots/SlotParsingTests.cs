using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Templates;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.Slots;

public sealed class SlotParsingTests
{
    [Theory]
    [InlineData("zero", 0)]
    [InlineData("0", 0)]
    [InlineData("seven", 7)]
    [InlineData("thirteen", 13)]
    [InlineData("twenty one", 21)]
    [InlineData("twenty-one", 21)]
    [InlineData("21", 21)]
    [InlineData("ninety nine", 99)]
    [InlineData("a hundred", 100)]
    [InlineData("one hundred and five", 105)]
    [InlineData("one hundred five", 105)]
    [InlineData("two hundred forty-two", 242)]
    [InlineData("twelve hundred", 1200)]
    [InlineData("a thousand", 1000)]
    [InlineData("three thousand and one", 3001)]
    [InlineData("nineteen thousand eight hundred and seventy six", 19876)]
    [InlineData("nine hundred ninety-nine thousand nine hundred ninety-nine", 999999)]
    [InlineData("999999", 999999)]
    [InlineData("1,000", 1000)]
    [InlineData("5 thousand", 5000)]
    [InlineData("3.5", 3.5)]
    [InlineData("two point five", 2.5)]
    [InlineData("twenty point two five", 20.25)]
    [InlineData("two and a half", 2.5)]
    [InlineData("Forty Two", 42)]
    public void English_numbers_parse_in_words_and_digits(string text, double expected)
    {
        Assert.True(EnglishNumbers.TryParse(text, out double value), text);
        Assert.Equal(expected, value, 9);
    }

    [Theory]
    [InlineData("")]
    [InlineData("lights")]
    [InlineData("one two")]
    [InlineData("twenty twenty")]
    [InlineData("hundred")]
    [InlineData("a")]
    [InlineData("and five")]
    [InlineData("6:30")]
    public void Text_that_is_not_one_number_does_not_parse(string text)
    {
        Assert.False(EnglishNumbers.TryParse(text, out _), text);
    }

    [Fact]
    public void Every_number_up_to_a_million_reads_the_same_in_words_as_in_digits()
    {
        // Deterministic spot checks over the whole range, plus the edges.
        var random = new Random(4);
        int[] numbers = [.. Enumerable.Range(0, 200), .. Enumerable.Range(0, 300).Select(_ => random.Next(1_000_000)), 999_999, 100_000, 1_001, 10_010];
        foreach (int number in numbers)
        {
            string words = Spell(number);
            Assert.True(EnglishNumbers.TryParse(words, out double value), words);
            Assert.Equal(number, value);
            Assert.True(EnglishNumbers.TryParse(number.ToString(System.Globalization.CultureInfo.InvariantCulture), out value));
            Assert.Equal(number, value);
        }
    }

    [Fact]
    public void Numbers_are_found_in_a_sentence_with_their_ranges()
    {
        string text = "set the heat to twenty one and the fan to 3, then wait 2.5";
        List<NumberMatch> found = EnglishNumbers.FindNumbers(text);
        Assert.Equal([21.0, 3.0, 2.5], found.Select(n => n.Value));
        Assert.Equal(["twenty one", "3", "2.5"], found.Select(n => text[n.Start..n.End]));
    }

    [Theory]
    [InlineData("set it to 50%", 50, "50%")]
    [InlineData("set it to 50 %", 50, "50 %")]
    [InlineData("fifty percent please", 50, "fifty percent")]
    [InlineData("to 50 per cent", 50, "50 per cent")]
    [InlineData("dim to seventy-five percent", 75, "seventy-five percent")]
    public void Percentages_are_a_number_and_a_percent_sign_or_word(string text, double value, string raw)
    {
        NumberMatch match = Assert.Single(EnglishNumbers.FindPercentages(text));
        Assert.Equal(value, match.Value);
        Assert.Equal(raw, text[match.Start..match.End]);
    }

    [Fact]
    public void A_number_without_a_percent_sign_is_not_a_percentage()
    {
        Assert.Empty(EnglishNumbers.FindPercentages("set it to 50 now"));
    }

    [Theory]
    [InlineData("ten minutes", "PT10M", 600, "ten minutes")]
    [InlineData("set a timer for 1 hour and 30 minutes please", "PT1H30M", 5400, "1 hour and 30 minutes")]
    [InlineData("an hour and a half", "PT1H30M", 5400, "an hour and a half")]
    [InlineData("half an hour", "PT30M", 1800, "half an hour")]
    [InlineData("a quarter of an hour", "PT15M", 900, "a quarter of an hour")]
    [InlineData("90 seconds", "PT1M30S", 90, "90 seconds")]
    [InlineData("for 2h", "PT2H", 7200, "2h")]
    [InlineData("5 min", "PT5M", 300, "5 min")]
    [InlineData("two and a half hours", "PT2H30M", 9000, "two and a half hours")]
    [InlineData("twenty one minutes and five seconds", "PT21M5S", 1265, "twenty one minutes and five seconds")]
    public void Durations_are_read_in_words_or_digits(string text, string iso, double seconds, string raw)
    {
        DurationMatch match = Assert.Single(EnglishDurations.Find(text));
        Assert.Equal(iso, match.Iso8601);
        Assert.Equal(seconds, match.Duration.TotalSeconds);
        Assert.Equal(raw, text[match.Start..match.End]);
    }

    [Theory]
    [InlineData("the second light")]
    [InlineData("turn on a light")]
    [InlineData("five m")]
    [InlineData("half of the lights")]
    public void Words_that_only_look_like_durations_are_not_durations(string text)
    {
        Assert.Empty(EnglishDurations.Find(text));
    }

    [Fact]
    public void Units_of_one_duration_get_smaller_so_a_larger_unit_starts_another()
    {
        Assert.Equal([600.0, 7200.0], EnglishDurations.Find("10 minutes 2 hours").Select(d => d.Duration.TotalSeconds));
    }

    [Theory]
    [InlineData("6:30", "06:30", "6:30")]
    [InlineData("wake me at 18:30", "18:30", "18:30")]
    [InlineData("half past six", "06:30", "half past six")]
    [InlineData("half past six in the evening", "18:30", "half past six in the evening")]
    [InlineData("half past six pm", "18:30", "half past six pm")]
    [InlineData("quarter to seven", "06:45", "quarter to seven")]
    [InlineData("ten past five", "05:10", "ten past five")]
    [InlineData("six thirty", "06:30", "six thirty")]
    [InlineData("seven oh five", "07:05", "seven oh five")]
    [InlineData("seven pm", "19:00", "seven pm")]
    [InlineData("at 7 a.m. tomorrow", "07:00", "7 a.m")]
    [InlineData("at 7pm", "19:00", "7pm")]
    [InlineData("12 am", "00:00", "12 am")]
    [InlineData("noon", "12:00", "noon")]
    [InlineData("at midnight", "00:00", "midnight")]
    [InlineData("ten o'clock", "10:00", "ten o'clock")]
    [InlineData("at 7", "07:00", "7")]
    public void Times_of_day_are_read_in_words_or_digits(string text, string expected, string raw)
    {
        TimeOfDayMatch match = Assert.Single(EnglishTimesOfDay.Find(text));
        Assert.Equal(expected, match.Text);
        Assert.Equal(raw, text[match.Start..match.End]);
    }

    [Theory]
    [InlineData("seven lights")]
    [InlineData("set it to 50")]
    [InlineData("25:00")]
    public void Bare_numbers_are_not_times_of_day(string text)
    {
        Assert.Empty(EnglishTimesOfDay.Find(text));
    }

    private static SlotExtractor Extractor(params SlotDefinition[] slots) => new(slots);

    private static SlotList Values(string name, params string[] values) =>
        new(name, values.Select(v => new ListValue(TemplateParser.Parse(v), v)).ToArray(), null, Wildcard: false);

    [Theory]
    [InlineData("turn on the living room lamp", "living room lamp")]
    [InlineData("turn on the livng room lamp", "livng room lamp")]     // a deletion
    [InlineData("turn on the living room lanp", "living room lanp")]   // a substitution
    [InlineData("turn on the lviing room lamp", "lviing room lamp")]   // neighbours swapped
    [InlineData("turn on the LIVING ROOM LAMP!", "LIVING ROOM LAMP")]
    public void List_values_match_case_insensitively_and_despite_one_error_per_word(string text, string raw)
    {
        SlotExtractor extractor = Extractor(new SlotDefinition("name", Values("name", "Living Room Lamp", "Kitchen")));
        SlotValue slot = Assert.Single(extractor.Extract(text));
        Assert.Equal(("name", "Living Room Lamp", raw), (slot.Slot, slot.Value, slot.Raw));
        Assert.Equal(raw, text[slot.Start..slot.End]);
    }

    [Theory]
    [InlineData("turn on the fun")]      // "fan" is too short to forgive an error
    [InlineData("turn on the tv")]
    [InlineData("turn the kitten on")]   // two errors in a seven-letter word
    [InlineData("turn on the kitchenette")]
    public void Short_words_and_larger_errors_do_not_match(string text)
    {
        SlotExtractor extractor = Extractor(new SlotDefinition("name", Values("name", "fan", "TV set", "kitchen")));
        Assert.Empty(extractor.Extract(text));
    }

    [Fact]
    public void Long_words_forgive_two_errors_and_exact_longer_values_win()
    {
        SlotExtractor extractor = Extractor(
            new SlotDefinition("area", Values("area", "Kitchen", "Bedroom")),
            new SlotDefinition("name", Values("name", "Kitchen Switch", "Dehumidifier")));
        Assert.Equal(["name=Dehumidifier"], extractor.Extract("switch off the dehumidfiier").Select(s => $"{s.Slot}={s.Value}"));
        // "kitchen switch" is one device, not the kitchen and a switch.
        Assert.Equal(["name=Kitchen Switch"], extractor.Extract("turn on the kitchen switch").Select(s => $"{s.Slot}={s.Value}"));
        Assert.Equal(["area=Bedroom", "name=Kitchen Switch"], extractor.Extract("in the bedroom turn on the kitchen switch").Select(s => $"{s.Slot}={s.Value}"));
    }

    [Fact]
    public void Spoken_forms_of_list_values_are_expanded_and_map_to_their_value()
    {
        var states = new SlotList("cover_states", [new ListValue(TemplateParser.Parse("(closed|shut)"), "closed"), new ListValue(TemplateParser.Parse("garage door[s]"), "garage")], null, false);
        SlotExtractor extractor = Extractor(new SlotDefinition("state", states));
        Assert.Equal("closed", Assert.Single(extractor.Extract("is the door shut")).Value);
        Assert.Equal("garage", Assert.Single(extractor.Extract("open the garage doors")).Value);
    }

    [Fact]
    public void Slot_ranges_survive_leading_space_punctuation_and_non_ascii_text()
    {
        SlotExtractor extractor = Extractor(new SlotDefinition("area", Values("area", "Living Room")),
            new SlotDefinition("brightness", new SlotList("brightness", [], new NumberRange(0, 100, 1, "percentage"), false)));
        string text = "  «Ünïcødé» 🙂 — set the living room to fifty percent";
        IReadOnlyList<SlotValue> slots = extractor.Extract(text);
        Assert.Equal(2, slots.Count);
        Assert.All(slots, s => Assert.Equal(s.Raw, text[s.Start..s.End]));
        Assert.Equal(("area", "Living Room", "living room"), (slots[0].Slot, slots[0].Value, slots[0].Raw));
        Assert.Equal(("brightness", "50", "fifty", SlotKind.Percentage, 50.0), (slots[1].Slot, slots[1].Value, slots[1].Raw, slots[1].Kind, slots[1].Number!.Value));
    }

    [Fact]
    public void Range_slots_respect_their_bounds_and_prefer_percentages()
    {
        SlotExtractor extractor = Extractor(new SlotDefinition("brightness", new SlotList("brightness", [], new NumberRange(0, 100, 1, "percentage"), false)));
        Assert.Empty(extractor.Extract("set the lights to 150"));
        Assert.Equal("40", Assert.Single(extractor.Extract("set light 2 to 40%")).Value);
        Assert.Equal("twenty one", Assert.Single(extractor.Extract("brightness twenty one")).Raw);
    }

    [Fact]
    public void Durations_fill_duration_slots_and_timer_parts_and_times_fill_time_slots()
    {
        var minutes = new SlotList("timer_minutes", [], new NumberRange(1, 100, 1, "number"), false);
        var hours = new SlotList("timer_hours", [], new NumberRange(1, 100, 1, "number"), false);
        var empty = new SlotList("none", [], null, false);
        SlotExtractor timer = Extractor(new SlotDefinition("hours", hours), new SlotDefinition("minutes", minutes));
        Assert.Equal(["hours=1", "minutes=30"], timer.Extract("start a timer for an hour and a half").Select(s => $"{s.Slot}={s.Value}"));
        SlotValue ten = Assert.Single(timer.Extract("set a timer for ten minutes"));
        Assert.Equal(("minutes", "10", "ten", SlotKind.Number), (ten.Slot, ten.Value, ten.Raw, ten.Kind));

        SlotExtractor changed = Extractor(new SlotDefinition("start_minutes", minutes), new SlotDefinition("minutes", minutes));
        Assert.Equal(["start_minutes=10", "minutes=2"], changed.Extract("take 10 minute timer down by 2 minutes").Select(s => $"{s.Slot}={s.Value}"));

        SlotExtractor alarm = Extractor(new SlotDefinition("duration", empty), new SlotDefinition("time", empty));
        IReadOnlyList<SlotValue> slots = alarm.Extract("snooze for ten minutes and wake me at half past six in the evening");
        Assert.Equal(("duration", "PT10M", "ten minutes", SlotKind.Duration, 600.0), (slots[0].Slot, slots[0].Value, slots[0].Raw, slots[0].Kind, slots[0].Number!.Value));
        Assert.Equal(("time", "18:30", SlotKind.Time, 66600.0), (slots[1].Slot, slots[1].Value, slots[1].Kind, slots[1].Number!.Value));
    }

    [Fact]
    public void An_extractor_for_a_home_assistant_intent_knows_its_lists_and_learns_wildcards_from_examples()
    {
        IntentLibrary library = IntentLibrary.Load(Path.Combine(TestEnvironment.DatasetsDirectory, "ha_intents_en", "templates"));
        List<IntentExample> examples = TemplateExpander.Expand(library, perTemplate: 10, problems: []);

        SlotExtractor light = SlotExtractor.ForIntent(library, "HassLightSet", examples);
        Assert.Equal(["area=Kitchen", "brightness=40"],
            light.Extract("could you dim the kitchn to forty percent").Select(s => $"{s.Slot}={s.Value}"));

        SlotExtractor timer = SlotExtractor.ForIntent(library, "HassStartTimer", examples);
        Assert.Equal(["minutes=10"], timer.Extract("I need a timer for ten minutes").Select(s => $"{s.Slot}={s.Value}"));

        SlotExtractor shopping = SlotExtractor.ForIntent(library, "HassShoppingListAddItem", examples);
        SlotValue item = Assert.Single(shopping.Extract("please add oat milk to the shopping list"));
        Assert.Equal(("item", "oat milk", SlotKind.Wildcard), (item.Slot, item.Value, item.Kind));
    }

    [Fact]
    public void Free_text_extraction_finds_most_spoken_slots_of_home_assistant_train_sentences()
    {
        // Lists and wildcard anchors come from the templates only (expanded sentences), never from train.jsonl.
        IntentLibrary library = IntentLibrary.Load(Path.Combine(TestEnvironment.DatasetsDirectory, "ha_intents_en", "templates"));
        List<IntentExample> expanded = TemplateExpander.Expand(library, perTemplate: 10, problems: []);
        var extractors = library.IntentNames.ToDictionary(i => i, i => SlotExtractor.ForIntent(library, i, expanded));
        List<IntentExample> train = IntentExample.ReadJsonLines(Path.Combine(TestEnvironment.DatasetsDirectory, "ha_intents_en", "train.jsonl"));
        int spoken = 0, found = 0;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        foreach (IntentExample example in train)
        {
            IReadOnlyList<SlotValue> slots = extractors[example.Intent].Extract(example.Text);
            foreach (SlotSpan span in example.Slots)
            {
                spoken++;
                if (slots.Any(s => s.Slot == span.Slot && s.Start == span.Start && s.End == span.End)) found++;
            }
            Assert.All(slots, s => Assert.Equal(example.Text[s.Start..s.End], s.Raw));
        }
        double milliseconds = watch.Elapsed.TotalMilliseconds / train.Count;
        // Measured: 675 of 862 (78%) spoken slots found with exactly the annotated range, about 0.1 ms per sentence.
        Assert.True(found >= 0.75 * spoken, $"{found} of {spoken} spoken slots found; {milliseconds:F3} ms per sentence");
    }

    /// <summary>A number in words, as people say it ("three thousand and one", "twenty-one").</summary>
    private static string Spell(int number)
    {
        string[] small = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
            "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"];
        string[] tens = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
        string Below1000(int n, bool and)
        {
            var parts = new List<string>();
            if (n >= 100) parts.Add(small[n / 100] + " hundred");
            int rest = n % 100;
            if (rest > 0)
            {
                if (and) parts.Add("and");
                parts.Add(rest < 20 ? small[rest] : rest % 10 == 0 ? tens[rest / 10] : $"{tens[rest / 10]}-{small[rest % 10]}");
            }
            return string.Join(' ', parts);
        }
        if (number < 1000) return number == 0 ? "zero" : Below1000(number, and: number >= 100 && number % 2 == 0);
        string thousands = Below1000(number / 1000, and: false) + " thousand";
        int remainder = number % 1000;
        return remainder == 0 ? thousands : $"{thousands} {Below1000(remainder, and: remainder < 100 || number % 3 == 0)}";
    }
}
