using System.Text;
using EdgeSlm.Intents.Slots;

namespace EdgeSlm.Intents.Templates;

/// <summary>An utterance that a template matches exactly: its intent and slots (spoken ones with their ranges, then fixed ones).</summary>
public sealed record TemplateMatch(string Intent, IReadOnlyList<SlotValue> Slots);

/// <summary>
/// Exact matching of utterances against every template of an <see cref="IntentLibrary"/>, as hassil's strict
/// matcher does: case and punctuation ignored, white space folded, skip words ("please", "can you") allowed between
/// any two words, the whole utterance consumed. <c>{list}</c> matches a value's spoken form, a range list a number in
/// digits or words within from..to, a wildcard any words. Slot ranges index the original utterance.
/// <para>
/// Templates are compiled once into a graph whose rules and lists are shared. Matching is a chart over character
/// positions of the normalised utterance: for each (node, position) the set of positions where the node can end is
/// computed once and memoised, so big expansion rules cost their size, not the number of sentences they expand to.
/// A second walk follows the chart to one derivation and reads its slots. When several templates match, the one
/// that matched the most template text wins (hassil's preference), then the one with the least wildcard text, then
/// the first loaded. Not checked: <c>requires_context</c> and <c>excludes_context</c> (IntentLibrary does not load them).
/// </para>
/// </summary>
public sealed class TemplateMatcher
{
    private const int MaxPermutationItems = 5;
    private const int MaxRuleDepth = 64;

    private readonly List<CompiledTemplate> _templates = [];
    private readonly Dictionary<string, RuleNode> _rules = new(StringComparer.Ordinal);
    // The block being compiled. Blocks with their own lists or rules compile everything under their own cache key,
    // since even a shared rule may reach a list the block redefines.
    private IntentTemplates? _scope;
    private string _scopeKey = "";
    private readonly Dictionary<string, CompiledList> _lists = new(StringComparer.Ordinal);
    private readonly string[] _skipWords;
    private readonly IntentLibrary _library;
    private int _nodeCount;

    /// <param name="problems">
    /// Null: a template that refers to an undefined list or rule throws <see cref="IntentFileException"/>. Otherwise
    /// such templates are left out and described here.
    /// </param>
    public TemplateMatcher(IntentLibrary library, List<string>? problems = null)
    {
        _library = library;
        _skipWords = library.SkipWords.Select(w => Normalize(w, null)).Where(w => w.Length > 0).Distinct(StringComparer.Ordinal)
            .OrderByDescending(w => w.Length).ToArray();
        var edge = new TextNode(NextId(), [" "]);
        foreach (IntentTemplates block in library.Templates)
        {
            _scope = block;
            _scopeKey = block.HasLocals ? $"{_templates.Count}:{block.Source}:{block.Intent}\u0001" : "";
            for (int i = 0; i < block.Sentences.Count; i++)
            {
                try
                {
                    Node body = Compile(block.Sentences[i], 0);
                    // White space (and skip words) may come before and after the sentence.
                    _templates.Add(new CompiledTemplate(block, Pair(edge, Pair(body, edge)), RequiredText(body, []).ToArray()));
                }
                catch (IntentFileException e) when (problems is not null)
                {
                    problems.Add($"{block.Source}: \"{block.SentenceTexts[i]}\": {e.Message}");
                }
            }
        }
    }

    /// <summary>The number of templates that can match (all of the library's, less those reported as problems).</summary>
    public int TemplateCount => _templates.Count;

