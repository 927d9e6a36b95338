using System.Globalization;
using System.Text.Json;
using System.Text;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;

namespace EdgeSlm.EdgeModule.Protocols;

/// <summary>
/// The module's own result shape (<c>edgeslm classify</c> and the native protocol):
/// <c>{"text", "intent", "confidence", "slots": [{"slot", "value", "raw", "start", "end"}], "recognized"}</c>.
/// Offsets are in code points (as Python and the shared datasets count), end exclusive.
/// </summary>
public static class ResultJson
{
    /// <summary>Text as it is (no \u escapes of quotes or accents): these payloads never meet HTML.</summary>
    internal static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static byte[] Write(IntentResult result, Action<Utf8JsonWriter>? extra = null)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            WriteFields(writer, result);
            extra?.Invoke(writer);
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static void WriteFields(Utf8JsonWriter writer, IntentResult result)
    {
        writer.WriteString("text", result.Text);
        if (result.Intent is null) writer.WriteNull("intent");
        else writer.WriteString("intent", result.Intent);
        writer.WriteNumber("confidence", Math.Round(result.Confidence, 4));
        writer.WriteStartArray("slots");
        foreach (SlotValue slot in result.Slots)
        {
            writer.WriteStartObject();
            writer.WriteString("slot", slot.Slot);
            writer.WriteString("value", slot.Value);
            writer.WriteString("raw", slot.Raw);
            if (slot.Raw.Length == 0 && slot.Start == slot.End)
            {
                // A fixed slot of the template (Home Assistant's "slots:"): not in the text.
                writer.WriteNull("start");
                writer.WriteNull("end");
            }
            else
            {
                writer.WriteNumber("start", CodePoints(result.Text, slot.Start));
                writer.WriteNumber("end", CodePoints(result.Text, slot.End));
            }
            if (slot.Kind != SlotKind.Custom)
            {
                writer.WriteString("kind", KindName(slot.Kind));
            }
            if (slot.Number is double number)
            {
                writer.WriteNumber("number", number);
            }
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        writer.WriteBoolean("recognized", result.Recognized);
        writer.WriteString("source", SourceName(result.Source));
        if (result.ExactMatch)
        {
            writer.WriteBoolean("exact", true);
        }
        if (result.Truncated)
        {
            writer.WriteBoolean("truncated", true);
        }
    }

    public static string SourceName(IntentSource source) => source switch
    {
        IntentSource.Template => "template",
        IntentSource.Classifier => "classifier",
        _ => "slm",
    };

    public static string KindName(SlotKind kind) => kind switch
    {
        SlotKind.Custom => "custom",
        SlotKind.Number => "number",
        SlotKind.Percentage => "percentage",
        SlotKind.Duration => "duration",
        SlotKind.Time => "time",
        SlotKind.Wildcard => "wildcard",
        _ => kind.ToString().ToLowerInvariant(),
    };

    /// <summary>A UTF-16 index as a code point offset (what other languages call a character position).</summary>
    public static int CodePoints(string text, int utf16Index)
    {
        int count = 0;
        for (int i = 0; i < utf16Index && i < text.Length; i++)
        {
            if (!char.IsLowSurrogate(text[i])) count++;
        }
        return count;
    }

    public static string Text(IntentResult result) => Encoding.UTF8.GetString(Write(result));

    /// <summary>
    /// What training did, as the status topic and the twin's reported properties show it. Twins take no arrays, so
    /// with <paramref name="namesAsOneString"/> the intent names are one comma-separated string instead of a list.
    /// </summary>
    internal static void WriteTrainingStatus(Utf8JsonWriter w, string status, string? error, IntentEngine? engine, bool namesAsOneString)
    {
        w.WriteString("status", status);
        if (error is not null) w.WriteString("error", error);
        if (engine is not null)
        {
            w.WriteString("source", engine.Definitions.Source);
            w.WriteNumber("intents", engine.Report.Intents);
            w.WriteNumber("examples", engine.Report.Examples);
            w.WriteNumber("seconds", Math.Round(engine.Report.Seconds, 3));
            w.WriteBoolean("fromCache", engine.Report.FromCache);
            w.WriteNumber("threshold", Math.Round(engine.Report.Threshold, 4));
            if (namesAsOneString)
            {
                w.WriteString("intentNames", string.Join(",", engine.IntentNames));
            }
            else
            {
                w.WriteStartArray("intentNames");
                foreach (string name in engine.IntentNames) w.WriteStringValue(name);
                w.WriteEndArray();
            }
        }
        w.WriteString("time", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
    }

    internal static string Invariant(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
