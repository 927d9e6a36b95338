using System.Buffers;
using System.Text;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Templates;

namespace EdgeSlm.Intents.Tests.Templates;

/// <summary>Inputs that once crashed a parser or what follows it (docs/reliability.md, Fuzzing); each is also in the fuzzing corpus.</summary>
public sealed class TemplateRobustnessTests
{
    [Theory]
    [InlineData(-2000000000, 2000000000)]
    [InlineData(0, int.MaxValue)]
    [InlineData(int.MinValue, int.MaxValue)]
    public void Range_lists_wider_than_an_int_expand_to_numbers_within_the_range(int from, int to)
    {
        IntentLibrary library = IntentLibrary.Parse($"lists: {{r: {{range: {{from: {from}, to: {to}}}}}}}\nintents: {{R: {{data: [{{sentences: [\"{{r}}\"]}}]}}}}", "range.yaml");

        List<IntentExample> examples = TemplateExpander.Expand(library, perTemplate: 20);

        Assert.NotEmpty(examples);
        Assert.All(examples, e => Assert.InRange(long.Parse(e.Text), from, to));
    }

    [Fact]
    public void A_list_value_that_refers_to_its_own_list_is_a_reported_problem_not_a_stack_overflow()
    {
        IntentLibrary library = IntentLibrary.Parse("lists:\n  a: {values: [\"x {a}\"]}\nintents:\n  L: {data: [{sentences: [\"{a}\", \"plain\"]}]}\n", "loop.yaml");
        var expansionProblems = new List<string>();
        var matchProblems = new List<string>();

        List<IntentExample> examples = TemplateExpander.Expand(library, problems: expansionProblems);
        var matcher = new TemplateMatcher(library, matchProblems);

        Assert.Equal(["plain"], examples.Select(e => e.Text));
        Assert.Contains("nest more than", Assert.Single(expansionProblems));
        Assert.Contains("nest more than", Assert.Single(matchProblems));
        Assert.Equal("L", matcher.Match("plain")?.Intent);
    }

    [Fact]
    public void A_fixed_slot_given_as_a_mapping_is_rejected_with_the_slot_name()
    {
        var e = Assert.Throws<IntentFileException>(() =>
            IntentLibrary.Parse("intents:\n  S: {data: [{sentences: [\"x\"], slots: {room: {b: c}}}]}\n", "slots.yaml"));

        Assert.Contains("slot 'room'", e.Message);
    }

    [Theory]
    [InlineData(TemplateParser.MaxNesting + 1)]
    [InlineData(100_000)]
    public void Templates_nested_deeper_than_the_limit_are_rejected(int depth)
    {
        string template = new string('(', depth) + "x" + new string(')', depth);

        var e = Assert.Throws<TemplateFormatException>(() => TemplateParser.Parse(template));

        Assert.Contains($"nest more than {TemplateParser.MaxNesting} deep", e.Message);
    }

    [Fact]
    public void Templates_nested_to_the_limit_still_parse()
    {
        string template = new string('[', TemplateParser.MaxNesting) + "x" + new string(']', TemplateParser.MaxNesting);

        Assert.Single(TemplateParser.Parse(template).Items);
    }

    [Theory]
    [InlineData("lists:\n  r:\n    range: {from: 10, to: 1`\nintR:\u0010\0: [{s: [\"{r}\"]}]}\n")]
    [InlineData(" ists:\n  : }\nintunts:\n lLents:\n  L:\u0004{lLents:\n  L:\u0004{d")]
    public void Yaml_that_stops_the_yaml_reader_without_a_YamlException_is_an_intents_file_error(string yaml)
    {
        var e = Assert.Throws<IntentFileException>(() => IntentLibrary.Parse(yaml, "scanner.yaml"));

        Assert.Contains("not valid YAML", e.Message);
    }

    [Theory]
    [InlineData("set a timer for 99999999999999999999 hours")]
    [InlineData("99999999999999M99999")]
    public void Durations_beyond_three_thousand_years_are_not_durations(string text)
    {
        Assert.Empty(EnglishDurations.Find(text));
    }

    [Fact]
    public void Durations_of_a_thousand_years_are_still_read()
    {
        Assert.Equal(TimeSpan.FromHours(8_760_000), Assert.Single(EnglishDurations.Find("for 8760000 hours")).Duration);
    }

}
