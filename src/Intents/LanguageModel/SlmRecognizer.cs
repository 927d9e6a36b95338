using System.Diagnostics;
using System.Numerics.Tensors;
using System.Text.Json;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Kernels.Activations;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Intents.LanguageModel;

/// <summary>How the language model recognises intents.</summary>
/// <param name="MaxUtteranceTokens">The longest request read (tokens); longer ones are cut and marked truncated.</param>
/// <param name="MaxAnswerTokens">The most tokens generated for the slots.</param>
/// <param name="ExamplesPerIntent">Example requests per intent in the prompt.</param>
public sealed record SlmOptions(int MaxUtteranceTokens = 48, int MaxAnswerTokens = 48, int ExamplesPerIntent = 2, int Threads = 1, int Seed = 20241126);

/// <summary>The language model's answer: <see cref="Intent"/> null when it chose "none of these".</summary>
/// <param name="Probabilities">Each candidate's probability, normalised over the candidates (the intents allowed, and "none").</param>
/// <param name="TimedOut">The deadline passed before the answer was complete: nothing else in it counts.</param>
public sealed record SlmAnswer(string? Intent, float Confidence, IReadOnlyList<SlotValue> Slots, IReadOnlyList<(string Intent, float Probability)> Probabilities,
    bool TimedOut, bool Truncated)
{
    public static readonly SlmAnswer Expired = new(null, 0f, [], [], TimedOut: true, Truncated: false);
}

/// <summary>
/// Intents understood by a generative model, for one intents version. The prompt (<see cref="SlmPrompt"/>) is run
/// once, when this is built; each request then costs its own tokens, the candidates' and the slots'.
/// <list type="bullet">
/// <item>The intent: each candidate's name and a newline scored as a continuation of the reply (the sum of its
/// tokens' log-probabilities under the full vocabulary), normalised over the candidates allowed (the intent filter,
/// and always "none"). All candidates run in one tree batch after the request (<see cref="LlamaDecoder.EvaluateTree"/>):
/// their tokens but the last, as a trie, so tokens shared by several names run once and the weights are read once
/// per batch rather than once per candidate.</item>
/// <item>The slots: generated greedily under <see cref="JsonObjectGrammar"/>, a compact JSON object whose keys are
/// the intent's slots and whose values are word spans of the request or values of the slot's list; text the
/// grammar forces goes in one batch. Values are then read as the slot extractor reads a tagged span.</item>
/// </list>
/// Not thread-safe: one request at a time (the module's inference worker).
/// </summary>
public sealed class SlmRecognizer : IDisposable
{
    private const int MaxSpanWords = 8;
    private const int MaxListValues = 200;

    private readonly DecoderTokenizer _tokenizer;
    private readonly LlamaDecoder _decoder;
    private readonly SlmOptions _options;
    private readonly int _prefixLength;
    private readonly int[] _suffix;
    private readonly Candidate[] _candidates;
    private readonly int[] _nodeTokens;                    // the candidates' trie without their last tokens: token, parent (−1: the request)
    private readonly int[] _nodeParents;
    private readonly int[] _nodeRoots;                     // the top node of each node's subtree: calls hold whole subtrees
    private readonly Dictionary<string, SlotExtractor> _extractors;
    private readonly Dictionary<string, IReadOnlyList<string>> _slots;
    private readonly float[] _rows;                        // logits after the request, then after each node of one tree call
    private readonly int _rowCapacity;
    private readonly int _vocabulary;
    private readonly float[] _scratch;

    /// <param name="Nodes">The trie node after each of its tokens but the last (Nodes[d] follows Tokens[0..d]).</param>
    private sealed record Candidate(string Intent, int[] Tokens, int[] Nodes);

    /// <summary>Rows of logits one tree call writes at most (more candidates' tokens: more calls): bounds the buffer.</summary>
    private const int TreeRows = 64;

