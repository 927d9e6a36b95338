using System.Buffers;
using System.Text.Json;

namespace EdgeSlm.EdgeModule.Wyoming;

/// <summary>
/// One Wyoming event: its type, its data (the header's <c>data</c> with the <c>data_length</c> bytes merged over it)
/// and its payload (<c>payload_length</c> bytes; null when there is none). Data values stay JSON as they came, so an
/// answer can echo a request's <c>context</c> exactly.
/// </summary>
public sealed record WyomingEvent(string Type, IReadOnlyDictionary<string, JsonElement> Data, byte[]? Payload = null)
{
    private static readonly Dictionary<string, JsonElement> NoData = new(StringComparer.Ordinal);

    public static WyomingEvent Empty(string type) => new(type, NoData);

    /// <summary>An event whose data <paramref name="writeProperties"/> writes (property by property, inside the object).</summary>
    public static WyomingEvent Create(string type, Action<Utf8JsonWriter> writeProperties)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WyomingEventWriter.JsonOptions))
        {
            writer.WriteStartObject();
            writeProperties(writer);
            writer.WriteEndObject();
        }
        using JsonDocument document = JsonDocument.Parse(buffer.WrittenMemory);
        var data = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (JsonProperty property in document.RootElement.EnumerateObject())
        {
            data[property.Name] = property.Value.Clone();
        }
        return new WyomingEvent(type, data);
    }

    /// <summary>A string value of the data, or null when the key is missing, null or not a string.</summary>
    public string? String(string key) =>
        Data.TryGetValue(key, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}

/// <summary>The event types the intent service reads and writes (OHF-Voice/wyoming: info, asr, intent, error).</summary>
public static class WyomingEventTypes
{
    public const string Describe = "describe";
    public const string Info = "info";
    public const string Transcript = "transcript";
    public const string Recognize = "recognize";
    public const string Intent = "intent";
    public const string NotRecognized = "not-recognized";
    public const string Error = "error";
}
