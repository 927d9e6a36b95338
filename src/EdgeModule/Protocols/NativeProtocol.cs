using System.Buffers;
using System.Text.Json;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.Intents.Recognition;

namespace EdgeSlm.EdgeModule.Protocols;

/// <summary>
/// EdgeSlm's own topics: <c>edgeslm/&lt;siteId&gt;/transcript</c> in (JSON <c>{"text", "id"?, "siteId"?,
/// "intentFilter"?, "customData"?}</c> or plain UTF-8 text), <c>edgeslm/&lt;siteId&gt;/intent</c> out, errors on
/// <c>edgeslm/&lt;siteId&gt;/error</c>. An MQTT 5 response topic, when the request has one, receives the answer
/// instead, with the request's correlation data.
/// </summary>
public sealed class NativeProtocol(string siteId) : MessageProtocol
{
    private readonly ModuleTopics _topics = new(siteId);

    public string TranscriptTopic => _topics.Transcript;
    public string IntentTopic => _topics.Intent;
    public string ErrorTopic => _topics.Error;

    public override ProtocolProfile Profile => ProtocolProfile.Native;

    public override IEnumerable<string> Subscriptions(string share) => [share + TranscriptTopic];

    public override bool Reads(string topic) => topic == TranscriptTopic;

    public override ParsedMessage Parse(ReceivedMessage message, int maxPayloadBytes) =>
        Parse(message.Message.Topic, message.Message.Payload, maxPayloadBytes, message.Message.ResponseTopic, message.Message.CorrelationData);

    public override IEnumerable<OutgoingMessage> Answers(TranscriptRequest request, IntentResult result, double elapsedMilliseconds) =>
        [Result(request, result, elapsedMilliseconds)];

    public ParsedMessage Parse(string topic, ReadOnlySequence<byte> payload, int maxBytes, string? responseTopic, byte[]? correlationData)
    {
        string derivedId = PayloadReader.DerivedId(topic, payload);
        if (!PayloadReader.TryReadText(payload, maxBytes, out string text, out string reason))
        {
            return new RequestError(ProtocolProfile.Native, derivedId, reason, siteId, ResponseTopic: responseTopic, CorrelationData: correlationData);
        }
        string trimmed = text.TrimStart();
        if (!trimmed.StartsWith('{'))
        {
            return string.IsNullOrWhiteSpace(text)
                ? new RequestError(ProtocolProfile.Native, derivedId, "empty transcript", siteId, ResponseTopic: responseTopic, CorrelationData: correlationData)
                : new TranscriptRequest(ProtocolProfile.Native, derivedId, text.Trim(), siteId, ResponseTopic: responseTopic, CorrelationData: correlationData, IdGiven: false);
        }
        try
        {
            using JsonDocument json = JsonDocument.Parse(text);
            JsonElement root = json.RootElement;
            string id = JsonFields.String(root, "id") ?? derivedId;
            string site = JsonFields.String(root, "siteId") ?? siteId;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return new RequestError(ProtocolProfile.Native, id, "payload is not a JSON object", site, ResponseTopic: responseTopic, CorrelationData: correlationData);
            }
            string? transcript = JsonFields.String(root, "text");
            if (transcript is null)
            {
                return new RequestError(ProtocolProfile.Native, id, "missing \"text\"", site, ResponseTopic: responseTopic, CorrelationData: correlationData);
            }
            if (string.IsNullOrWhiteSpace(transcript))
            {
                return new RequestError(ProtocolProfile.Native, id, "empty transcript", site, ResponseTopic: responseTopic, CorrelationData: correlationData);
            }
            return new TranscriptRequest(ProtocolProfile.Native, id, transcript.Trim(), site,
                SessionId: JsonFields.String(root, "sessionId"), CustomData: JsonFields.String(root, "customData"),
                IntentFilter: JsonFields.StringArray(root, "intentFilter"), ResponseTopic: responseTopic, CorrelationData: correlationData,
                IdGiven: JsonFields.String(root, "id") is not null);
        }
        catch (JsonException e)
        {
            return new RequestError(ProtocolProfile.Native, derivedId, $"invalid JSON: {e.Message}", siteId, ResponseTopic: responseTopic, CorrelationData: correlationData);
        }
        catch (FormatException e)
        {
            return new RequestError(ProtocolProfile.Native, derivedId, e.Message, siteId, ResponseTopic: responseTopic, CorrelationData: correlationData);
        }
    }

    public OutgoingMessage Result(TranscriptRequest request, IntentResult result, double elapsedMilliseconds) =>
        new(request.ResponseTopic ?? IntentTopic, ResultJson.Write(result, writer =>
        {
            writer.WriteString("id", request.Id);
            writer.WriteString("siteId", request.SiteId);
            if (request.SessionId is not null) writer.WriteString("sessionId", request.SessionId);
            if (request.CustomData is not null) writer.WriteString("customData", request.CustomData);
            writer.WriteNumber("elapsedMs", Math.Round(elapsedMilliseconds, 2));
        }), CorrelationData: request.CorrelationData);

    public override OutgoingMessage Error(RequestError error) =>
        new(error.ResponseTopic ?? ErrorTopic, JsonFields.Object(writer =>
        {
            writer.WriteString("error", error.Reason);
            writer.WriteString("id", error.Id);
            writer.WriteString("siteId", error.SiteId);
            if (error.Context is not null) writer.WriteString("context", error.Context);
        }), CorrelationData: error.CorrelationData);
}

/// <summary>
/// Reads optional fields of incoming JSON strictly: a field of the wrong type is an error, not a default, and so is
/// what the writer of the answer could not write back. Every error is a <see cref="FormatException"/>.
/// </summary>
internal static class JsonFields
{
    public static string? String(JsonElement root, string name)
    {
        if (!TryGet(root, name, out JsonElement value))
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.String ? Text(value, name) : throw new FormatException($"\"{name}\" must be a string");
    }

    public static IReadOnlyCollection<string>? StringArray(JsonElement root, string name)
    {
        if (!TryGet(root, name, out JsonElement value))
        {
            return null;
        }
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException($"\"{name}\" must be an array of strings");
        }
        var items = new HashSet<string>(StringComparer.Ordinal);
        foreach (JsonElement item in value.EnumerateArray())
        {
            items.Add(item.ValueKind == JsonValueKind.String ? Text(item, name) : throw new FormatException($"\"{name}\" must be an array of strings"));
        }
        return items;
    }

    public static float? Number(JsonElement root, string name)
    {
        if (!TryGet(root, name, out JsonElement value))
        {
            return null;
        }
        // GetSingle turns 1e39 into infinity, which no JSON answer can carry.
        return value.ValueKind == JsonValueKind.Number && value.GetSingle() is float number && float.IsFinite(number)
            ? number
            : throw new FormatException($"\"{name}\" must be a finite number (single precision)");
    }

    // System.Text.Json accepts escapes that make no valid UTF-16 ("\ud800") while parsing, and throws
    // InvalidOperationException only when such a string, or a property name compared on the way, is read.
    private static bool TryGet(JsonElement root, string name, out JsonElement value)
    {
        value = default;
        try
        {
            return root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;
        }
        catch (InvalidOperationException)
        {
            throw new FormatException($"a property name is not valid UTF-16 (an escaped lone surrogate) where \"{name}\" was looked for");
        }
    }

    private static string Text(JsonElement value, string name)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw new FormatException($"\"{name}\" is not valid UTF-16 (an escaped lone surrogate)");
        }
    }

    public static byte[] Object(Action<Utf8JsonWriter> fields)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, ResultJson.WriterOptions))
        {
            writer.WriteStartObject();
            fields(writer);
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }
}
