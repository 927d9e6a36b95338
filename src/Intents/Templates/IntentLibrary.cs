using EdgeSlm.Intents.Descriptions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace EdgeSlm.Intents.Templates;

/// <summary>A value of a list: the text spoken (itself a template) and the slot value it stands for.</summary>
public sealed record ListValue(TemplateSequence Spoken, string Value);

/// <summary>A slot list: fixed values, a numeric range, or a wildcard (any text).</summary>
public sealed record SlotList(string Name, IReadOnlyList<ListValue> Values, NumberRange? Range, bool Wildcard);

public sealed record NumberRange(int From, int To, int Step, string Type);

/// <summary>One block of an intent's data: templates sharing fixed slots.</summary>
public sealed record IntentTemplates(string Intent, IReadOnlyList<TemplateSequence> Sentences, IReadOnlyList<string> SentenceTexts,
    IReadOnlyDictionary<string, string> FixedSlots, string Source)
{
    private static readonly Dictionary<string, SlotList> NoLists = new(StringComparer.Ordinal);
    private static readonly Dictionary<string, TemplateSequence> NoRules = new(StringComparer.Ordinal);

    /// <summary>Lists defined inside this block: visible to its sentences only, and before the file's lists.</summary>
    public IReadOnlyDictionary<string, SlotList> LocalLists { get; init; } = NoLists;

    /// <summary>Expansion rules defined inside this block, likewise.</summary>
    public IReadOnlyDictionary<string, TemplateSequence> LocalRules { get; init; } = NoRules;

    public bool HasLocals => LocalLists.Count > 0 || LocalRules.Count > 0;
}

/// <summary>An intents file (or several) that cannot be used; the message names the file and the place.</summary>
public sealed class IntentFileException(string message) : Exception(message);

/// <summary>
/// Intents defined as Home Assistant defines them (hassil YAML): <c>intents: {Name: {data: [{sentences, slots}]}}</c>
/// files, the newer per-intent folders (<c>Name/combo.yaml</c> with a top-level <c>data:</c>), shared <c>lists</c>,
/// <c>expansion_rules</c> and <c>skip_words</c>, and fixture files whose areas, floors and entities supply the
/// runtime lists <c>{area}</c>, <c>{floor}</c> and <c>{name}</c>. Everything is parsed at load, so a bad
/// template or name fails here with its file, not at the first utterance.
/// </summary>
public sealed class IntentLibrary
{
    private readonly Dictionary<string, SlotList> _lists = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TemplateSequence> _rules = new(StringComparer.Ordinal);
    private readonly List<IntentTemplates> _templates = [];
    private readonly List<string> _skipWords = [];
    private readonly Dictionary<string, IntentDescription> _descriptions = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, SlotList> Lists => _lists;
    public IReadOnlyDictionary<string, TemplateSequence> ExpansionRules => _rules;
    public IReadOnlyList<IntentTemplates> Templates => _templates;
    public IReadOnlyList<string> SkipWords => _skipWords;
    /// <summary>Intents with templates, and intents only described.</summary>
    public IEnumerable<string> IntentNames => _templates.Select(t => t.Intent).Concat(_descriptions.Keys).Distinct(StringComparer.Ordinal);

    /// <summary>The <c>description</c>s given beside intents' <c>data</c>.</summary>
    public IReadOnlyDictionary<string, IntentDescription> Descriptions => _descriptions;

