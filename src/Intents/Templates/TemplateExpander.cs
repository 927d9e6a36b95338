using System.Globalization;
using System.Text;
using EdgeSlm.Intents.Examples;

namespace EdgeSlm.Intents.Templates;

/// <summary>
/// Turns templates into training sentences by random walks through each template (a seeded choice at every
/// alternative, optional, list and permutation), deduplicated and capped per template, so lists of thousands of
/// values or deeply nested rules cannot explode. Each list value becomes a slot span in the sentence.
/// </summary>
public static class TemplateExpander
{
    private const int MaxRuleDepth = 32;

    // Stand-ins for wildcard lists (a shopping item, a song, a message): any text may go there.
    private static readonly string[] WildcardSamples =
        ["milk", "eggs and bread", "the news", "some jazz", "dinner is ready", "bohemian rhapsody", "batteries", "call the plumber"];

    /// <param name="problems">
    /// Null: a template that refers to an undefined list or rule throws. Otherwise such templates are skipped and
    /// described here (Home Assistant's own English files refer to a rule, &lt;percent&gt;, that they never define).
    /// </param>
    public static List<IntentExample> Expand(IntentLibrary library, int perTemplate = 20, int seed = 20241126, List<string>? problems = null)
    {
        var random = new Random(seed);
        var result = new List<IntentExample>();
        foreach (IntentTemplates block in library.Templates)
        {
            for (int i = 0; i < block.Sentences.Count; i++)
            {
                var seen = new HashSet<string>(StringComparer.Ordinal);
                var sentences = new List<IntentExample>();
                try
                {
                    for (int attempt = 0; attempt < perTemplate * 4 && seen.Count < perTemplate; attempt++)
                    {
                        var walk = new Walk(library, block, random, block.Source, block.SentenceTexts[i]);
                        walk.Realize(block.Sentences[i], 0);
                        (string text, List<SlotSpan> slots) = walk.Finish();
                        if (text.Length > 0 && seen.Add(text))
                        {
                            sentences.Add(new IntentExample(text, block.Intent, slots));
                        }
                    }
                }
                catch (IntentFileException e) when (problems is not null)
                {
                    problems.Add(e.Message);
                    continue;
                }
                result.AddRange(sentences);
            }
        }
        return result;
    }

    private sealed class Walk(IntentLibrary library, IntentTemplates block, Random random, string source, string template)
    {
        private readonly StringBuilder _text = new();
        private readonly List<SlotSpan> _slots = [];

        public void Realize(TemplateExpression expression, int depth)
        {
            switch (expression)
            {
                case TemplateText text:
                    Append(text.Text);
                    break;
                case TemplateSequence sequence:
                    foreach (TemplateExpression item in sequence.Items) Realize(item, depth);
                    break;
                case TemplateAlternatives alternatives:
                    int choice = random.Next(alternatives.Options.Count + (alternatives.Optional ? 1 : 0));
                    if (choice < alternatives.Options.Count) Realize(alternatives.Options[choice], depth);
                    break;
                case TemplatePermutation permutation:
                    foreach (TemplateExpression item in permutation.Items.OrderBy(_ => random.Next()))
                    {
                        Append(" ");
                        Realize(item, depth);
                        Append(" ");
                    }
                    break;
                case TemplateRuleReference rule:
                    if (depth >= MaxRuleDepth)
                    {
                        throw new IntentFileException($"{source}: expansion rules nest more than {MaxRuleDepth} deep in \"{template}\" (a rule refers to itself?)");
                    }
                    Realize(library.TryGetRule(block, rule.Rule, out TemplateSequence? body) ? body
                        : throw new IntentFileException($"{source}: expansion rule <{rule.Rule}> used in \"{template}\" is not defined"), depth + 1);
                    break;
                case TemplateListReference reference:
                    RealizeList(reference, depth);
                    break;
            }
        }

        private void RealizeList(TemplateListReference reference, int depth)
        {
            if (!library.TryGetList(block, reference.List, out SlotList? list))
            {
                throw new IntentFileException($"{source}: list {{{reference.List}}} used in \"{template}\" is not defined (runtime lists such as area and name come from a fixtures file)");
            }
            if (depth >= MaxRuleDepth)
            {
                throw new IntentFileException($"{source}: lists and expansion rules nest more than {MaxRuleDepth} deep in \"{template}\" (a list value refers to its own list?)");
            }
            int start = _text.Length;
            string value;
            if (list.Range is NumberRange range)
            {
                // In 64 bits: from -2e9 to 2e9 spans more than an int.
                long steps = ((long)range.To - range.From) / range.Step;
                int number = (int)(range.From + random.NextInt64(steps + 1) * range.Step);
                value = number.ToString(CultureInfo.InvariantCulture);
                Append(range.Type == "percentage" ? value + "%" : value);
            }
            else if (list.Wildcard)
            {
                value = WildcardSamples[random.Next(WildcardSamples.Length)];
                Append(value);
            }
            else if (list.Values.Count > 0)
            {
                ListValue chosen = list.Values[random.Next(list.Values.Count)];
                Realize(chosen.Spoken, depth + 1);
                value = chosen.Value;
            }
            else
            {
                throw new IntentFileException($"{source}: list {{{reference.List}}} used in \"{template}\" has no values");
            }
            // The span covers what was spoken, without the spaces around it.
            while (start < _text.Length && _text[start] == ' ') start++;
            int end = _text.Length;
            while (end > start && _text[end - 1] == ' ') end--;
            if (end > start) _slots.Add(new SlotSpan(reference.Slot, value, start, end));
        }

        /// <summary>Appends text with runs of white space folded to one space and none at the start.</summary>
        private void Append(string text)
        {
            foreach (char c in text)
            {
                if (char.IsWhiteSpace(c))
                {
                    if (_text.Length > 0 && _text[^1] != ' ') _text.Append(' ');
                }
                else
                {
                    _text.Append(c);
                }
            }
        }

        public (string Text, List<SlotSpan> Slots) Finish()
        {
            while (_text.Length > 0 && _text[^1] == ' ') _text.Length--;
            return (_text.ToString(), _slots.Where(s => s.End <= _text.Length).ToList());
        }
    }
}