    /// <summary>The best template match of <paramref name="utterance"/>, or null when no template matches all of it.</summary>
    public TemplateMatch? Match(string utterance)
    {
        var origin = new List<int>(utterance.Length);
        string text = Normalize(utterance, origin);
        var chart = new Chart(this, utterance, text, origin);
        CompiledTemplate? best = null;
        List<SlotValue>? bestSlots = null;
        int bestName = 0, bestLiteral = -1, bestWildcard = 0;
        foreach (CompiledTemplate template in _templates)
        {
            if (!template.Required.All(clause => clause.Any(word => text.Contains(word, StringComparison.Ordinal)))
                || !Contains(chart.Ends(template.Root, 0), text.Length))
            {
                continue;
            }
            var derivation = new Derivation();
            if (!chart.Derive(template.Root, 0, text.Length, derivation))
            {
                continue;
            }
            int name = derivation.Slots.FirstOrDefault(s => s.Slot == "name" && s.Kind != SlotKind.Wildcard)?.Raw.Length ?? 0;
            if (best is null || name > bestName
                || (name == bestName && (derivation.Wildcard < bestWildcard || (derivation.Wildcard == bestWildcard && derivation.Literal > bestLiteral))))
            {
                (best, bestSlots, bestName, bestLiteral, bestWildcard) = (template, derivation.Slots, name, derivation.Literal, derivation.Wildcard);
            }
        }
        if (best is null || bestSlots is null)
        {
            return null;
        }
        foreach ((string slot, string value) in best.Block.FixedSlots)
        {
            if (!bestSlots.Any(s => s.Slot == slot))
            {
                bestSlots.Add(new SlotValue(slot, value, "", 0, 0));
            }
        }
        return new TemplateMatch(best.Block.Intent, bestSlots);
    }