    private SlmRecognizer(LlamaModel model, DecoderTokenizer tokenizer, IntentDefinitions definitions, SlmOptions options, KernelPath? path)
    {
        _tokenizer = tokenizer;
        _options = options;
        _vocabulary = model.Config.VocabularySize;
        var clock = Stopwatch.StartNew();
        string[] intents = definitions.IntentNames.Where(n => n != IntentExample.OutOfScope).ToArray();
        var examplesByIntent = definitions.Examples.ToLookup(e => e.Intent, StringComparer.Ordinal);
        _extractors = intents.ToDictionary(i => i, i => SlotExtractor.ForIntent(definitions.Library, i, examplesByIntent[i]), StringComparer.Ordinal);
        _slots = intents.ToDictionary(i => i, i => (IReadOnlyList<string>)_extractors[i].Definitions.Select(d => d.Slot)
            .Concat(definitions.Descriptions.GetValueOrDefault(i)?.Slots.Keys ?? [])
            .Distinct(StringComparer.Ordinal).ToArray(), StringComparer.Ordinal);

        string? jinja = model.File.Get(ChatTemplate.MetadataKey)?.Value as string;
        Prompt = SlmPrompt.Build(definitions, intents, _slots, SlmPrompt.ExampleRequests(definitions, options.ExamplesPerIntent, options.Seed), ChatTemplate.Recognise(jinja));
        int[] prefix = tokenizer.Encode(Prompt.Prefix, addSpecial: true, parseSpecial: true);
        _suffix = tokenizer.Encode(Prompt.Suffix, addSpecial: false, parseSpecial: true);
        // Candidates share their leading tokens in a trie: one node per distinct prefix (but whole names), so that
        // a request runs every candidate in one tree batch and each shared token once.
        var nodeTokens = new List<int>();
        var nodeParents = new List<int>();
        var nodeIds = new Dictionary<(int Parent, int Token), int>();
        var candidates = new List<Candidate>();
        foreach (string intent in intents.Append(SlmPrompt.NoneOfThese))
        {
            int[] tokens = tokenizer.Encode(intent + "\n", addSpecial: false);
            var nodes = new int[tokens.Length - 1];
            int parent = -1;
            for (int d = 0; d + 1 < tokens.Length; d++)
            {
                if (!nodeIds.TryGetValue((parent, tokens[d]), out int node))
                {
                    node = nodeTokens.Count;
                    nodeIds[(parent, tokens[d])] = node;
                    nodeTokens.Add(tokens[d]);
                    nodeParents.Add(parent);
                }
                nodes[d] = parent = node;
            }
            candidates.Add(new Candidate(intent, tokens, nodes));
        }
        _candidates = candidates.ToArray();
        _nodeTokens = nodeTokens.ToArray();
        _nodeParents = nodeParents.ToArray();
        _nodeRoots = new int[_nodeTokens.Length];
        for (int n = 0; n < _nodeRoots.Length; n++) _nodeRoots[n] = _nodeParents[n] < 0 ? n : _nodeRoots[_nodeParents[n]];
        int longest = _candidates.Max(c => c.Tokens.Length);
        int context = prefix.Length + options.MaxUtteranceTokens + _suffix.Length + Math.Max(_nodeTokens.Length, longest + options.MaxAnswerTokens) + 8;
        if (context > model.Config.ContextLength)
        {
            throw new ArgumentException($"the prompt for {intents.Length} intents needs {context} positions; {model.Name} has {model.Config.ContextLength}");
        }
        _decoder = new LlamaDecoder(model, context, options.Threads, path: path);
        int largestSubtree = _nodeRoots.Length == 0 ? 0 : _nodeRoots.GroupBy(r => r).Max(g => g.Count());
        _rowCapacity = Math.Max(Math.Min(TreeRows, _nodeTokens.Length), largestSubtree);
        _rows = new float[(1 + _rowCapacity) * _vocabulary];
        _scratch = new float[_vocabulary];
        _decoder.Prefill(prefix, _rows.AsSpan(0, _vocabulary));
        _prefixLength = _decoder.Position;
        PromptTokens = prefix.Length;
        PromptSeconds = clock.Elapsed.TotalSeconds;
    }

