using System.Text.Json;
using EdgeSlm.Intents.Descriptions;

namespace EdgeSlm.Intents.Examples;

/// <summary>A slot span in an utterance: character offsets (end exclusive) into the text.</summary>
public sealed record SlotSpan(string Slot, string Value, int Start, int End);

/// <summary>One labelled utterance, as the shared datasets' JSONL files hold them.</summary>
public sealed record IntentExample(string Text, string Intent, IReadOnlyList<SlotSpan> Slots)
{
    /// <summary>The label of out-of-scope examples (CLINC150's convention).</summary>
    public const string OutOfScope = "oos";

    /// <summary>
    /// Reads <c>{"text", "intent", "slots": [{"slot", "value", "start", "end"}]}</c> lines. Offsets in the files are
    /// code points (Python's); they are converted to UTF-16 indices here.
    /// </summary>
    /// <remarks>
    /// With <paramref name="descriptions"/>, a line without <c>text</c> describes an intent instead:
    /// <c>{"intent", "description", "slots": {"slot": {"description"}}}</c> (see <see cref="IntentDescription"/>).
    /// </remarks>
    /// <exception cref="FormatException">A line is not such an object; the message names the file and line.</exception>
    public static List<IntentExample> ReadJsonLines(string path, List<IntentDescription>? descriptions = null)
    {
        var examples = new List<IntentExample>();
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }
            try
            {
                using JsonDocument json = JsonDocument.Parse(line);
                JsonElement root = json.RootElement;
                if (descriptions is not null && root.ValueKind == JsonValueKind.Object && !root.TryGetProperty("text", out _))
                {
                    descriptions.Add(ReadDescription(root));
                    continue;
                }
                string text = root.GetProperty("text").GetString() ?? throw new FormatException("\"text\" is null");
                string intent = root.GetProperty("intent").GetString() ?? throw new FormatException("\"intent\" is null");
                var slots = new List<SlotSpan>();
                if (root.TryGetProperty("slots", out JsonElement slotArray) && slotArray.ValueKind == JsonValueKind.Array)
                {
                    foreach (JsonElement slot in slotArray.EnumerateArray())
                    {
                        int start = Utf16Index(text, slot.GetProperty("start").GetInt32());
                        int end = Utf16Index(text, slot.GetProperty("end").GetInt32());
                        slots.Add(new SlotSpan(slot.GetProperty("slot").GetString() ?? "", slot.GetProperty("value").GetString() ?? "", start, end));
                    }
                }
                examples.Add(new IntentExample(text, intent, slots));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentOutOfRangeException)
            {
                throw new FormatException($"{path}:{number}: not an intent example ({e.Message})");
            }
        }
        return examples;
    }

    private static IntentDescription ReadDescription(JsonElement root)
    {
        string intent = root.GetProperty("intent").GetString() ?? throw new FormatException("\"intent\" is null");
        string? text = root.TryGetProperty("description", out JsonElement d) ? d.GetString() : null;
        var slots = new Dictionary<string, string>(StringComparer.Ordinal);
        if (root.TryGetProperty("slots", out JsonElement slotObject))
        {
            if (slotObject.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException("a description's \"slots\" is an object of slot names");
            }
            foreach (JsonProperty slot in slotObject.EnumerateObject())
            {
                slots[slot.Name] = slot.Value.ValueKind switch
                {
                    JsonValueKind.String => slot.Value.GetString()!,
                    JsonValueKind.Object => slot.Value.TryGetProperty("description", out JsonElement sd) ? sd.GetString() ?? "" : "",
                    _ => throw new FormatException($"slot '{slot.Name}': expected a description or {{\"description\": text}}"),
                };
            }
        }
        if (text is null && slots.Count == 0)
        {
            throw new FormatException("a line without \"text\" must describe its intent (\"description\" or \"slots\")");
        }
        return new IntentDescription(intent, text, slots);
    }

    private static int Utf16Index(string text, int codePoints)
    {
        int index = 0;
        for (int i = 0; i < codePoints; i++)
        {
            if (index >= text.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(codePoints), $"offset {codePoints} is past the end of the text");
            }
            index += char.IsHighSurrogate(text[index]) ? 2 : 1;
        }
        return index;
    }
}
