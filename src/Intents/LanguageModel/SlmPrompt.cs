using System.Text;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Descriptions;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Models.Llama;

namespace EdgeSlm.Intents.LanguageModel;

/// <summary>
/// The language model's instructions for one intents version: every intent with its description, its slots and
/// a few example requests, then the user's request, through the model's chat template. The part before the
/// request is fixed per intents version (its decoder state is computed once); the request and the text after it
/// are each utterance's own. The reply starts with the intent's name on a line of its own, then its slots as a
/// compact JSON object in the order listed.
/// </summary>
public sealed class SlmPrompt
{
    /// <summary>The answer naming none of the intents.</summary>
    public const string NoneOfThese = "none";

    private const string RequestMarker = "\u0000REQUEST\u0000";

    private SlmPrompt(string prefix, string suffix, bool chat)
    {
        Prefix = prefix;
        Suffix = suffix;
        Chat = chat;
    }

    /// <summary>Everything before the user's request (control tokens spelled out: tokenize with specials parsed).</summary>
    public string Prefix { get; }

    /// <summary>What follows the request, up to where the reply starts.</summary>
    public string Suffix { get; }

    /// <summary>False when the model has no chat template EdgeSlm knows and the prompt is raw text.</summary>
    public bool Chat { get; }

    /// <param name="slots">Each intent's slots in the order the reply lists them.</param>
    /// <param name="examples">A few requests per intent, from its examples and templates.</param>
    public static SlmPrompt Build(IntentDefinitions definitions, IReadOnlyList<string> intents, IReadOnlyDictionary<string, IReadOnlyList<string>> slots,
        IReadOnlyDictionary<string, IReadOnlyList<string>> examples, ChatTemplate? template)
    {
        var system = new StringBuilder();
        system.Append("You understand requests to a smart home assistant. Choose the one intent below that the request means, or ")
            .Append(NoneOfThese).Append(" when it means none of them. Reply with the intent's name alone on the first line, then on the second line its slots as a JSON object ")
            .Append("whose values are words of the request.\n\nIntents:\n");
        foreach (string intent in intents)
        {
            IntentDescription? description = definitions.Descriptions.GetValueOrDefault(intent);
            system.Append("- ").Append(intent);
            if (description?.Text is { Length: > 0 } text) system.Append(": ").Append(text.Trim());
            system.Append('\n');
            IReadOnlyList<string> intentSlots = slots.GetValueOrDefault(intent) ?? [];
            if (intentSlots.Count > 0)
            {
                system.Append("  slots: ");
                for (int i = 0; i < intentSlots.Count; i++)
                {
                    if (i > 0) system.Append(", ");
                    system.Append(intentSlots[i]);
                    if (description?.Slots.GetValueOrDefault(intentSlots[i]) is { Length: > 0 } slotText) system.Append(" (").Append(slotText.Trim()).Append(')');
                }
                system.Append('\n');
            }
            IReadOnlyList<string> intentExamples = examples.GetValueOrDefault(intent) ?? [];
            if (intentExamples.Count > 0)
            {
                system.Append("  for example: ").Append(string.Join("; ", intentExamples.Select(e => "\"" + e + "\""))).Append('\n');
            }
        }
        system.Append("- ").Append(NoneOfThese).Append(": anything else\n");
        if (template is null)
        {
            string raw = system + "\nRequest: " + RequestMarker + "\nIntent: ";
            return Split(raw, chat: false);
        }
        string formatted = template.Format([("system", system.ToString().TrimEnd()), ("user", RequestMarker)]);
        return Split(formatted, chat: true);
    }

    /// <summary>A few requests per intent for the prompt: the examples given first, then sentences of its templates.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> ExampleRequests(IntentDefinitions definitions, int perIntent, int seed)
    {
        var byIntent = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        void Add(IntentExample example)
        {
            if (example.Intent == IntentExample.OutOfScope) return;
            List<string> list = byIntent.TryGetValue(example.Intent, out List<string>? l) ? l : byIntent[example.Intent] = [];
            string text = example.Text.Trim();
            if (list.Count < perIntent && text.Length > 0 && !list.Contains(text, StringComparer.OrdinalIgnoreCase)) list.Add(text);
        }
        foreach (IntentExample example in definitions.Examples) Add(example);
        if (perIntent > 0)
        {
            foreach (IntentExample example in Templates.TemplateExpander.Expand(definitions.Library, perIntent, seed, problems: [])) Add(example);
        }
        return byIntent.ToDictionary(p => p.Key, p => (IReadOnlyList<string>)p.Value, StringComparer.Ordinal);
    }

    private static SlmPrompt Split(string text, bool chat)
    {
        int at = text.IndexOf(RequestMarker, StringComparison.Ordinal);
        return new SlmPrompt(text[..at], text[(at + RequestMarker.Length)..], chat);
    }
}