    public SlmPrompt Prompt { get; }

    /// <summary>Tokens of the fixed part of the prompt, and the time it took to compute (once per intents version).</summary>
    public int PromptTokens { get; }

    public double PromptSeconds { get; }

    public long CacheBytes => _decoder.CacheBytes;

    public int Threads => _decoder.Threads;

    /// <summary>Builds the prompt for <paramref name="definitions"/> and computes its state.</summary>
    public static SlmRecognizer Build(LlamaModel model, DecoderTokenizer tokenizer, IntentDefinitions definitions, SlmOptions? options = null, KernelPath? path = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(definitions);
        return new SlmRecognizer(model, tokenizer, definitions, options ?? new SlmOptions(), path);
    }

    /// <summary>
    /// The intent of <paramref name="text"/> among those <paramref name="intentFilter"/> allows (null or empty:
    /// all), and its slots. Gives up with <see cref="SlmAnswer.Expired"/> once <paramref name="deadline"/> has
    /// passed, checked between forward passes.
    /// </summary>
    public SlmAnswer Recognize(string text, IReadOnlyCollection<string>? intentFilter = null, SlmDeadline deadline = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (deadline.Passed) return SlmAnswer.Expired;
        int V = _vocabulary;
        bool truncated = StartReply(text, _rows.AsSpan(0, V));
        double requestLogSum = LogSumExp.Compute(_rows.AsSpan(0, V), _scratch);
        int start = _decoder.Position;

        // The allowed candidates, and the trie nodes they need.
        var allowed = _candidates.Where(c => c.Intent == SlmPrompt.NoneOfThese || intentFilter is not { Count: > 0 } || intentFilter.Contains(c.Intent)).ToList();
        var logP = new double[allowed.Count];
        for (int c = 0; c < allowed.Count; c++)
        {
            logP[c] = _rows[allowed[c].Tokens[0]] - requestLogSum;
        }
        var needed = new SortedSet<int>(allowed.SelectMany(c => c.Nodes));
        // Log-probabilities of the tokens after each node, filled in as the tree calls run.
        var after = new Dictionary<(int Node, int Token), double>();
        var call = new List<int>();
        foreach (IGrouping<int, int> subtree in needed.GroupBy(n => _nodeRoots[n]))
        {
            if (call.Count > 0 && call.Count + subtree.Count() > _rowCapacity)
            {
                if (deadline.Passed) return SlmAnswer.Expired;
                RunTree(call, allowed, after);
                call.Clear();
            }
            call.AddRange(subtree);
        }
        if (call.Count > 0)
        {
            if (deadline.Passed) return SlmAnswer.Expired;
            RunTree(call, allowed, after);
        }
        var scores = new List<(Candidate Candidate, double LogP)>(allowed.Count);
        for (int c = 0; c < allowed.Count; c++)
        {
            Candidate candidate = allowed[c];
            double total = logP[c];
            for (int d = 1; d < candidate.Tokens.Length; d++) total += after[(candidate.Nodes[d - 1], candidate.Tokens[d])];
            scores.Add((candidate, total));
        }
        double max = scores.Max(s => s.LogP);
        double sum = scores.Sum(s => Math.Exp(s.LogP - max));
        var probabilities = scores.Select(s => (s.Candidate.Intent, (float)(Math.Exp(s.LogP - max) / sum))).OrderByDescending(p => p.Item2).ToArray();
        (Candidate best, _) = scores.MaxBy(s => s.LogP);
        float confidence = probabilities[0].Item2;
        if (best.Intent == SlmPrompt.NoneOfThese)
        {
            return new SlmAnswer(null, confidence, [], probabilities, TimedOut: false, truncated);
        }
        IReadOnlyList<string> slots = _slots[best.Intent];
        if (slots.Count == 0)
        {
            return new SlmAnswer(best.Intent, confidence, [], probabilities, TimedOut: false, truncated);
        }
        if (deadline.Passed) return SlmAnswer.Expired;

        // The reply so far is the chosen name and its newline; then the slots, under the grammar.
        _decoder.Truncate(start); // the tree's entries are gone: the chosen name runs again, in one batch
        Span<float> logits = _rows.AsSpan(0, V);
        _decoder.Prefill(best.Tokens, logits);
        IReadOnlyList<SlotValue>? values = GenerateSlots(text, best.Intent, slots, logits, deadline);
        return values is null ? SlmAnswer.Expired : new SlmAnswer(best.Intent, confidence, values, probabilities, TimedOut: false, truncated);
    }

