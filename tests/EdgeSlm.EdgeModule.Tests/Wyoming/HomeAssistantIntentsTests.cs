using EdgeSlm.EdgeModule.Wyoming;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Templates;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Wyoming;

/// <summary>Results become what Home Assistant can execute: its intent names, its slot names, its values.</summary>
public sealed class HomeAssistantIntentsTests
{
    private static string Templates => Path.Combine(TestEnvironment.RepositoryRoot, "tests", "data", "ha_intents_en", "templates");

    private static IntentResult Result(string intent, params SlotValue[] slots) => new("text", intent, 1f, slots, ExactMatch: true);

    [Fact]
    public void List_output_values_stay_text_and_numbers_become_numbers()
    {
        IReadOnlyList<WyomingEntity> entities = HomeAssistantIntents.Entities(Result("HassLightSet",
            new SlotValue("name", "Bedroom Lamp", "bedroom lamp", 8, 20),
            new SlotValue("brightness", "50", "50", 24, 26, SlotKind.Percentage, 50),
            new SlotValue("area", "Living Room", "living room", 30, 41)));
        Assert.Equal(
        [
            new WyomingEntity("name", "Bedroom Lamp", null),
            new WyomingEntity("brightness", null, 50),
            new WyomingEntity("area", "Living Room", null),
        ], entities);
    }

    [Fact]
    public void A_list_output_for_a_numeric_slot_becomes_a_number_and_a_slot_given_twice_keeps_its_first_value()
    {
        IReadOnlyList<WyomingEntity> entities = HomeAssistantIntents.Entities(Result("HassLightSet",
            new SlotValue("brightness", "100", "max", 0, 3),
            new SlotValue("name", "Kitchen Light", "kitchen light", 4, 17),
            new SlotValue("name", "Other", "other", 18, 23)));
        Assert.Equal([new WyomingEntity("brightness", null, 100), new WyomingEntity("name", "Kitchen Light", null)], entities);
    }

    [Fact]
    public void Built_in_intents_with_their_slots_are_executable()
    {
        HomeAssistantIntents table = HomeAssistantIntents.BuiltIn;
        Assert.Null(table.WhyNotExecutable("HassTurnOn", [new("area", "Kitchen", null), new("domain", "light", null)]));
        Assert.Null(table.WhyNotExecutable("HassGetCurrentTime", []));
        Assert.Null(table.WhyNotExecutable("HassClimateSetTemperature", [new("temperature", null, 21)]));
    }

    [Theory]
    [InlineData("OrderPizza", "area", "has no built-in intent OrderPizza")]
    [InlineData("HassTurnOn", "temperature", "HassTurnOn takes no slot 'temperature'")]
    [InlineData("HassClimateSetTemperature", "area", "needs the slot 'temperature'")]
    public void Other_intents_unknown_slots_and_missing_required_slots_are_not(string intent, string slot, string reason)
    {
        Assert.Contains(reason, HomeAssistantIntents.BuiltIn.WhyNotExecutable(intent, [new(slot, "x", null)]));
    }

    [Fact]
    public void The_templates_folder_intents_yaml_replaces_the_built_in_table_and_matches_it()
    {
        HomeAssistantIntents fromFolder = HomeAssistantIntents.ForIntents(Templates);
        Assert.EndsWith("intents.yaml", fromFolder.Source);
        Assert.Equal(HomeAssistantIntents.BuiltIn.Intents.Select(i => i.Name).Order(), fromFolder.Intents.Select(i => i.Name).Order());
        foreach (HomeAssistantIntent intent in fromFolder.Intents)
        {
            HomeAssistantIntent builtIn = HomeAssistantIntents.BuiltIn.Intents.Single(i => i.Name == intent.Name);
            Assert.Equal(builtIn.RequiredSlots.Order(), intent.RequiredSlots.Order());
            Assert.Equal(builtIn.OptionalSlots.Order(), intent.OptionalSlots.Order());
        }
        // Marked supported: false there, so not answered.
        Assert.NotNull(fromFolder.WhyNotExecutable("HassMediaSearchAndPlay", [new("search_query", "jazz", null)]));
    }

    [Fact]
    public void A_folder_without_intents_yaml_or_no_folder_uses_the_built_in_table()
    {
        Assert.Same(HomeAssistantIntents.BuiltIn, HomeAssistantIntents.ForIntents(null));
        Assert.Same(HomeAssistantIntents.BuiltIn, HomeAssistantIntents.ForIntents(Path.Combine(Templates, "sentences")));
    }

    [Fact]
    public void A_broken_intents_yaml_names_the_file()
    {
        string folder = Directory.CreateTempSubdirectory("edgeslm-ha-intents").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "intents.yaml"), "HassTurnOn: [unclosed");
            var e = Assert.Throws<IntentFileException>(() => HomeAssistantIntents.ForIntents(folder));
            Assert.Contains("intents.yaml", e.Message);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Templates_with_inferred_domain_give_the_domain_slot_home_assistant_acts_on()
    {
        var library = IntentLibrary.Load(Templates);
        IntentTemplates areaLights = library.Templates.First(t => t.Intent == "HassTurnOn" && t.Source.EndsWith("area_domain.yaml", StringComparison.Ordinal));
        Assert.Equal("light", areaLights.FixedSlots["domain"]);
    }
}
