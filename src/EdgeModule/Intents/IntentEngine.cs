using System.Diagnostics;
using System.Numerics.Tensors;
using EdgeSlm.EdgeModule.Intents.Slots;
using EdgeSlm.EdgeModule.Intents.Templates;

namespace EdgeSlm.EdgeModule.Intents;

/// <summary>The answer for one utterance. <see cref="Intent"/> is null when it is not recognized.</summary>
/// <param name="ExactMatch">True when a template matched the text exactly (confidence 1), false when the classifier decided.</param>
/// <param name="Truncated">The utterance was longer than the model's context and only its start was read.</param>
public sealed record IntentResult(string Text, string? Intent, float Confidence, IReadOnlyList<SlotValue> Slots, bool ExactMatch, bool Truncated = false)
{
    public bool Recognized => Intent is not null;
}

/// <summary>How the engine trains. The defaults are what the module uses.</summary>
/// <param name="Threshold">A fixed "not recognized" confidence; null calibrates it on held-out examples.</param>
/// <param name="ExamplesPerTemplate">Distinct sentences drawn from each template (caps huge lists).</param>
public sealed record IntentEngineSettings(double? Threshold = null, int ExamplesPerTemplate = 20, int Seed = 20241126, int Epochs = 40);

/// <summary>What training did: shown in logs, on the status topic and in the twin's reported properties.</summary>
public sealed record TrainingReport(int Intents, int Examples, double Seconds, bool FromCache, double Threshold, string HeadKey, IReadOnlyList<string> Problems);

/// <summary>
/// The intent engine: exact template matches first (full confidence, slots as the template says), then a
/// classifier head on the encoder's sentence features, with a calibrated "not recognized" threshold. Immutable
/// once trained, so a retrained engine is swapped in atomically while the old one finishes its batch.
/// </summary>
public sealed class IntentEngine
{
    private readonly SoftmaxClassifier _classifier;
    private readonly TemplateMatcher _matcher;
    private readonly Dictionary<string, SlotExtractor> _slotExtractors;

    private IntentEngine(IntentDefinitions definitions, SoftmaxClassifier classifier, double threshold, TrainingReport report)
    {
        Definitions = definitions;
        _classifier = classifier;
        Threshold = threshold;
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
    public double Threshold { get; }
    public TrainingReport Report { get; }
    public IReadOnlyList<string> IntentNames => Definitions.IntentNames;

    /// <summary>
    /// Trains on <paramref name="definitions"/> with <paramref name="features"/>, or loads the head trained before on
    /// the same models, intents and settings from <paramref name="cacheDirectory"/> (null: no cache).
    /// </summary>
    public static IntentEngine Train(SentenceFeatures features, IntentDefinitions definitions, IntentEngineSettings settings, string? cacheDirectory)
    {
        var clock = Stopwatch.StartNew();
        var problems = new List<string>();
        List<IntentExample> examples = definitions.TrainingExamples(settings.ExamplesPerTemplate, settings.Seed, problems);
        if (examples.Count == 0)
        {
            throw new Templates.IntentFileException($"{definitions.Source}: no usable sentences ({problems.Count} templates skipped{(problems.Count > 0 ? ": " + problems[0] : "")})");
        }
        string[] classes = examples.Select(e => e.Intent).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var classIndex = classes.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
        (List<IntentExample> fit, List<IntentExample> calibration) = IntentEvaluation.HoldOut(examples, 0.1, settings.Seed);

        var fitFeatures = new float[fit.Count * features.Dimension];
        features.Embed(fit.Select(e => e.Text).ToArray(), fitFeatures);
        var training = new ClassifierTraining(Epochs: settings.Epochs, Seed: settings.Seed);
        SoftmaxClassifier classifier = SoftmaxClassifier.Train(classes, fitFeatures, fit.Select(e => classIndex[e.Intent]).ToArray(), features.Dimension, training);
        double threshold = settings.Threshold ?? Calibrate(features, classifier, calibration);
        string key = $"{features.Fingerprint}-{definitions.ContentHash[..16]}";
        var report = new TrainingReport(classes.Length, examples.Count, clock.Elapsed.TotalSeconds, FromCache: false, threshold, key, problems);
        return new IntentEngine(definitions, classifier, threshold, report);
    }

    private static double Calibrate(SentenceFeatures features, SoftmaxClassifier classifier, List<IntentExample> heldOut)
    {
        var heldOutFeatures = new float[heldOut.Count * features.Dimension];
        features.Embed(heldOut.Select(e => e.Text).ToArray(), heldOutFeatures);
        return IntentEvaluation.Calibrate(classifier, heldOutFeatures, heldOut);
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
            if (match is not null && Allowed(match.Intent, intentFilters?[i]))
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
        var embedded = new float[pending.Count * features.Dimension];
        features.Embed(pending.Select(i => texts[i]).ToArray(), embedded);
        var probabilities = new float[_classifier.Classes.Count];
        for (int p = 0; p < pending.Count; p++)
        {
            int i = pending[p];
            _classifier.Predict(embedded.AsSpan(p * features.Dimension, features.Dimension), probabilities);
            IReadOnlyCollection<string>? filter = intentFilters?[i];
            if (filter is { Count: > 0 })
            {
                for (int c = 0; c < probabilities.Length; c++)
                {
                    if (!filter.Contains(_classifier.Classes[c])) probabilities[c] = 0;
                }
            }
            int best = TensorPrimitives.IndexOfMax(probabilities.AsSpan());
            string intent = _classifier.Classes[best];
            float confidence = probabilities[best];
            bool recognized = confidence >= Threshold && confidence > 0 && intent != IntentExample.OutOfScope;
            IReadOnlyList<SlotValue> slots = recognized && _slotExtractors.TryGetValue(intent, out SlotExtractor? extractor) ? extractor.Extract(texts[i]) : [];
            results[i] = new IntentResult(texts[i], recognized ? intent : null, confidence, slots, ExactMatch: false);
        }
        return results;
    }

    private static bool Allowed(string intent, IReadOnlyCollection<string>? filter) => filter is not { Count: > 0 } || filter.Contains(intent);
}