    /// <summary>Loads files and folders (every *.yaml below a folder; files starting with '_fixtures' as fixtures).</summary>
    public static IntentLibrary Load(params string[] paths)
    {
        var library = new IntentLibrary();
        foreach (string path in paths)
        {
            IEnumerable<string> files = Directory.Exists(path)
                ? Directory.EnumerateFiles(path, "*.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                : [path];
            foreach (string file in files)
            {
                library.LoadFile(file, Path.GetFileName(Path.GetDirectoryName(file)) ?? "");
            }
        }
        return library;
    }

    /// <summary>The list <paramref name="name"/> as the sentences of <paramref name="block"/> see it: local first.</summary>
    public bool TryGetList(IntentTemplates? block, string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out SlotList? list) =>
        (block is not null && block.LocalLists.TryGetValue(name, out list)) || _lists.TryGetValue(name, out list);

    /// <summary>The expansion rule <paramref name="name"/> as the sentences of <paramref name="block"/> see it: local first.</summary>
    public bool TryGetRule(IntentTemplates? block, string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TemplateSequence? rule) =>
        (block is not null && block.LocalRules.TryGetValue(name, out rule)) || _rules.TryGetValue(name, out rule);

    /// <summary>Loads one intents file given as text (for example received over MQTT); <paramref name="source"/> names it in errors.</summary>
    public static IntentLibrary Parse(string yaml, string source)
    {
        var library = new IntentLibrary();
        using var reader = new StringReader(yaml);
        library.LoadYaml(reader, source, "");
        return library;
    }

    /// <summary>Checks a name that will become an MQTT topic level.</summary>
    public static void ValidateIntentName(string name, string source)
    {
        if (name.Length == 0 || name.Any(c => c is '/' or '+' or '#' || char.IsControl(c)))
        {
            throw new IntentFileException($"{source}: intent name '{name.Replace("\n", "\\n")}' cannot be an MQTT topic level (no '/', '+', '#' or control characters)");
        }
    }

    private void LoadFile(string file, string folderName)
    {
        using var reader = new StreamReader(file);
        LoadYaml(reader, file, folderName);
    }

    private void LoadYaml(TextReader reader, string file, string folderName)
    {
        YamlMappingNode root;
        try
        {
            var stream = new YamlStream();
            stream.Load(reader);
            if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode mapping)
            {
                return;
            }
            root = mapping;
        }
        catch (YamlException e)
        {
            throw new IntentFileException($"{file}: not valid YAML ({e.Start.Line}:{e.Start.Column}: {e.Message})");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet fails this way, not with a YamlException, on some malformed input (found by fuzzing).
            throw new IntentFileException($"{file}: not valid YAML ({e.Message})");
        }

        try
        {
            if (Path.GetFileName(file).StartsWith("_fixtures", StringComparison.Ordinal))
            {
                LoadFixtures(root);
                return;
            }
            if (Child(root, "lists") is YamlMappingNode lists)
            {
                foreach ((YamlNode key, YamlNode value) in lists.Children)
                {
                    string name = Scalar(key);
                    _lists[name] = ParseList(name, value);
                }
            }
            if (Child(root, "expansion_rules") is YamlMappingNode rules)
            {
                foreach ((YamlNode key, YamlNode value) in rules.Children)
                {
                    _rules[Scalar(key)] = TemplateParser.Parse(Scalar(value));
                }
            }
            if (Child(root, "skip_words") is YamlSequenceNode skip)
            {
                _skipWords.AddRange(skip.Children.Select(Scalar));
            }
            if (Child(root, "intents") is YamlMappingNode intents)
            {
                foreach ((YamlNode key, YamlNode value) in intents.Children)
                {
                    string intent = Scalar(key);
                    ValidateIntentName(intent, file);
                    if (Child(value, "data") is YamlSequenceNode data)
                    {
                        AddData(intent, data, file);
                    }
                    if (ReadDescription(intent, value) is IntentDescription description)
                    {
                        _descriptions[intent] = _descriptions.TryGetValue(intent, out IntentDescription? earlier) ? earlier.Merge(description) : description;
                    }
                }
            }
            else if (Child(root, "data") is YamlSequenceNode data)
            {
                // Newer layout: sentences/<Intent>/<slot combination>.yaml, the intent named by its folder.
                ValidateIntentName(folderName, file);
                AddData(folderName, data, file);
            }
        }
        catch (TemplateFormatException e)
        {
            throw new IntentFileException($"{file}: {e.Message}");
        }
    }

