using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.Intents.Recognition;

namespace EdgeSlm.EdgeModule.Protocols;

/// <summary>
/// Home Assistant MQTT discovery: a retained config for an <c>event</c> entity whose event types are the intent
/// names (plus <c>not_recognized</c>), and an event per answer on <c>edgeslm/&lt;siteId&gt;/event</c>.
/// </summary>
public static class HomeAssistantDiscovery
{
    public const string NotRecognized = "not_recognized";

    public static string EventTopic(string siteId) => new ModuleTopics(siteId).Event;

    public static OutgoingMessage Config(string prefix, string siteId, IEnumerable<string> intents)
    {
        // Discovery ids allow [a-zA-Z0-9_-] only.
        string node = "edgeslm_" + new string(siteId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_').ToArray());
        return new OutgoingMessage($"{prefix}/event/{node}/intent/config", JsonFields.Object(w =>
        {
            w.WriteString("name", "Voice intent");
            w.WriteString("unique_id", node + "_intent");
            w.WriteString("state_topic", EventTopic(siteId));
            w.WriteStartArray("event_types");
            foreach (string intent in intents.Append(NotRecognized)) w.WriteStringValue(intent);
            w.WriteEndArray();
            w.WriteString("availability_topic", new ModuleTopics(siteId).Status);
            w.WriteString("payload_available", "online");
            w.WriteString("payload_not_available", "offline");
            w.WriteStartObject("device");
            w.WriteStartArray("identifiers");
            w.WriteStringValue(node);
            w.WriteEndArray();
            w.WriteString("name", $"EdgeSlm {siteId}");
            w.WriteString("manufacturer", "EdgeSlm");
            w.WriteEndObject();
        }), Retain: true);
    }

    public static OutgoingMessage Event(string siteId, IntentResult result) => new(EventTopic(siteId), JsonFields.Object(w =>
    {
        w.WriteString("event_type", result.Intent ?? NotRecognized);
        w.WriteNumber("confidence", Math.Round(result.Confidence, 4));
        w.WriteString("text", result.Text);
        w.WriteStartObject("slots");
        foreach (var slot in result.Slots) w.WriteString(slot.Slot, slot.Value);
        w.WriteEndObject();
    }));
}

/// <summary>The <c>HomeAssistant</c> section.</summary>
public sealed class HomeAssistantSettings
{
    /// <summary>Publish a retained MQTT discovery config for an event entity whose event types are the intents.</summary>
    public bool Discovery { get; set; }

    public string DiscoveryPrefix { get; set; } = "homeassistant";
}