    /// <summary>
    /// One tree batch of trie nodes (whole subtrees, in trie order so parents come first) after the request; the
    /// log-probability of every candidate token that follows one of them goes to <paramref name="after"/>.
    /// </summary>
    private void RunTree(List<int> nodes, List<Candidate> allowed, Dictionary<(int Node, int Token), double> after)
    {
        int V = _vocabulary;
        var index = new Dictionary<int, int>(nodes.Count);
        var tokens = new int[nodes.Count];
        var parents = new int[nodes.Count];
        for (int i = 0; i < nodes.Count; i++)
        {
            index[nodes[i]] = i;
            tokens[i] = _nodeTokens[nodes[i]];
            parents[i] = _nodeParents[nodes[i]] < 0 ? -1 : index[_nodeParents[nodes[i]]];
        }
        Span<float> rows = _rows.AsSpan(V, nodes.Count * V);
        _decoder.EvaluateTree(tokens, parents, rows);
        var logSums = new double[nodes.Count];
        Array.Fill(logSums, double.NaN);
        foreach (Candidate candidate in allowed)
        {
            for (int d = 1; d < candidate.Tokens.Length; d++)
            {
                if (!index.TryGetValue(candidate.Nodes[d - 1], out int row) || after.ContainsKey((candidate.Nodes[d - 1], candidate.Tokens[d]))) continue;
                ReadOnlySpan<float> logits = rows.Slice(row * V, V);
                if (double.IsNaN(logSums[row])) logSums[row] = LogSumExp.Compute(logits, _scratch);
                after[(candidate.Nodes[d - 1], candidate.Tokens[d])] = logits[candidate.Tokens[d]] - logSums[row];
            }
        }
    }

    /// <summary>
    /// The slots of <paramref name="text"/> for <paramref name="intent"/> (one of the definitions' intents), as
    /// <see cref="Recognize"/> generates them once that intent is chosen; null when <paramref name="deadline"/> passed first.
    /// </summary>
    public IReadOnlyList<SlotValue>? Slots(string text, string intent, SlmDeadline deadline = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        Candidate candidate = _candidates.FirstOrDefault(c => c.Intent == intent && c.Intent != SlmPrompt.NoneOfThese)
            ?? throw new ArgumentException($"'{intent}' is not an intent of these definitions", nameof(intent));
        Span<float> logits = _rows.AsSpan(0, _vocabulary);
        StartReply(text, logits);
        if (_slots[intent].Count == 0) return [];
        _decoder.Prefill(candidate.Tokens, logits);
        return GenerateSlots(text, intent, _slots[intent], logits, deadline);
    }

    /// <summary>
    /// The logits where the reply to <paramref name="text"/> starts: the request and the prompt's closing text run
    /// on the prompt's kept state. What <see cref="Recognize"/> scores the candidates from.
    /// </summary>
    public void ReplyLogits(string text, Span<float> logits)
    {
        ArgumentNullException.ThrowIfNull(text);
        StartReply(text, logits);
    }

