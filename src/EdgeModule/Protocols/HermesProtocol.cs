using System.Buffers;
using System.Text.Json;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;

namespace EdgeSlm.EdgeModule.Protocols;

/// <summary>
/// The Hermes NLU protocol as Rhasspy speaks it: <c>hermes/nlu/query</c> in; <c>hermes/nlu/intentParsed</c> and then
/// <c>hermes/intent/&lt;intentName&gt;</c> out, or <c>hermes/nlu/intentNotRecognized</c>; errors on
/// <c>hermes/error/nlu</c> (Rhasspy's topic; Snips used <c>hermes/nlu/error</c>, hence configurable). Rhasspy sends
/// every field, null when unset, and so do we.
/// </summary>
public sealed class HermesProtocol(string errorTopic) : MessageProtocol
{
    public const string QueryTopic = "hermes/nlu/query";
    public const string IntentParsedTopic = "hermes/nlu/intentParsed";
    public const string NotRecognizedTopic = "hermes/nlu/intentNotRecognized";
    public const string DefaultErrorTopic = "hermes/error/nlu";

    public string ErrorTopic { get; } = errorTopic;

    public static string IntentTopic(string intentName) => $"hermes/intent/{intentName}";

    public override ProtocolProfile Profile => ProtocolProfile.Hermes;

    public override IEnumerable<string> Subscriptions(string share) => [share + QueryTopic];

    public override bool Reads(string topic) => topic == QueryTopic;

    public override ParsedMessage Parse(ReceivedMessage message, int maxPayloadBytes) =>
        Parse(message.Message.Topic, message.Message.Payload, maxPayloadBytes);

    public override IEnumerable<OutgoingMessage> Answers(TranscriptRequest request, IntentResult result, double elapsedMilliseconds) =>
        Results(request, result);

