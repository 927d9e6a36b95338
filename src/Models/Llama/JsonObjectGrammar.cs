using System.Text;

namespace EdgeSlm.Models.Llama;

/// <summary>One key of a <see cref="JsonObjectGrammar"/> and the strings its value may be (non-empty, unescaped).</summary>
public sealed record JsonGrammarKey(string Name, IReadOnlyList<string> Values);

/// <summary>
/// A small JSON grammar as a <see cref="ByteAutomaton"/>: one compact object (no spaces) whose keys are some of the
/// given ones, each at most once and in the given order, and whose values are strings, each one of its key's
/// allowed values (JSON-escaped). <c>{}</c> is allowed: a request may name none of its slots. The fixed order
/// keeps the automaton linear in the number of keys; a model asked for the keys in that order loses nothing.
/// </summary>
public static class JsonObjectGrammar
{
    public static ByteAutomaton Build(IReadOnlyList<JsonGrammarKey> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Select(k => k.Name).Distinct(StringComparer.Ordinal).Count() != keys.Count)
        {
            throw new ArgumentException("Keys must be distinct.", nameof(keys));
        }
        var automaton = new ByteAutomaton();
        int open = automaton.AddPath(ByteAutomaton.Start, "{");
        int done = automaton.AddState(accepting: true);
        automaton.AddPath(open, "}", done);
        var valueStart = new int[keys.Count];
        var valueEnd = new int[keys.Count];
        for (int i = 0; i < keys.Count; i++)
        {
            valueStart[i] = automaton.AddState();
            valueEnd[i] = automaton.AddState();
            int values = 0;
            foreach (string value in keys[i].Values.Distinct(StringComparer.Ordinal))
            {
                if (value.Length == 0) continue;
                automaton.AddPath(valueStart[i], Escape(value) + "\"", valueEnd[i]);
                values++;
            }
            if (values == 0)
            {
                throw new ArgumentException($"Key '{keys[i].Name}' has no non-empty value.", nameof(keys));
            }
            automaton.AddPath(valueEnd[i], "}", done);
        }
        for (int i = 0; i < keys.Count; i++)
        {
            string opening = "\"" + Escape(keys[i].Name) + "\":\"";
            automaton.AddPath(open, opening, valueStart[i]);
            for (int before = 0; before < i; before++)
            {
                int comma = automaton.Next(valueEnd[before], (byte)',');
                if (comma < 0) comma = automaton.AddPath(valueEnd[before], ",");
                automaton.AddPath(comma, opening, valueStart[i]);
            }
        }
        return automaton;
    }

    /// <summary>The text between a JSON string's quotes, as <see cref="Build"/> expects values to be written.</summary>
    public static string Escape(string text)
    {
        var escaped = new StringBuilder(text.Length + 2);
        foreach (char c in text)
        {
            switch (c)
            {
                case '"': escaped.Append("\\\""); break;
                case '\\': escaped.Append("\\\\"); break;
                case '\n': escaped.Append("\\n"); break;
                case '\r': escaped.Append("\\r"); break;
                case '\t': escaped.Append("\\t"); break;
                default:
                    if (c < ' ') escaped.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
                    else escaped.Append(c);
                    break;
            }
        }
        return escaped.ToString();
    }
}
