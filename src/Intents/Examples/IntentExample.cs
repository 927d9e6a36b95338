using System.Text.Json;

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
    /// <exception cref="FormatException">A line is not such an object; the message names the file and line.</exception>
    public static List<IntentExample> ReadJsonLines(string path)
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
