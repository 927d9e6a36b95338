using System.Diagnostics;
using System.Numerics.Tensors;
using EdgeSlm.Intents.Classifiers;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Tagging;
using EdgeSlm.Intents.Templates;
using EdgeSlm.Intents.Training;

namespace EdgeSlm.Intents.Recognition;

/// <summary>Which path produced an answer.</summary>
public enum IntentSource { Template, Classifier, Slm }

/// <summary>The answer for one utterance. <see cref="Intent"/> is null when it is not recognized.</summary>
/// <param name="ExactMatch">True when a template matched the text exactly (confidence 1), false when a model decided.</param>
/// <param name="Truncated">The utterance was longer than the token limit (the model's context or MaxTokens) and only its start was read.</param>
public sealed record IntentResult(string Text, string? Intent, float Confidence, IReadOnlyList<SlotValue> Slots, bool ExactMatch, bool Truncated = false)
{
    public bool Recognized => Intent is not null;

    /// <summary>The template matcher, the trained classifier, or the language model (its confidence the probability normalised over the intents).</summary>
    public IntentSource Source { get; init; } = ExactMatch ? IntentSource.Template : IntentSource.Classifier;
}

/// <summary>How the engine trains. The defaults are what the module uses.</summary>
/// <param name="Threshold">A fixed "not recognized" confidence; null calibrates it on held-out examples.</param>
/// <param name="ExamplesPerTemplate">Distinct sentences drawn from each template (caps huge lists).</param>
/// <param name="MaxIntents">Definitions with more intents are refused (bounds the head and training).</param>
/// <param name="MaxExamples">Definitions with more training sentences (given plus expanded) are refused (bounds training time and memory).</param>
public sealed record IntentEngineSettings(double? Threshold = null, int ExamplesPerTemplate = 20, int Seed = 20241126, int MaxIntents = 1000, int MaxExamples = 50_000);

/// <summary>What training did: shown in logs, on the status topic and in the twin's reported properties.</summary>
public sealed record TrainingReport(int Intents, int Examples, double Seconds, bool FromCache, double Threshold, string HeadKey, IReadOnlyList<string> Problems);

/// <summary>
/// The intent engine: exact template matches first (full confidence, slots as the template says), then the
/// <see cref="IntentHead"/> (the encoder's sentence features and the words), with a calibrated "not recognized" threshold. Immutable
/// once trained, so a retrained engine is swapped in atomically while the old one finishes its batch.
/// </summary>
public sealed class IntentEngine
{
    private readonly IntentHead? _head;
    private readonly SlotTagger? _tagger;
    private readonly TrainedHead? _trained;
    private readonly TemplateMatcher _matcher;
    private readonly Dictionary<string, SlotExtractor> _slotExtractors;

    /// <summary>Each classifying thread's piece states (the engine itself is shared).</summary>
    [ThreadStatic]
    private static TokenStates? t_tokens;

    private IntentEngine(IntentDefinitions definitions, TrainedHead? trained, TrainingReport report)
    {
        Definitions = definitions;
        _trained = trained;
        _head = trained?.Head;
        _tagger = trained?.Tagger;
        Threshold = trained?.Threshold ?? 1;
        Report = report;
        // Templates that refer to undefined lists or rules were already reported by the expander.
        _matcher = new TemplateMatcher(definitions.Library, problems: []);
        var examplesByIntent = definitions.Examples.ToLookup(e => e.Intent, StringComparer.Ordinal);
        _slotExtractors = definitions.IntentNames.ToDictionary(
            intent => intent,
            intent => SlotExtractor.ForIntent(definitions.Library, intent, examplesByIntent[intent]),
            StringComparer.Ordinal);
    }

    public IntentDefinitions Definitions { get; }

    /// <summary>False for an engine of templates alone (<see cref="Untrained"/>): what they do not match is not recognized.</summary>
    public bool Trained => _head is not null;
    public double Threshold { get; }
    public TrainingReport Report { get; }
    /// <summary>The intents it can answer with (not the out-of-scope class).</summary>
    public IReadOnlyList<string> IntentNames => Definitions.IntentNames.Where(n => n != IntentExample.OutOfScope).ToArray();

    /// <summary>
    /// Trains on <paramref name="definitions"/> with <paramref name="features"/>, or loads the head trained before on
    /// the same models, intents and settings from <paramref name="cacheDirectory"/> (null: no cache). A cache that
    /// cannot be written (read-only, full) only costs the next start its training time.
    /// </summary>
    public static IntentEngine Train(SentenceFeatures features, IntentDefinitions definitions, IntentEngineSettings settings, string? cacheDirectory)
    {
        var clock = Stopwatch.StartNew();
        var problems = new List<string>();
        if (definitions.IntentNames.Count > settings.MaxIntents)
        {
            throw new IntentFileException($"{definitions.Source}: {definitions.IntentNames.Count} intents, over the limit of {settings.MaxIntents} (MaxIntents)");
        }
        if (definitions.Examples.Count > settings.MaxExamples)
        {
            throw new IntentFileException($"{definitions.Source}: {definitions.Examples.Count} examples, over the limit of {settings.MaxExamples} (MaxExamples)");
        }
        List<IntentExample> examples = definitions.TrainingExamples(settings.ExamplesPerTemplate, settings.Seed, problems);
        if (examples.Count > settings.MaxExamples)
        {
            throw new IntentFileException($"{definitions.Source}: {examples.Count} examples with the templates expanded ({settings.ExamplesPerTemplate} per template), over the limit of {settings.MaxExamples} (MaxExamples)");
        }
        if (examples.Count == 0)
        {
            throw new IntentFileException($"{definitions.Source}: no usable sentences ({problems.Count} templates skipped{(problems.Count > 0 ? ": " + problems[0] : "")})");
        }
        string key = HeadKey(features, definitions, settings);
        string? path = cacheDirectory is null ? null : Path.Combine(cacheDirectory, "heads", key + ".head");
        if (path is not null && HeadFile.TryRead(path, out TrainedHead? cached))
        {
            var fromCache = new TrainingReport(cached.Head.Classes.Count, examples.Count, clock.Elapsed.TotalSeconds, FromCache: true, cached.Threshold, key, problems);
            return new IntentEngine(definitions, cached, fromCache);
        }

        // The head is the same for any number of threads, so they are not part of its key.
        var training = new ClassifierTraining(Seed: settings.Seed, Threads: features.ActiveThreads);
        TrainedHead head = HeadTraining.Train(features, examples, training, settings.Threshold);
        if (path is not null)
        {
            HeadFile.TryWrite(path, head);
        }
        var report = new TrainingReport(head.Head.Classes.Count, examples.Count, clock.Elapsed.TotalSeconds, FromCache: false, head.Threshold, key, problems);
        return new IntentEngine(definitions, head, report);
    }

