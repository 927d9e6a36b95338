using System.Globalization;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Templates;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EdgeSlm.EdgeModule.Wyoming;

/// <summary>One entity of a Wyoming <c>intent</c> event: a text value or a number (never both).</summary>
public sealed record WyomingEntity(string Name, string? Text, double? Number);

/// <summary>An intent Home Assistant can execute and the slots its handler takes.</summary>
public sealed record HomeAssistantIntent(string Name, IReadOnlyList<string> RequiredSlots, IReadOnlyList<string> OptionalSlots)
{
    public bool Takes(string slot) => RequiredSlots.Contains(slot) || OptionalSlots.Contains(slot);
}

/// <summary>
/// What Home Assistant can execute when it receives an intent over Wyoming (it calls <c>intent.async_handle</c>
/// with the name and <c>{slot: {"value": v}}</c>): its built-in intents with their slots, as the
/// <c>intents.yaml</c> of home-assistant/intents declares them (<c>supported: true</c> only). A templates folder
/// that holds an <c>intents.yaml</c> replaces the built-in table, so a newer Home Assistant's intents need no new
/// build. Maps an engine result to an answer Home Assistant can run, or says why it cannot.
/// </summary>
public sealed class HomeAssistantIntents
{
    /// <summary>Slots whose values Home Assistant takes as numbers ("brightness": 50, not "50").</summary>
    private static readonly HashSet<string> NumericSlots = new(StringComparer.Ordinal)
    {
        "brightness", "position", "temperature", "volume_level",
        "hours", "minutes", "seconds", "start_hours", "start_minutes", "start_seconds",
    };

    private readonly Dictionary<string, HomeAssistantIntent> _intents;

    public HomeAssistantIntents(IEnumerable<HomeAssistantIntent> intents, string source)
    {
        _intents = intents.ToDictionary(i => i.Name, StringComparer.Ordinal);
        Source = source;
    }

    /// <summary>Where the table came from (a file, or "built in").</summary>
    public string Source { get; }

    public IReadOnlyCollection<HomeAssistantIntent> Intents => _intents.Values;

    /// <summary>home-assistant/intents' intents.yaml (commit aa55003, 2025-07-04), the intents marked supported.</summary>
    public static HomeAssistantIntents BuiltIn { get; } = new(
    [
        new("HassTurnOn", [], ["name", "area", "floor", "domain", "device_class"]),
        new("HassTurnOff", [], ["name", "area", "floor", "domain", "device_class"]),
        new("HassGetState", [], ["name", "area", "floor", "domain", "device_class", "state"]),
        new("HassNevermind", [], []),
        new("HassRespond", [], ["response"]),
        new("HassBroadcast", ["message"], []),
        new("HassSetPosition", ["position"], ["name", "area", "floor", "domain", "device_class"]),
        new("HassGetCurrentDate", [], []),
        new("HassGetCurrentTime", [], []),
        new("HassLightSet", [], ["name", "area", "floor", "brightness", "color"]),
        new("HassClimateSetTemperature", ["temperature"], ["name", "area", "floor"]),
        new("HassClimateGetTemperature", [], ["name", "area", "floor"]),
        new("HassShoppingListAddItem", ["item"], []),
        new("HassGetWeather", [], ["name"]),
        new("HassListAddItem", ["item", "name"], []),
        new("HassVacuumStart", [], ["name", "area", "floor"]),
        new("HassVacuumReturnToBase", [], ["name", "area"]),
        new("HassMediaPause", [], ["name", "area"]),
        new("HassMediaUnpause", [], ["name", "area"]),
        new("HassMediaNext", [], ["name", "area"]),
        new("HassMediaPrevious", [], ["name", "area"]),
        new("HassSetVolume", ["volume_level"], ["name", "area"]),
        new("HassStartTimer", [], ["hours", "minutes", "seconds", "name", "conversation_command"]),
        new("HassCancelAllTimers", [], ["area"]),
        new("HassCancelTimer", [], ["start_hours", "start_minutes", "start_seconds", "name", "area"]),
        new("HassIncreaseTimer", [], ["hours", "minutes", "seconds", "start_hours", "start_minutes", "start_seconds", "name", "area"]),
        new("HassDecreaseTimer", [], ["hours", "minutes", "seconds", "start_hours", "start_minutes", "start_seconds", "name", "area"]),
        new("HassPauseTimer", [], ["start_hours", "start_minutes", "start_seconds", "name", "area"]),
        new("HassUnpauseTimer", [], ["start_hours", "start_minutes", "start_seconds", "name", "area"]),
        new("HassTimerStatus", [], ["start_hours", "start_minutes", "start_seconds", "name", "area"]),
    ], "built in");

