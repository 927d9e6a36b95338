using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Templates;

namespace EdgeSlm.Intents.Tests.Descriptions;

public sealed class IntentDescriptionTests
{
    [Fact]
    public void Jsonl_lines_without_text_describe_intents_and_merge_with_yaml()
    {
        string folder = Directory.CreateTempSubdirectory("edgeslm-descriptions-").FullName;
        File.WriteAllText(Path.Combine(folder, "a.yaml"), """
            intents:
              LockDoor:
                description: Lock a door
                slots:
                  door: {description: which door}
                data:
                  - sentences: ["lock the front door"]
            """);
        File.WriteAllText(Path.Combine(folder, "b.jsonl"), """
            {"text": "is it going to rain", "intent": "GetWeather", "slots": []}
            {"intent": "GetWeather", "description": "Tell the weather forecast", "slots": {"day": "which day"}}
            {"intent": "LockDoor", "slots": {"when": {"description": "when to lock it"}}}
            {"intent": "StartVacuum", "description": "Start the robot vacuum"}
            """);
        IntentDefinitions definitions = IntentDefinitions.Load(folder);
        Assert.Equal(["GetWeather", "LockDoor", "StartVacuum"], definitions.IntentNames);
        Assert.Single(definitions.Examples);
        Assert.Equal("Tell the weather forecast", definitions.Descriptions["GetWeather"].Text);
        Assert.Equal("which day", definitions.Descriptions["GetWeather"].Slots["day"]);
        Assert.Equal("Lock a door", definitions.Descriptions["LockDoor"].Text); // the JSONL line adds a slot, keeps the text
        Assert.Equal(["door", "when"], definitions.Descriptions["LockDoor"].Slots.Keys.Order());
        Assert.Null(definitions.Descriptions["StartVacuum"].Slots.GetValueOrDefault("room"));
    }

    [Theory]
    [InlineData("""{"intent": "X"}""", "must describe its intent")]
    [InlineData("""{"intent": "X", "slots": ["a"]}""", "is an object of slot names")]
    [InlineData("""{"intent": "X", "slots": {"a": 3}}""", "slot 'a': expected a description")]
    public void A_description_line_that_describes_nothing_is_refused_naming_the_line(string line, string reason)
    {
        string file = Path.Combine(Directory.CreateTempSubdirectory("edgeslm-descriptions-").FullName, "bad.jsonl");
        File.WriteAllText(file, "{\"intent\": \"Y\", \"description\": \"fine\"}\n" + line + "\n");
        IntentFileException e = Assert.Throws<IntentFileException>(() => IntentDefinitions.Load(file));
        Assert.StartsWith($"{file}:2: not an intent example", e.Message);
        Assert.Contains(reason, e.Message);
    }
}