    /// <summary>The request's tokens (the request and the prompt's closing text) after the prompt's state; true when the request was cut.</summary>
    private bool StartReply(string text, Span<float> logits)
    {
        int[] request = RequestTokens(text, out bool truncated);
        _decoder.Truncate(_prefixLength);
        _decoder.Prefill([.. request, .. _suffix], logits);
        return truncated;
    }

    /// <summary>The request as the prompt holds it: its tokens, at most <see cref="SlmOptions.MaxUtteranceTokens"/>.</summary>
    public int[] RequestTokens(string text, out bool truncated)
    {
        int[] request = _tokenizer.Encode(text.Trim(), addSpecial: false, parseSpecial: false);
        truncated = request.Length > _options.MaxUtteranceTokens;
        return truncated ? request[.._options.MaxUtteranceTokens] : request;
    }

    private IReadOnlyList<SlotValue>? GenerateSlots(string text, string intent, IReadOnlyList<string> slots, Span<float> logits, SlmDeadline deadline)
    {
        SlotExtractor extractor = _extractors[intent];
        Dictionary<string, (int Start, int End)> spans = WordSpans(text);
        var keys = new List<JsonGrammarKey>();
        foreach (string slot in slots)
        {
            IEnumerable<string> listValues = extractor.Definitions.Where(d => d.Slot == slot)
                .SelectMany(d => d.List.Values.Select(v => v.Value)).Take(MaxListValues);
            keys.Add(new JsonGrammarKey(slot, spans.Keys.Concat(listValues).Distinct(StringComparer.Ordinal).Where(v => v.Length > 0).ToArray()));
        }
        keys.RemoveAll(k => k.Values.Count == 0);
        if (keys.Count == 0) return [];
        var constraint = new TokenConstraint(_tokenizer, JsonObjectGrammar.Build(keys));
        var reply = new List<int>();
        for (int produced = 0; produced < _options.MaxAnswerTokens && !constraint.IsComplete;)
        {
            if (deadline.Passed) return null;
            string forced = constraint.ForcedText();
            if (forced.Length > 0)
            {
                int[] tokens = _tokenizer.Encode(forced, addSpecial: false);
                foreach (int token in tokens) constraint.Accept(token);
                reply.AddRange(tokens);
                produced += tokens.Length;
                if (constraint.IsComplete) break;
                _decoder.Prefill(tokens, logits);
                continue;
            }
            constraint.Apply(logits);
            int next = TokenSampler.ArgMax(logits);
            if (float.IsNegativeInfinity(logits[next])) break; // nothing of the vocabulary continues the grammar
            constraint.Accept(next);
            reply.Add(next);
            produced++;
            if (constraint.IsComplete) break;
            _decoder.Decode(next, logits);
        }
        if (!constraint.IsComplete)
        {
            return []; // the answer ran out of tokens: no slots rather than half of them
        }
        var values = new List<SlotValue>();
        using JsonDocument json = JsonDocument.Parse(_tokenizer.Decode(reply.ToArray()));
        foreach (JsonProperty property in json.RootElement.EnumerateObject())
        {
            string value = property.Value.GetString()!;
            values.Add(spans.TryGetValue(value, out (int Start, int End) span)
                ? extractor.ValueOf(text, property.Name, span.Start, span.End)
                : new SlotValue(property.Name, value, "", 0, 0));
        }
        return values;
    }

    /// <summary>Every run of up to <see cref="MaxSpanWords"/> words of <paramref name="text"/>, as spoken, with its first place.</summary>
    private static Dictionary<string, (int Start, int End)> WordSpans(string text)
    {
        List<Word> words = Words.Split(text);
        var spans = new Dictionary<string, (int, int)>(StringComparer.Ordinal);
        for (int i = 0; i < words.Count; i++)
        {
            for (int j = i; j < words.Count && j < i + MaxSpanWords; j++)
            {
                spans.TryAdd(text[words[i].Start..words[j].End], (words[i].Start, words[j].End));
            }
        }
        return spans;
    }

    public void Dispose() => _decoder.Dispose();
}