    /// <summary>The table for an intents setting: the folder's intents.yaml when it has one, the built-in table otherwise.</summary>
    /// <exception cref="Intents.Templates.IntentFileException">The folder's intents.yaml cannot be read.</exception>
    public static HomeAssistantIntents ForIntents(string? intentsPath)
    {
        if (!string.IsNullOrWhiteSpace(intentsPath) && Directory.Exists(intentsPath))
        {
            string file = Path.Combine(intentsPath, "intents.yaml");
            if (File.Exists(file))
            {
                return Load(file);
            }
        }
        return BuiltIn;
    }

    /// <summary>Reads an intents.yaml: <c>&lt;Intent&gt;: {supported, slots: {&lt;slot&gt;: {required}}}</c>.</summary>
    /// <exception cref="Intents.Templates.IntentFileException">Not YAML, or not that shape.</exception>
    public static HomeAssistantIntents Load(string file)
    {
        var intents = new List<HomeAssistantIntent>();
        try
        {
            using var reader = new StreamReader(file);
            var stream = new YamlStream();
            stream.Load(reader);
            if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            {
                throw new Intents.Templates.IntentFileException($"{file}: not a mapping of intent names");
            }
            foreach ((YamlNode key, YamlNode value) in root.Children)
            {
                if (key is not YamlScalarNode { Value: { Length: > 0 } name } || value is not YamlMappingNode intent)
                {
                    throw new Intents.Templates.IntentFileException($"{file}: line {key.Start.Line}: expected an intent name and its mapping");
                }
                if (Scalar(intent, "supported") != "true")
                {
                    continue;
                }
                var required = new List<string>();
                var optional = new List<string>();
                if (Child(intent, "slots") is YamlMappingNode slots)
                {
                    foreach ((YamlNode slotKey, YamlNode slotValue) in slots.Children)
                    {
                        string slot = (slotKey as YamlScalarNode)?.Value ?? "";
                        (Scalar(slotValue, "required") == "true" ? required : optional).Add(slot);
                    }
                }
                intents.Add(new HomeAssistantIntent(name, required, optional));
            }
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException or ArgumentException)
        {
            throw new Intents.Templates.IntentFileException($"{file}: not valid YAML ({e.Message})");
        }
        return new HomeAssistantIntents(intents, file);
    }

    /// <summary>
    /// The entities of <paramref name="result"/> as Home Assistant names them: the list's output value ("Living
    /// Room", the entity's name) as text, numbers as numbers. A slot given twice keeps its first value.
    /// </summary>
    public static IReadOnlyList<WyomingEntity> Entities(IntentResult result)
    {
        var entities = new List<WyomingEntity>();
        foreach (SlotValue slot in result.Slots)
        {
            if (entities.Any(e => e.Name == slot.Slot))
            {
                continue;
            }
            double? number = slot.Kind is SlotKind.Number or SlotKind.Percentage ? slot.Number : null;
            if (number is null && NumericSlots.Contains(slot.Slot)
                && double.TryParse(slot.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) && double.IsFinite(parsed))
            {
                number = parsed;
            }
            entities.Add(number is double value ? new WyomingEntity(slot.Slot, null, value) : new WyomingEntity(slot.Slot, slot.Value, null));
        }
        return entities;
    }

    /// <summary>Null when Home Assistant can execute <paramref name="intent"/> with <paramref name="entities"/>; otherwise why not.</summary>
    public string? WhyNotExecutable(string intent, IReadOnlyList<WyomingEntity> entities)
    {
        if (!_intents.TryGetValue(intent, out HomeAssistantIntent? known))
        {
            return $"Home Assistant has no built-in intent {intent}";
        }
        foreach (WyomingEntity entity in entities)
        {
            if (!known.Takes(entity.Name))
            {
                return $"Home Assistant's {intent} takes no slot '{entity.Name}'";
            }
        }
        foreach (string slot in known.RequiredSlots)
        {
            if (!entities.Any(e => e.Name == slot))
            {
                return $"Home Assistant's {intent} needs the slot '{slot}'";
            }
        }
        return null;
    }

    private static YamlNode? Child(YamlNode node, string key) =>
        node is YamlMappingNode mapping && mapping.Children.TryGetValue(new YamlScalarNode(key), out YamlNode? value) ? value : null;

    private static string? Scalar(YamlNode node, string key) => (Child(node, key) as YamlScalarNode)?.Value;
}
