using System.Text;

namespace EdgeSlm.Intents.Templates;

/// <summary>A parsed sentence template (hassil syntax): text, alternatives, optionals, permutations, list and rule references.</summary>
public abstract record TemplateExpression;

public sealed record TemplateText(string Text) : TemplateExpression;

public sealed record TemplateSequence(IReadOnlyList<TemplateExpression> Items) : TemplateExpression;

/// <summary><c>(a|b)</c>, or <c>[a|b]</c> when <paramref name="Optional"/> (the empty choice is allowed).</summary>
public sealed record TemplateAlternatives(IReadOnlyList<TemplateExpression> Options, bool Optional) : TemplateExpression;

/// <summary><c>(a; b)</c>: every order of the items, separated by spaces.</summary>
public sealed record TemplatePermutation(IReadOnlyList<TemplateExpression> Items) : TemplateExpression;

/// <summary><c>{list}</c> or <c>{list:slot}</c>: a value of the list, captured as the slot.</summary>
public sealed record TemplateListReference(string List, string Slot) : TemplateExpression;

/// <summary><c>&lt;rule&gt;</c>: an expansion rule, itself a template.</summary>
public sealed record TemplateRuleReference(string Rule) : TemplateExpression;

/// <summary>A template that cannot be parsed; the message quotes it and says where.</summary>
public sealed class TemplateFormatException(string message) : Exception(message);

/// <summary>Parses hassil templates by recursive descent.</summary>
public static class TemplateParser
{
    /// <summary>Groups inside groups: Home Assistant's templates nest 4 deep; a limit keeps the recursion off the stack's end.</summary>
    public const int MaxNesting = 32;

    public static TemplateSequence Parse(string template)
    {
        // A whole template may itself be alternatives: "(a b)|(c d)".
        int position = 0;
        var options = new List<TemplateExpression>();
        while (true)
        {
            options.Add(ParseSequence(template, ref position, 0));
            if (position >= template.Length)
            {
                break;
            }
            if (template[position] != '|')
            {
                throw Error(template, position, $"unexpected '{template[position]}'");
            }
            position++;
        }
        return options.Count == 1 ? (TemplateSequence)options[0] : new TemplateSequence([new TemplateAlternatives(options, Optional: false)]);
    }

    private static TemplateSequence ParseSequence(string template, ref int position, int nesting)
    {
        var items = new List<TemplateExpression>();
        var text = new StringBuilder();
        void Flush()
        {
            if (text.Length > 0)
            {
                items.Add(new TemplateText(text.ToString()));
                text.Clear();
            }
        }
        while (position < template.Length)
        {
            char c = template[position];
            switch (c)
            {
                case ')' or ']' or '|' or ';':
                    Flush();
                    return new TemplateSequence(items);
                case '(' or '[':
                    Flush();
                    items.Add(ParseGroup(template, ref position, nesting + 1));
                    break;
                case '{':
                    Flush();
                    string list = ReadName(template, ref position, '}');
                    int colon = list.IndexOf(':');
                    items.Add(colon < 0 ? new TemplateListReference(list, list) : new TemplateListReference(list[..colon], list[(colon + 1)..]));
                    break;
                case '<':
                    Flush();
                    items.Add(new TemplateRuleReference(ReadName(template, ref position, '>')));
                    break;
                case '\\' when position + 1 < template.Length:
                    text.Append(template[position + 1]);
                    position += 2;
                    break;
                default:
                    text.Append(c);
                    position++;
                    break;
            }
        }
        Flush();
        return new TemplateSequence(items);
    }

    private static TemplateExpression ParseGroup(string template, ref int position, int nesting)
    {
        int start = position;
        if (nesting > MaxNesting)
        {
            throw Error(template, start, $"groups nest more than {MaxNesting} deep");
        }
        char open = template[position++];
        char close = open == '(' ? ')' : ']';
        var options = new List<TemplateExpression>();
        bool permutation = false, alternatives = false;
        while (true)
        {
            options.Add(ParseSequence(template, ref position, nesting));
            if (position >= template.Length)
            {
                throw Error(template, start, $"'{open}' is never closed");
            }
            char c = template[position++];
            if (c == close)
            {
                break;
            }
            if (c == '|') alternatives = true;
            else if (c == ';') permutation = true;
            else throw Error(template, position - 1, $"'{c}' closes a group opened by '{open}'");
        }
        if (permutation && (alternatives || open == '['))
        {
            throw Error(template, start, "a group mixes ';' (permutation) with '|' or brackets");
        }
        return permutation ? new TemplatePermutation(options) : new TemplateAlternatives(options, Optional: open == '[');
    }

    private static string ReadName(string template, ref int position, char close)
    {
        int end = template.IndexOf(close, position + 1);
        if (end < 0)
        {
            throw Error(template, position, $"'{template[position]}' is never closed");
        }
        string name = template[(position + 1)..end].Trim();
        if (name.Length == 0)
        {
            throw Error(template, position, "an empty reference");
        }
        position = end + 1;
        return name;
    }

    private static TemplateFormatException Error(string template, int position, string what) =>
        new($"template \"{template}\": {what} at character {position + 1}");
}
