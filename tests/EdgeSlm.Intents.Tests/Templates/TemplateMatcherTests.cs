using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Templates;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.Templates;

public sealed class TemplateMatcherTests(ITestOutputHelper output)
{
    private static string HomeAssistant => Path.Combine(TestEnvironment.DatasetsDirectory, "ha_intents_en");

    private static readonly Lazy<TemplateMatcher> HomeAssistantMatcher = new(() =>
        new TemplateMatcher(IntentLibrary.Load(Path.Combine(HomeAssistant, "templates")), problems: []));

    [Fact]
    public void Most_home_assistant_train_sentences_match_a_template_with_their_intent_and_spoken_slots()
    {
        TemplateMatcher matcher = HomeAssistantMatcher.Value;
        string file = Path.Combine(HomeAssistant, "train.jsonl");
        List<IntentExample> examples = IntentExample.ReadJsonLines(file);
        string[] lines = File.ReadLines(file).Where(l => l.Trim().Length > 0).ToArray();
        Assert.Equal(lines.Length, examples.Count);
        int matched = 0, rightIntent = 0, spokenSlots = 0, rightSpokenSlots = 0, rightAllSlots = 0;
        var misses = new List<string>();
        for (int i = 0; i < examples.Count; i++)
        {
            IntentExample example = examples[i];
            TemplateMatch? match = matcher.Match(example.Text);
            if (match is null)
            {
                misses.Add($"no match: {example.Text}");
                continue;
            }
            matched++;
            if (match.Intent != example.Intent)
            {
                misses.Add($"{match.Intent} instead of {example.Intent}: {example.Text}");
                continue;
            }
            rightIntent++;
            foreach (SlotValue slot in match.Slots.Where(s => s.End > s.Start))
            {
                Assert.Equal(example.Text[slot.Start..slot.End], slot.Raw);
            }
            using JsonDocument json = JsonDocument.Parse(lines[i]);
            var expectedValues = json.RootElement.GetProperty("slot_values").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());
            // Slots said in the sentence (annotated with a range): value and range must agree, except for slots the
            // template fixes (it says "battery" but the slot comes from the template block, with no range). Other
            // values come from the test's context (the satellite's area), which the text cannot tell.
            foreach (SlotSpan spoken in example.Slots)
            {
                spokenSlots++;
                SlotValue? slot = match.Slots.FirstOrDefault(s => s.Slot == spoken.Slot);
                if (slot is not null && expectedValues.TryGetValue(spoken.Slot, out JsonElement value) && SameValue(value, slot.Value)
                    && ((slot.Start == spoken.Start && slot.End == spoken.End) || slot.End == 0))
                {
                    rightSpokenSlots++;
                }
                else
                {
                    misses.Add($"spoken slot {spoken.Slot}={example.Text[spoken.Start..spoken.End]} got {slot?.Raw ?? "nothing"} ({slot?.Value}): {example.Text}");
                }
            }
            if (expectedValues.All(e => match.Slots.Any(s => s.Slot == e.Key && SameValue(e.Value, s.Value)))) rightAllSlots++;
        }

        var watch = Stopwatch.StartNew();
        foreach (IntentExample example in examples) matcher.Match(example.Text);
        double milliseconds = watch.Elapsed.TotalMilliseconds / examples.Count;

