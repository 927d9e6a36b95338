namespace EdgeSlm.Intents.Descriptions;

/// <summary>
/// What an intent and its slots mean, in words: the language model's prompt lists them, so an intent defined only
/// by its name and description can still be recognised. YAML: <c>description</c> and
/// <c>slots: {name: {description}}</c> beside an intent's <c>data</c>; JSONL: a line without <c>text</c>,
/// <c>{"intent", "description", "slots": {"name": {"description"}}}</c>.
/// </summary>
public sealed record IntentDescription(string Intent, string? Text, IReadOnlyDictionary<string, string> Slots)
{
    /// <summary>Two descriptions of the same intent (from several files): the later text wins, slots are merged.</summary>
    public IntentDescription Merge(IntentDescription later)
    {
        var slots = new Dictionary<string, string>(Slots, StringComparer.Ordinal);
        foreach ((string slot, string text) in later.Slots) slots[slot] = text;
        return new IntentDescription(Intent, later.Text ?? Text, slots);
    }
}