    /// <summary>
    /// Exact template matches only, no classifier: for a module whose language model understands the rest
    /// (<c>Slm:Mode</c> = only). Nothing to train, nothing to load.
    /// </summary>
    public static IntentEngine Untrained(IntentDefinitions definitions)
    {
        ArgumentNullException.ThrowIfNull(definitions);
        if (definitions.IntentNames.Count == 0)
        {
            throw new IntentFileException($"{definitions.Source}: defines no intents");
        }
        return new IntentEngine(definitions, null, new TrainingReport(definitions.IntentNames.Count, 0, 0, FromCache: false, 1, "untrained", []));
    }

    /// <summary>
    /// What a trained head depends on: the encoders, the intents, the training settings and this format. The
    /// version changes with the training too (v5: with the slot tagger and the distance to the training sentences), so a device retrains once.
    /// </summary>
    private static string HeadKey(SentenceFeatures features, IntentDefinitions definitions, IntentEngineSettings settings)
    {
        string identity = string.Join('\n', "edgeslm-head-v5", features.Fingerprint, definitions.ContentHash,
            settings.Threshold?.ToString("R", System.Globalization.CultureInfo.InvariantCulture) ?? "calibrated",
            settings.ExamplesPerTemplate, settings.Seed);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(identity)))[..24];
    }

    /// <summary>
    /// Classifies a batch (the GEMM path runs the sentences together). <paramref name="intentFilters"/>, when given,
    /// restricts each utterance to the listed intents (Hermes' <c>intentFilter</c>); null or empty allows all.
    /// </summary>
    public IntentResult[] Classify(SentenceFeatures features, IReadOnlyList<string> texts, IReadOnlyList<IReadOnlyCollection<string>?>? intentFilters = null)
    {
        var results = new IntentResult[texts.Count];
        var pending = new List<int>();
        for (int i = 0; i < texts.Count; i++)
        {
            // An exact template match is what the user wrote down: full confidence, the template's slots.
            TemplateMatch? match = _matcher.Match(texts[i]);
            if (match is not null && match.Intent == IntentExample.OutOfScope)
            {
                results[i] = new IntentResult(texts[i], null, 1f, [], ExactMatch: true);
            }
            else if (match is not null && Allowed(match.Intent, intentFilters?[i]))
            {
                results[i] = new IntentResult(texts[i], match.Intent, 1f, match.Slots, ExactMatch: true);
            }
            else
            {
                pending.Add(i);
            }
        }
        if (pending.Count == 0)
        {
            return results;
        }
        if (_head is null)
        {
            foreach (int i in pending) results[i] = new IntentResult(texts[i], null, 0f, [], ExactMatch: false);
            return results;
        }
        var embedded = new float[pending.Count * features.Dimension];
        var truncated = new bool[pending.Count];
        TokenStates? tokens = _tagger is null ? null : t_tokens ??= new TokenStates();
        features.Embed(pending.Select(i => texts[i]).ToArray(), embedded, truncated, tokens);
        var spans = new List<TaggedSpan>();
        var probabilities = new float[_head.Classes.Count];
        for (int p = 0; p < pending.Count; p++)
        {
            int i = pending[p];
            _head.Predict(embedded.AsSpan(p * features.Dimension, features.Dimension), texts[i], probabilities);
            int best = TensorPrimitives.IndexOfMax(probabilities.AsSpan());
            string intent = _head.Classes[best];
            float confidence = probabilities[best];
            // With a filter (Hermes' intentFilter), an utterance whose most likely intent is filtered out is not
            // recognized: answering with the best allowed intent would put words in the speaker's mouth.
            bool recognized = confidence >= Threshold && intent != IntentExample.OutOfScope && Allowed(intent, intentFilters?[i])
                && !_trained!.TooFar(embedded.AsSpan(p * features.Dimension, features.Dimension));
            IReadOnlyList<SlotValue> slots = [];
            if (recognized)
            {
                spans.Clear();
                _tagger?.Tag(texts[i], intent, tokens!.States(p), tokens.Starts(p), tokens.Ends(p), spans);
                slots = SlotFilling.Fill(texts[i], spans, _slotExtractors.GetValueOrDefault(intent), _tagger);
            }
            results[i] = new IntentResult(texts[i], recognized ? intent : null, confidence, slots, ExactMatch: false, truncated[p]);
        }
        return results;
    }

    private static bool Allowed(string intent, IReadOnlyCollection<string>? filter) => filter is not { Count: > 0 } || filter.Contains(intent);
}