    public ParsedMessage Parse(string topic, ReadOnlySequence<byte> payload, int maxBytes)
    {
        string derivedId = PayloadReader.DerivedId(topic, payload);
        if (!PayloadReader.TryReadText(payload, maxBytes, out string text, out string reason))
        {
            return new RequestError(ProtocolProfile.Hermes, derivedId, reason, "default");
        }
        string id = derivedId, siteId = "default";
        string? sessionId = null;
        try
        {
            using JsonDocument json = JsonDocument.Parse(text);
            JsonElement root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return new RequestError(ProtocolProfile.Hermes, id, "payload is not a JSON object", siteId, Context: Shorten(text));
            }
            id = JsonFields.String(root, "id") ?? derivedId;
            siteId = JsonFields.String(root, "siteId") ?? "default";
            sessionId = JsonFields.String(root, "sessionId");
            string? input = JsonFields.String(root, "input");
            if (input is null)
            {
                return new RequestError(ProtocolProfile.Hermes, id, "missing \"input\"", siteId, sessionId);
            }
            if (string.IsNullOrWhiteSpace(input))
            {
                return new RequestError(ProtocolProfile.Hermes, id, "empty input", siteId, sessionId, Context: input);
            }
            return new TranscriptRequest(ProtocolProfile.Hermes, id, input.Trim(), siteId, sessionId,
                CustomData: JsonFields.String(root, "customData"), IntentFilter: JsonFields.StringArray(root, "intentFilter"),
                AsrConfidence: JsonFields.Number(root, "asrConfidence"), Lang: JsonFields.String(root, "lang"),
                IdGiven: JsonFields.String(root, "id") is not null);
        }
        catch (JsonException e)
        {
            return new RequestError(ProtocolProfile.Hermes, id, $"invalid JSON: {e.Message}", siteId, sessionId, Context: Shorten(text));
        }
        catch (FormatException e)
        {
            return new RequestError(ProtocolProfile.Hermes, id, e.Message, siteId, sessionId);
        }
    }

    /// <summary>intentParsed then hermes/intent/&lt;name&gt;, or intentNotRecognized.</summary>
    public IEnumerable<OutgoingMessage> Results(TranscriptRequest request, IntentResult result)
    {
        if (result.Intent is null)
        {
            yield return new OutgoingMessage(NotRecognizedTopic, JsonFields.Object(w =>
            {
                w.WriteString("input", request.Text);
                w.WriteString("siteId", request.SiteId);
                WriteNullable(w, "id", request.Id);
                WriteNullable(w, "customData", request.CustomData);
                WriteNullable(w, "sessionId", request.SessionId);
                // Snips' extension: how sure we are that nothing matched.
                w.WriteNumber("confidenceScore", Math.Round(1 - result.Confidence, 4));
                w.WriteString("source", ResultJson.SourceName(result.Source));
            }));
            yield break;
        }
        yield return new OutgoingMessage(IntentParsedTopic, JsonFields.Object(w =>
        {
            w.WriteString("input", request.Text);
            WriteIntent(w, result);
            w.WriteString("siteId", request.SiteId);
            WriteNullable(w, "id", request.Id);
            WriteSlots(w, result);
            WriteNullable(w, "sessionId", request.SessionId);
        }));
        yield return new OutgoingMessage(IntentTopic(result.Intent), JsonFields.Object(w =>
        {
            w.WriteString("input", request.Text);
            WriteIntent(w, result);
            w.WriteString("siteId", request.SiteId);
            WriteNullable(w, "id", request.Id);
            WriteSlots(w, result);
            WriteNullable(w, "sessionId", request.SessionId);
            WriteNullable(w, "customData", request.CustomData);
            w.WriteNull("asrTokens");
            if (request.AsrConfidence is float asr) w.WriteNumber("asrConfidence", asr);
            else w.WriteNull("asrConfidence");
            w.WriteString("rawInput", request.Text);
            w.WriteNull("wakewordId");
            WriteNullable(w, "lang", request.Lang);
        }));
    }

    public override OutgoingMessage Error(RequestError error) => new(ErrorTopic, JsonFields.Object(w =>
    {
        w.WriteString("error", error.Reason);
        w.WriteString("siteId", error.SiteId);
        WriteNullable(w, "context", error.Context);
        WriteNullable(w, "sessionId", error.SessionId);
        w.WriteString("id", error.Id);
    }));

    private static void WriteIntent(Utf8JsonWriter w, IntentResult result)
    {
        w.WriteStartObject("intent");
        w.WriteString("intentName", result.Intent);
        w.WriteNumber("confidenceScore", Math.Round(result.Confidence, 4));
        w.WriteEndObject();
        // EdgeSlm's extension, beside the intent as Rhasspy's extra fields are: which path answered.
        w.WriteString("source", ResultJson.SourceName(result.Source));
    }

    private static void WriteSlots(Utf8JsonWriter w, IntentResult result)
    {
        w.WriteStartArray("slots");
        foreach (SlotValue slot in result.Slots)
        {
            int start = ResultJson.CodePoints(result.Text, slot.Start), end = ResultJson.CodePoints(result.Text, slot.End);
            w.WriteStartObject();
            w.WriteString("entity", slot.Slot);
            w.WriteString("slotName", slot.Slot);
            w.WriteString("rawValue", slot.Raw);
            w.WriteNumber("confidence", 1.0);
            w.WriteStartObject("value");
            WriteSlotValue(w, slot);
            w.WriteEndObject();
            w.WriteStartObject("range");
            w.WriteNumber("start", start);
            w.WriteNumber("end", end);
            w.WriteNumber("rawStart", start);
            w.WriteNumber("rawEnd", end);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    /// <summary>Snips' value kinds: Custom, Number, Percentage, Duration (split into units), InstantTime.</summary>
    private static void WriteSlotValue(Utf8JsonWriter w, SlotValue slot)
    {
        switch (slot.Kind)
        {
            case SlotKind.Number when slot.Number is double n:
                w.WriteString("kind", "Number");
                w.WriteNumber("value", n);
                break;
            case SlotKind.Percentage when slot.Number is double p:
                w.WriteString("kind", "Percentage");
                w.WriteNumber("value", p);
                break;
            case SlotKind.Duration when slot.Number is double seconds:
                long total = (long)Math.Round(seconds);
                w.WriteString("kind", "Duration");
                w.WriteNumber("years", 0);
                w.WriteNumber("quarters", 0);
                w.WriteNumber("months", 0);
                w.WriteNumber("weeks", 0);
                w.WriteNumber("days", total / 86400);
                w.WriteNumber("hours", total % 86400 / 3600);
                w.WriteNumber("minutes", total % 3600 / 60);
                w.WriteNumber("seconds", total % 60);
                w.WriteString("precision", "Exact");
                break;
            case SlotKind.Time:
                w.WriteString("kind", "InstantTime");
                w.WriteString("value", slot.Value);
                w.WriteString("grain", "Minute");
                w.WriteString("precision", "Exact");
                break;
            default:
                w.WriteString("kind", "Custom");
                w.WriteString("value", slot.Value);
                break;
        }
    }

    private static void WriteNullable(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name);
        else w.WriteString(name, value);
    }

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..200] + "…";
}

/// <summary>The <c>Hermes</c> section.</summary>
public sealed class HermesSettings
{
    /// <summary>Rhasspy's <c>hermes/error/nlu</c>; Snips used <c>hermes/nlu/error</c>.</summary>
    public string ErrorTopic { get; set; } = HermesProtocol.DefaultErrorTopic;
}