    /// <summary>
    /// Lower case, typographic apostrophes made plain, punctuation other than ' - / % &amp; _ # @ turned into space
    /// (but '.', ',' and ':' kept between digits: "3.5", "6:30"), white space folded to one space and trimmed.
    /// <paramref name="origin"/>, when given, receives the index in <paramref name="text"/> of every output char.
    /// </summary>
    internal static string Normalize(string text, List<int>? origin)
    {
        var result = new StringBuilder(text.Length);
        bool space = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = char.ToLowerInvariant(text[i]);
            if (c == '\u2019') c = '\'';
            bool betweenDigits = i > 0 && i + 1 < text.Length && char.IsAsciiDigit(text[i - 1]) && char.IsAsciiDigit(text[i + 1]);
            bool dropped = char.IsPunctuation(c) && "'-/%&_#@".IndexOf(c) < 0 && !(c is '.' or ',' or ':' && betweenDigits);
            if (char.IsWhiteSpace(c) || dropped)
            {
                space = result.Length > 0;
                continue;
            }
            if (space)
            {
                result.Append(' ');
                origin?.Add(i);
                space = false;
            }
            result.Append(c);
            origin?.Add(i);
        }
        return result.ToString();
    }

    private int NextId() => _nodeCount++;

    private Node Pair(Node head, Node tail) => new PairNode(NextId(), head, tail);

    private Node Compile(TemplateExpression expression, int depth)
    {
        switch (expression)
        {
            case TemplateText text:
                return new TextNode(NextId(), Segments(text.Text));
            case TemplateSequence sequence:
                if (sequence.Items.Count == 0) return new TextNode(NextId(), []);
                Node node = Compile(sequence.Items[^1], depth);
                for (int i = sequence.Items.Count - 2; i >= 0; i--) node = Pair(Compile(sequence.Items[i], depth), node);
                return node;
            case TemplateAlternatives alternatives:
                return new ChoiceNode(NextId(), alternatives.Options.Select(o => Compile(o, depth)).ToArray(), alternatives.Optional);
            case TemplatePermutation permutation:
                if (permutation.Items.Count > MaxPermutationItems)
                {
                    throw new IntentFileException($"a permutation of {permutation.Items.Count} items (at most {MaxPermutationItems})");
                }
                Node[] items = permutation.Items.Select(i => Compile(i, depth)).ToArray();
                var orders = new List<Node>();
                foreach (int[] order in Orders(items.Length))
                {
                    Node ordered = new TextNode(NextId(), [" "]);
                    for (int k = order.Length - 1; k >= 0; k--) ordered = Pair(new TextNode(NextId(), [" "]), Pair(items[order[k]], ordered));
                    orders.Add(ordered);
                }
                return new ChoiceNode(NextId(), orders.ToArray(), optional: false);
            case TemplateRuleReference reference:
                return Rule(reference.Rule, depth);
            case TemplateListReference reference:
                return new ListNode(NextId(), reference.Slot, List(reference.List, depth));
            default:
                throw new IntentFileException($"unknown template part {expression.GetType().Name}");
        }
    }

    private RuleNode Rule(string name, int depth)
    {
        if (_rules.TryGetValue(_scopeKey + name, out RuleNode? existing))
        {
            return existing;
        }
        if (!_library.TryGetRule(_scope, name, out TemplateSequence? body))
        {
            throw new IntentFileException($"expansion rule <{name}> is not defined");
        }
        if (depth > MaxRuleDepth)
        {
            throw new IntentFileException($"expansion rules nest more than {MaxRuleDepth} deep at <{name}>");
        }
        // Registered before its body is compiled, so a rule that refers to itself ends up as a cycle in the graph
        // (the chart treats a cycle as no match) instead of endless compilation.
        var rule = new RuleNode(NextId(), name);
        _rules[_scopeKey + name] = rule;
        try
        {
            rule.Body = Compile(body, depth + 1);
        }
        catch
        {
            _rules.Remove(_scopeKey + name);
            throw;
        }
        return rule;
    }

    private CompiledList List(string name, int depth)
    {
        if (_lists.TryGetValue(_scopeKey + name, out CompiledList? existing))
        {
            return existing;
        }
        if (!_library.TryGetList(_scope, name, out SlotList? list))
        {
            throw new IntentFileException($"list {{{name}}} is not defined (runtime lists such as area and name come from a fixtures file)");
        }
        // A list is registered only once its values are compiled, so a value that refers to its own list recurses.
        if (depth > MaxRuleDepth)
        {
            throw new IntentFileException($"lists and expansion rules nest more than {MaxRuleDepth} deep at {{{name}}} (a list value refers to its own list?)");
        }
        var compiled = new CompiledList(list);
        for (int i = 0; i < list.Values.Count; i++)
        {
            ListValue value = list.Values[i];
            if (value.Spoken.Items.All(item => item is TemplateText))
            {
                string spoken = Normalize(string.Concat(value.Spoken.Items.Cast<TemplateText>().Select(t => t.Text)), null);
                if (spoken.Length == 0) continue;
                string first = FirstWord(spoken, 0);
                if (!compiled.PlainByFirstWord.TryGetValue(first, out List<(string, int)>? values))
                {
                    compiled.PlainByFirstWord[first] = values = [];
                }
                values.Add((spoken, i));
            }
            else
            {
                compiled.Spoken.Add((Compile(value.Spoken, depth + 1), i));
            }
        }
        _lists[_scopeKey + name] = compiled;
        return compiled;
    }

    /// <summary>
    /// What every match of <paramref name="node"/> contains, as clauses: each clause is template words of which a
    /// matching utterance contains at least one. "(turn|switch) on" gives [turn, switch] and [on]. List values do
    /// not count.
    /// </summary>
    private static List<string[]> RequiredText(Node node, HashSet<int> visiting)
    {
        switch (node)
        {
            case TextNode text:
                return text.Segments.Where(s => s != " ").Select(s => new[] { s }).ToList();
            case PairNode pair:
                List<string[]> both = RequiredText(pair.Head, visiting);
                both.AddRange(RequiredText(pair.Tail, visiting));
                return both;
            case ChoiceNode { Optional: false } choice:
                // Each option's most selective clause; the utterance holds one of their words.
                var words = new HashSet<string>(StringComparer.Ordinal);
                foreach (Node option in choice.Options)
                {
                    List<string[]> clauses = RequiredText(option, visiting);
                    if (clauses.Count == 0) return [];
                    words.UnionWith(clauses.OrderBy(c => c.Length).ThenByDescending(c => c.Max(w => w.Length)).First());
                }
                return words.Count > 0 ? [words.ToArray()] : [];
            case RuleNode { Body: not null } rule when visiting.Add(rule.Id):
                List<string[]> body = RequiredText(rule.Body, visiting);
                visiting.Remove(rule.Id);
                return body;
            default:
                return [];
        }
    }

    private static string[] Segments(string text)
    {
        string normalized = Normalize(text, null);
        var segments = new List<string>();
        if (text.Length > 0 && char.IsWhiteSpace(text[0])) segments.Add(" ");
        foreach (string word in normalized.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (segments.Count > 0 && segments[^1] != " ") segments.Add(" ");
            segments.Add(word);
        }
        if (text.Length > 0 && char.IsWhiteSpace(text[^1]) && (segments.Count == 0 || segments[^1] != " ")) segments.Add(" ");
        return segments.ToArray();
    }

    private static IEnumerable<int[]> Orders(int count)
    {
        if (count == 0)
        {
            yield return [];
            yield break;
        }
        foreach (int[] rest in Orders(count - 1))
        {
            for (int position = 0; position <= rest.Length; position++)
            {
                yield return [.. rest[..position], count - 1, .. rest[position..]];
            }
        }
    }

    private static string FirstWord(string text, int start)
    {
        int end = text.IndexOf(' ', start);
        return end < 0 ? text[start..] : text[start..end];
    }

    private static bool Contains(int[] sorted, int value) => Array.BinarySearch(sorted, value) >= 0;

    private abstract class Node(int id)
    {
        public int Id { get; } = id;
    }

    /// <summary>Literal words and spaces (" "); a space matches a word boundary and any skip words after it.</summary>
    private sealed class TextNode(int id, string[] segments) : Node(id)
    {
        public string[] Segments { get; } = segments;
        public int Letters { get; } = segments.Where(s => s != " ").Sum(s => s.Length);
    }

    /// <summary>A sequence as a chain of pairs, so every suffix of a sequence has its own chart entries.</summary>
    private sealed class PairNode(int id, Node head, Node tail) : Node(id)
    {
        public Node Head { get; } = head;
        public Node Tail { get; } = tail;
    }

    private sealed class ChoiceNode(int id, Node[] options, bool optional) : Node(id)
    {
        public Node[] Options { get; } = options;
        public bool Optional { get; } = optional;
    }

    private sealed class RuleNode(int id, string name) : Node(id)
    {
        public string Name { get; } = name;
        public Node? Body { get; set; }
    }

    private sealed class ListNode(int id, string slot, CompiledList list) : Node(id)
    {
        public string Slot { get; } = slot;
        public CompiledList List { get; } = list;
    }

    private sealed class CompiledList(SlotList source)
    {
        public SlotList Source { get; } = source;
        /// <summary>Values spoken as plain text, by their first word: (normalised text, index of the value).</summary>
        public Dictionary<string, List<(string Text, int Index)>> PlainByFirstWord { get; } = new(StringComparer.Ordinal);
        /// <summary>Values spoken as templates ("light[s]", "(closed|shut)").</summary>
        public List<(Node Spoken, int Index)> Spoken { get; } = [];
    }

    /// <param name="Required">Template text every match of the template contains: a cheap test that rules most templates out.</param>
    private sealed record CompiledTemplate(IntentTemplates Block, Node Root, string[][] Required);

    /// <summary>What one derivation captured and how much of it was template text or wildcard text.</summary>
    private sealed class Derivation
    {
        public List<SlotValue> Slots { get; } = [];
        public int Literal { get; set; }
        public int Wildcard { get; set; }
    }

    /// <summary>The memoised end positions of nodes over one normalised utterance.</summary>
    private sealed class Chart
    {
        private static readonly int[] None = [];
        private readonly TemplateMatcher _matcher;
        private readonly string _original;
        private readonly string _text;
        private readonly List<int> _origin;
        private readonly Dictionary<long, int[]> _ends = [];
        private readonly int[]?[] _spaceEnds;
        private readonly Dictionary<int, List<(int End, double Value)>> _numbers = [];

        public Chart(TemplateMatcher matcher, string original, string text, List<int> origin)
        {
            _matcher = matcher;
            _original = original;
            _text = text;
            _origin = origin;
            _spaceEnds = new int[]?[text.Length + 1];
            List<Word> words = Words.Split(text);
            var ends = new List<(int LastWord, double Value)>();
            for (int i = 0; i < words.Count; i++)
            {
                ends.Clear();
                EnglishNumbers.EndsAt(words, i, ends);
                if (ends.Count > 0)
                {
                    _numbers[words[i].Start] = ends.Select(e => (words[e.LastWord].End, e.Value)).ToList();
                }
            }
        }

        private bool WordStart(int p) => p == 0 || (p <= _text.Length && _text[p - 1] == ' ');

        private bool WordEnd(int p) => p == _text.Length || !char.IsLetterOrDigit(_text[p]);

        public int[] Ends(Node node, int p)
        {
            long key = ((long)node.Id << 32) | (uint)p;
            if (_ends.TryGetValue(key, out int[]? cached))
            {
                return cached;
            }
            // A node reached again from itself before it is finished (a recursive rule) matches nothing there.
            _ends[key] = None;
            int[] result = node switch
            {
                TextNode text => TextEnds(text, p),
                PairNode pair => Union(Ends(pair.Head, p).Select(e => Ends(pair.Tail, e))),
                ChoiceNode choice => Union(choice.Options.Select(o => Ends(o, p)).Append(choice.Optional ? [p] : None)),
                RuleNode rule => rule.Body is null ? None : Ends(rule.Body, p),
                ListNode list => ListEnds(list.List, p),
                _ => None,
            };
            _ends[key] = result;
            return result;
        }

        private int[] TextEnds(TextNode node, int p)
        {
            int[] positions = [p];
            foreach (string segment in node.Segments)
            {
                if (segment == " ")
                {
                    positions = positions.Length == 1 ? SpaceEnds(positions[0]) : Union(positions.Select(SpaceEnds));
                }
                else
                {
                    // A new array: SpaceEnds hands out its cached arrays.
                    var next = new int[positions.Length];
                    int kept = 0;
                    foreach (int start in positions)
                    {
                        if (_text.AsSpan(start).StartsWith(segment, StringComparison.Ordinal)) next[kept++] = start + segment.Length;
                    }
                    positions = kept == next.Length ? next : next[..kept];
                }
                if (positions.Length == 0) return None;
            }
            return positions;
        }

        /// <summary>Where a template space starting at <paramref name="p"/> can end: past one space, or at a word boundary, then past any skip words.</summary>
        private int[] SpaceEnds(int p)
        {
            if (_spaceEnds[p] is int[] cached) return cached;
            int start = p < _text.Length && _text[p] == ' ' ? p + 1 : WordStart(p) || p == _text.Length ? p : -1;
            var result = new SortedSet<int>();
            if (start >= 0)
            {
                var pending = new Stack<int>();
                pending.Push(start);
                while (pending.Count > 0)
                {
                    int q = pending.Pop();
                    if (!result.Add(q)) continue;
                    foreach (string skip in _matcher._skipWords)
                    {
                        int end = q + skip.Length;
                        if (_text.AsSpan(q).StartsWith(skip, StringComparison.Ordinal) && (end == _text.Length || _text[end] == ' '))
                        {
                            pending.Push(end == _text.Length ? end : end + 1);
                        }
                    }
                }
            }
            return _spaceEnds[p] = result.ToArray();
        }

        private int[] ListEnds(CompiledList list, int p)
        {
            if (!WordStart(p) || p >= _text.Length) return None;
            SlotList source = list.Source;
            if (source.Range is NumberRange range)
            {
                return _numbers.TryGetValue(p, out var numbers)
                    ? numbers.Where(n => InRange(range, n.Value)).Select(n => n.End).Distinct().Order().ToArray()
                    : None;
            }
            if (source.Wildcard)
            {
                var ends = new List<int>();
                for (int e = p + 1; e <= _text.Length; e++)
                {
                    if (e == _text.Length || _text[e] == ' ') ends.Add(e);
                }
                return ends.ToArray();
            }
            var found = new List<int>();
            if (list.PlainByFirstWord.TryGetValue(FirstWord(_text, p), out var plain))
            {
                foreach ((string value, _) in plain)
                {
                    int end = p + value.Length;
                    if (_text.AsSpan(p).StartsWith(value, StringComparison.Ordinal) && WordEnd(end)) found.Add(end);
                }
            }
            foreach ((Node spoken, _) in list.Spoken)
            {
                found.AddRange(Ends(spoken, p).Where(e => e > p && WordEnd(e)));
            }
            return found.Distinct().Order().ToArray();
        }

        private static bool InRange(NumberRange range, double value) =>
            value >= range.From && value <= range.To
            // IntentLibrary does not load `fractions`; Home Assistant gives them (halves) to temperatures only.
            && (value % 1 == 0 || (range.Type == "temperature" && value * 2 % 1 == 0));

        /// <summary>Follows the chart from <paramref name="p"/> to <paramref name="target"/> along one derivation, capturing its slots.</summary>
        public bool Derive(Node node, int p, int target, Derivation derivation)
        {
            switch (node)
            {
                case TextNode text:
                    derivation.Literal += text.Letters;
                    return true;
                case PairNode pair:
                    int[] heads = Ends(pair.Head, p);
                    // Longest first (a list value, a number), but a wildcard takes as little as it can.
                    bool lazy = pair.Head is ListNode { List.Source.Wildcard: true };
                    for (int n = 0; n < heads.Length; n++)
                    {
                        int e = heads[lazy ? n : heads.Length - 1 - n];
                        if (Contains(Ends(pair.Tail, e), target))
                        {
                            int slots = derivation.Slots.Count, literal = derivation.Literal, wildcard = derivation.Wildcard;
                            if (Derive(pair.Head, p, e, derivation) && Derive(pair.Tail, e, target, derivation)) return true;
                            derivation.Slots.RemoveRange(slots, derivation.Slots.Count - slots);
                            (derivation.Literal, derivation.Wildcard) = (literal, wildcard);
                        }
                    }
                    return false;
                case ChoiceNode choice:
                    foreach (Node option in choice.Options)
                    {
                        if (Contains(Ends(option, p), target))
                        {
                            int slots = derivation.Slots.Count, literal = derivation.Literal, wildcard = derivation.Wildcard;
                            if (Derive(option, p, target, derivation)) return true;
                            derivation.Slots.RemoveRange(slots, derivation.Slots.Count - slots);
                            (derivation.Literal, derivation.Wildcard) = (literal, wildcard);
                        }
                    }
                    return choice.Optional && p == target;
                case RuleNode rule:
                    return rule.Body is not null && Derive(rule.Body, p, target, derivation);
                case ListNode list:
                    SlotValue? value = Capture(list, p, target, derivation);
                    if (value is null) return false;
                    derivation.Slots.Add(value);
                    return true;
                default:
                    return false;
            }
        }

        private SlotValue? Capture(ListNode node, int p, int target, Derivation derivation)
        {
            SlotList source = node.List.Source;
            int start = _origin[p], end = _origin[target - 1] + 1;
            string raw = _original[start..end];
            if (source.Range is NumberRange range)
            {
                foreach ((int numberEnd, double number) in _numbers.GetValueOrDefault(p) ?? [])
                {
                    if (numberEnd == target && InRange(range, number))
                    {
                        return new SlotValue(node.Slot, SlotValue.FormatNumber(number), raw, start, end,
                            range.Type == "percentage" ? SlotKind.Percentage : SlotKind.Number, number);
                    }
                }
                return null;
            }
            if (source.Wildcard)
            {
                derivation.Wildcard += target - p;
                return new SlotValue(node.Slot, raw, raw, start, end, SlotKind.Wildcard);
            }
            int best = int.MaxValue;
            if (node.List.PlainByFirstWord.TryGetValue(FirstWord(_text, p), out var plain))
            {
                foreach ((string value, int index) in plain)
                {
                    if (value.Length == target - p && _text.AsSpan(p).StartsWith(value, StringComparison.Ordinal)) best = Math.Min(best, index);
                }
            }
            foreach ((Node spoken, int index) in node.List.Spoken)
            {
                if (index < best && Contains(Ends(spoken, p), target)) best = index;
            }
            return best == int.MaxValue ? null : new SlotValue(node.Slot, source.Values[best].Value, raw, start, end);
        }

        private static int[] Union(IEnumerable<int[]> sets)
        {
            int[]? single = null;
            SortedSet<int>? many = null;
            foreach (int[] set in sets)
            {
                if (set.Length == 0) continue;
                if (single is null && many is null)
                {
                    single = set;
                    continue;
                }
                many ??= new SortedSet<int>(single!);
                many.UnionWith(set);
            }
            return many is not null ? many.ToArray() : single ?? None;
        }
    }
}