    /// <summary><c>description: text</c> and <c>slots: {slot: {description: text}}</c> beside an intent's data; null when neither is there.</summary>
    private static IntentDescription? ReadDescription(string intent, YamlNode node)
    {
        string? text = Child(node, "description") is YamlNode d ? Scalar(d) : null;
        var slots = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Child(node, "slots") is YamlMappingNode slotNodes)
        {
            foreach ((YamlNode key, YamlNode value) in slotNodes.Children)
            {
                string slot = Scalar(key);
                slots[slot] = value switch
                {
                    YamlScalarNode scalar => scalar.Value ?? "",
                    YamlMappingNode => Child(value, "description") is YamlNode sd ? Scalar(sd) : "",
                    _ => throw new TemplateFormatException($"slot '{slot}' at line {value.Start.Line}: expected a description or {{description: text}}"),
                };
            }
        }
        return text is null && slots.Count == 0 ? null : new IntentDescription(intent, text, slots);
    }

    private void AddData(string intent, YamlSequenceNode data, string file)
    {
        foreach (YamlNode block in data.Children)
        {
            if (Child(block, "sentences") is not YamlSequenceNode sentences)
            {
                continue;
            }
            var texts = sentences.Children.Select(Scalar).ToArray();
            var slots = new Dictionary<string, string>(StringComparer.Ordinal);
            if (Child(block, "slots") is YamlMappingNode fixedSlots)
            {
                foreach ((YamlNode key, YamlNode value) in fixedSlots.Children)
                {
                    slots[Scalar(key)] = value switch
                    {
                        YamlScalarNode s => s.Value ?? "",
                        YamlSequenceNode list => string.Join(",", list.Children.Select(Scalar)),
                        _ => throw new TemplateFormatException($"slot '{Scalar(key)}' at line {value.Start.Line}: expected text or a list of text, found a {value.NodeType.ToString().ToLowerInvariant()}"),
                    };
                }
            }
            // The newer layout's inferred_domain is the domain slot Home Assistant acts on (its intents build turns it into slots: {domain}).
            if (Child(block, "inferred_domain") is YamlScalarNode { Value.Length: > 0 } inferred && !slots.ContainsKey("domain"))
            {
                slots["domain"] = inferred.Value;
            }
            // A block's own lists and rules are local to it, as in hassil: two blocks may define the same name.
            var localLists = new Dictionary<string, SlotList>(StringComparer.Ordinal);
            if (Child(block, "lists") is YamlMappingNode listNodes)
            {
                foreach ((YamlNode key, YamlNode value) in listNodes.Children)
                {
                    localLists[Scalar(key)] = ParseList(Scalar(key), value);
                }
            }
            var localRules = new Dictionary<string, TemplateSequence>(StringComparer.Ordinal);
            if (Child(block, "expansion_rules") is YamlMappingNode ruleNodes)
            {
                foreach ((YamlNode key, YamlNode value) in ruleNodes.Children)
                {
                    localRules[Scalar(key)] = TemplateParser.Parse(Scalar(value));
                }
            }
            _templates.Add(new IntentTemplates(intent, texts.Select(TemplateParser.Parse).ToArray(), texts, slots, file)
            {
                LocalLists = localLists,
                LocalRules = localRules,
            });
        }
    }

    private static SlotList ParseList(string name, YamlNode node)
    {
        if (Child(node, "wildcard") is YamlScalarNode { Value: "true" })
        {
            return new SlotList(name, [], null, Wildcard: true);
        }
        if (Child(node, "range") is YamlMappingNode range)
        {
            int Int(string key, int fallback) => Child(range, key) is YamlScalarNode s && int.TryParse(s.Value, out int v) ? v : fallback;
            int from = Int("from", 0), to = Int("to", 100), step = Math.Max(1, Int("step", 1));
            if (to < from)
            {
                throw new TemplateFormatException($"list '{name}': range from {from} to {to}");
            }
            return new SlotList(name, [], new NumberRange(from, to, step, (Child(range, "type") as YamlScalarNode)?.Value ?? "number"), Wildcard: false);
        }
        var values = new List<ListValue>();
        if (Child(node, "values") is YamlSequenceNode items)
        {
            foreach (YamlNode item in items.Children)
            {
                if (item is YamlScalarNode scalar)
                {
                    values.Add(new ListValue(TemplateParser.Parse(scalar.Value ?? ""), scalar.Value ?? ""));
                }
                else if (Child(item, "in") is YamlScalarNode spoken)
                {
                    string value = Child(item, "out") is YamlScalarNode output ? output.Value ?? "" : spoken.Value ?? "";
                    values.Add(new ListValue(TemplateParser.Parse(spoken.Value ?? ""), value));
                }
            }
        }
        return new SlotList(name, values, null, Wildcard: false);
    }

    /// <summary>Home Assistant's test fixtures: the names of areas, floors and entities as the lists {area}, {floor}, {name}.</summary>
    private void LoadFixtures(YamlMappingNode root)
    {
        foreach ((string section, string list) in new[] { ("areas", "area"), ("floors", "floor"), ("entities", "name") })
        {
            if (Child(root, section) is not YamlSequenceNode items)
            {
                continue;
            }
            var values = items.Children.Select(i => Child(i, "name")).OfType<YamlScalarNode>()
                .Select(n => n.Value ?? "").Where(n => n.Length > 0).Distinct(StringComparer.Ordinal)
                .Select(n => new ListValue(new TemplateSequence([new TemplateText(n)]), n)).ToArray();
            if (!_lists.ContainsKey(list) || _lists[list].Values.Count == 0)
            {
                _lists[list] = new SlotList(list, values, null, Wildcard: false);
            }
        }
    }

    private static YamlNode? Child(YamlNode node, string key) =>
        node is YamlMappingNode mapping && mapping.Children.TryGetValue(new YamlScalarNode(key), out YamlNode? value) ? value : null;

    private static string Scalar(YamlNode node) => node is YamlScalarNode scalar
        ? scalar.Value ?? ""
        : throw new TemplateFormatException($"expected text at line {node.Start.Line}, found a {node.NodeType.ToString().ToLowerInvariant()}");
}