        string summary = $"{examples.Count} sentences: {matched} match a template exactly, {rightIntent} with the right intent, "
            + $"{rightSpokenSlots} of {spokenSlots} spoken slots right (value and range), {rightAllSlots} sentences with every slot value right "
            + $"(context slots included); {milliseconds:F3} ms per sentence";
        output.WriteLine(summary);
        foreach (string miss in misses) output.WriteLine(miss);
        // Measured on the snapshot with block-local lists and rules: 807 (97.5%) match, 804 (97.1%) with the right
        // intent, 785 of 828 (94.8%) spoken slots right. (With one global rule per name, as first loaded: 92.3%,
        // 91.3%, 94.5%.) What is left needs requires_context or names the test fixtures do not have.
        Assert.True(matched >= 0.96 * examples.Count, summary);
        Assert.True(rightIntent >= 0.96 * examples.Count, summary);
        Assert.True(rightSpokenSlots >= 0.93 * spokenSlots, summary);
    }

    [Theory]
    [InlineData("turn on the kitchen lights", "HassTurnOn", "area=Kitchen@kitchen")]
    [InlineData("Turn ON the Kitchen lights, please!", "HassTurnOn", "area=Kitchen@Kitchen")]
    [InlineData("turn the kitchen fan on", "HassTurnOn", "area=Kitchen@kitchen", "domain=fan")]
    [InlineData("set the living room temperature to 21 degrees", "HassClimateSetTemperature", "area=Living Room@living room", "temperature=21@21")]
    [InlineData("set the temperature to twenty one point five", "HassClimateSetTemperature", "temperature=21.5@twenty one point five")]
    [InlineData("set a timer for ten minutes", "HassStartTimer", "minutes=10@ten")]
    [InlineData("set a timer for 1 hour and 30 minutes", "HassStartTimer", "hours=1@1", "minutes=30@30")]
    [InlineData("what's the weather like", "HassGetWeather")]
    [InlineData("what's the weather like in London?", "HassGetWeather", "name=London@London")]
    [InlineData("set the bedroom lamp brightness to 50%", "HassLightSet", "name=Bedroom Lamp@bedroom lamp", "brightness=50@50")]
    [InlineData("set the bedroom lamp brightness to fifty percent", "HassLightSet", "name=Bedroom Lamp@bedroom lamp", "brightness=50@fifty")]
    [InlineData("turn off the lights on the first floor", "HassTurnOff", "floor=First Floor@first floor", "domain=light")]
    [InlineData("start a 5 minute timer named pizza oven", "HassStartTimer", "minutes=5@5", "name=pizza oven@pizza oven")]
    [InlineData("broadcast that dinner is ready", "HassBroadcast", "message=dinner is ready@dinner is ready")]
    public void Home_assistant_templates_give_intent_and_slots(string utterance, string intent, params string[] slots)
    {
        TemplateMatch? match = HomeAssistantMatcher.Value.Match(utterance);
        Assert.NotNull(match);
        Assert.Equal(intent, match.Intent);
        foreach (string expected in slots)
        {
            // "slot=value@raw" for a spoken slot, "slot=value" for one the template fixes.
            string[] parts = expected.Split('=', 2);
            string[] valueAndRaw = parts[1].Split('@');
            SlotValue slot = Assert.Single(match.Slots, s => s.Slot == parts[0]);
            Assert.Equal(valueAndRaw[0], slot.Value);
            if (valueAndRaw.Length > 1)
            {
                Assert.Equal(valueAndRaw[1], slot.Raw);
                Assert.Equal(slot.Raw, utterance[slot.Start..slot.End]);
            }
        }
    }

    [Fact]
    public void Numbers_and_percentages_from_range_lists_carry_their_kind()
    {
        TemplateMatch match = HomeAssistantMatcher.Value.Match("set the bedroom lamp brightness to 50%")!;
        SlotValue brightness = Assert.Single(match.Slots, s => s.Slot == "brightness");
        Assert.Equal(SlotKind.Percentage, brightness.Kind);
        Assert.Equal(50, brightness.Number);
        SlotValue minutes = Assert.Single(HomeAssistantMatcher.Value.Match("set a timer for twenty-one minutes")!.Slots, s => s.Slot == "minutes");
        Assert.Equal((SlotKind.Number, 21.0, "twenty-one"), (minutes.Kind, minutes.Number!.Value, minutes.Raw));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("the quick brown fox jumps over the lazy dog")]
    [InlineData("turn on the kitchen lights banana")]
    [InlineData("turn on the kitchen banana lights")]
    [InlineData("set the living room temperature to 250 degrees")]
    [InlineData("turn on the kitchenlights")]
    public void Text_that_no_template_covers_entirely_does_not_match(string utterance)
    {
        Assert.Null(HomeAssistantMatcher.Value.Match(utterance));
    }

    [Fact]
    public void Slot_ranges_index_the_original_text_after_leading_space_punctuation_and_non_ascii_text()
    {
        IntentLibrary library = IntentLibrary.Load(WriteIntents("""
            language: en
            intents:
              Greet:
                data:
                  - sentences: ["(héllo|hi) [there] {person}"]
                    slots: {mood: friendly}
            lists:
              person:
                values:
                  - in: "(bob|robert)"
                    out: Robert
                  - "Zoë Smith"
            skip_words: ["please"]
            """));
        var matcher = new TemplateMatcher(library);
        string utterance = "  ¡Héllo, there… please ZOË  smith!";
        TemplateMatch match = matcher.Match(utterance)!;
        Assert.Equal("Greet", match.Intent);
        SlotValue person = match.Slots[0];
        Assert.Equal(("person", "Zoë Smith", "ZOË  smith"), (person.Slot, person.Value, person.Raw));
        Assert.Equal(person.Raw, utterance[person.Start..person.End]);
        Assert.Equal(new SlotValue("mood", "friendly", "", 0, 0), match.Slots[1]);
        Assert.Equal("Robert", matcher.Match("hi robert")!.Slots[0].Value);
        Assert.Null(matcher.Match("hi there"));
    }

    [Fact]
    public void Permutations_optionals_rules_and_wildcards_match_in_any_allowed_order()
    {
        IntentLibrary library = IntentLibrary.Load(WriteIntents("""
            language: en
            intents:
              Remind:
                data:
                  - sentences: ["remind me to {task} (at <hour>; on {day})", "<verb> [a] reminder"]
            lists:
              task: {wildcard: true}
              hours: {range: {from: 1, to: 12}}
              day: {values: [monday, tuesday]}
            expansion_rules:
              hour: "{hours:hour} o'clock"
              verb: "(set|create)"
            """));
        var matcher = new TemplateMatcher(library);
        foreach (string utterance in new[] { "remind me to water the plants at seven o'clock on monday", "remind me to water the plants on monday at 7 o'clock" })
        {
            TemplateMatch match = matcher.Match(utterance)!;
            Assert.Equal("water the plants", match.Slots.Single(s => s.Slot == "task").Value);
            Assert.Equal("7", match.Slots.Single(s => s.Slot == "hour").Value);
            Assert.Equal("monday", match.Slots.Single(s => s.Slot == "day").Value);
        }
        Assert.NotNull(matcher.Match("create reminder"));
        Assert.Null(matcher.Match("remind me to at 7 o'clock on monday"));
        Assert.Null(matcher.Match("remind me to sleep at 13 o'clock on monday"));
    }

    [Fact]
    public void Undefined_rules_are_reported_or_thrown()
    {
        IntentLibrary library = IntentLibrary.Load(WriteIntents("""
            language: en
            intents:
              Broken:
                data:
                  - sentences: ["do <missing>", "do it"]
            """));
        var problems = new List<string>();
        var matcher = new TemplateMatcher(library, problems);
        Assert.Equal(1, matcher.TemplateCount);
        Assert.Contains("<missing>", Assert.Single(problems));
        Assert.NotNull(matcher.Match("do it"));
        Assert.Throws<IntentFileException>(() => new TemplateMatcher(library));
    }

    private static string WriteIntents(string yaml)
    {
        string path = Path.Combine(Path.GetTempPath(), $"edgeslm-matcher-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    private static bool SameValue(JsonElement expected, string actual) => expected.ValueKind switch
    {
        JsonValueKind.Number => double.TryParse(actual, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v == expected.GetDouble(),
        JsonValueKind.Array => expected.EnumerateArray().Any(e => SameValue(e, actual)),
        _ => string.Equals(expected.GetString()?.Trim(), actual.Trim(), StringComparison.OrdinalIgnoreCase),
    };
}
