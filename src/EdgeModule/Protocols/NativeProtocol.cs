using System.Buffers;
using System.Text.Json;
using EdgeSlm.EdgeModule.Intents;

namespace EdgeSlm.EdgeModule.Protocols;

/// <summary>
/// EdgeSlm's own topics: <c>edgeslm/&lt;siteId&gt;/transcript</c> in (JSON <c>{"text", "id"?, "siteId"?,
/// "intentFilter"?, "customData"?}</c> or plain UTF-8 text), <c>edgeslm/&lt;siteId&gt;/intent</c> out, errors on
/// <c>edgeslm/&lt;siteId&gt;/error</c>. An MQTT 5 response topic, when the request has one, receives the answer
/// instead, with the request's correlation data.
/// </summary>
public sealed class NativeProtocol(string siteId)
{
    public string TranscriptTopic { get; } = $"edgeslm/{siteId}/transcript";
    public string IntentTopic { get; } = $"edgeslm/{siteId}/intent";
    public string ErrorTopic { get; } = $"edgeslm/{siteId}/error";

    public object Parse(string topic, ReadOnlySequence<byte> payload, int maxBytes, string? responseTopic, byte[]? correlationData)
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

    public OutgoingMessage Error(RequestError error) =>
        new(error.ResponseTopic ?? ErrorTopic, JsonFields.Object(writer =>
        {
            writer.WriteString("error", error.Reason);
            writer.WriteString("id", error.Id);
            writer.WriteString("siteId", error.SiteId);
            if (error.Context is not null) writer.WriteString("context", error.Context);
        }), CorrelationData: error.CorrelationData);
}

/// <summary>Reads optional fields of incoming JSON strictly: a field of the wrong type is an error, not a default.</summary>
internal static class JsonFields
{
    public static string? String(JsonElement root, string name)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw new FormatException($"\"{name}\" must be a string");
    }

    public static IReadOnlyCollection<string>? StringArray(JsonElement root, string name)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null)
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
            items.Add(item.ValueKind == JsonValueKind.String ? item.GetString()! : throw new FormatException($"\"{name}\" must be an array of strings"));
        }
        return items;
    }

    public static float? Number(JsonElement root, string name)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.Number ? value.GetSingle() : throw new FormatException($"\"{name}\" must be a number");
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
