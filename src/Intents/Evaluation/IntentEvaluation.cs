using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using EdgeSlm.Intents.Classifiers;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Tagging;
using EdgeSlm.Intents.Templates;
using EdgeSlm.Intents.Training;
using EdgeSlm.Models.Bert;

namespace EdgeSlm.Intents.Evaluation;

/// <summary>What <c>edgeslm eval</c> reports. Nullable figures are those the test file cannot give.</summary>
public sealed record EvaluationReport(
    int Count,
    double Accuracy,
    double MacroF1,
    double InScopeAccuracy,
    double? OutOfScopeRecall,
    double? OutOfScopePrecision,
    double? SlotF1,
    double? SlotPrecision,
    double? SlotRecall,
    double P50Microseconds,
    double P99Microseconds,
    double Threshold,
    IReadOnlyList<(string Expected, string Predicted, int Count)> Confusions,
    double TrainSeconds,
    double EmbedSeconds,
    IntentHead Head,
    int TrainCount,
    float L2,
    TrainedHead Trained,
    double SlotsP50Microseconds);

/// <summary>
/// Trains an intent classifier on one JSONL file and measures it on another: the sentences are embedded (one
/// encoder or several side by side, see <see cref="SentenceFeatures"/>) in batches, a
/// <see cref="SoftmaxClassifier"/> is trained on 90% of the training file for each candidate L2 strength, the
/// one most accurate on the other 10% is kept, a <see cref="LexicalClassifier"/> on the words is trained beside it
/// and its weight in the <see cref="IntentHead"/> chosen on that 10%, and the "not recognized" threshold is
/// calibrated there too (held out from training, never from the test file).
/// </summary>
public static class IntentEvaluation
{
    private const int LatencySamples = 300;

    public static EvaluationReport Run(BertModel model, IReadOnlyList<IntentExample> train, IReadOnlyList<IntentExample> test, int threads, ClassifierTraining settings, double? threshold = null)
    {
        using var features = new SentenceFeatures([model], threads);
        return Run(features, train, test, settings with { Threads = threads }, threshold);
    }

    /// <param name="settings">Training settings; with <paramref name="selectL2"/> its L2 is replaced by the best of <see cref="HeadTraining.L2Candidates"/>.</param>
    /// <param name="threshold">A fixed "not recognized" threshold (0: never reject); null to calibrate it.</param>
    /// <param name="featureCache">A directory that keeps embedded example sets between runs (see <see cref="ExampleFeatures.Embed(SentenceFeatures, IReadOnlyList{IntentExample}, string?)"/>), or null.</param>
    /// <param name="lexicalWeight">A fixed weight of the lexical classifier (0: embeddings alone); null to choose it on the held-out split.</param>
    public static EvaluationReport Run(SentenceFeatures features, IReadOnlyList<IntentExample> train, IReadOnlyList<IntentExample> test,
        ClassifierTraining settings, double? threshold = null, bool selectL2 = true, string? featureCache = null, float? lexicalWeight = null, double? distanceQuantile = null)
    {
        if (train.Count == 0 || test.Count == 0)
        {
            throw new FormatException($"training and test files need examples (got {train.Count} and {test.Count})");
        }
        int dimension = features.Dimension;
        var clock = Stopwatch.StartNew();
        TrainedHead trained = HeadTraining.Train(features, train, settings, threshold, selectL2, featureCache, lexicalWeight, distanceQuantile);
        IntentHead head = trained.Head;
        double rejectBelow = trained.Threshold;
        double trainSeconds = clock.Elapsed.TotalSeconds;
        double embedSeconds = trained.EmbedSeconds;
        float chosenL2 = trained.L2;
        string[] classes = head.Classes.ToArray();

        SlotTagger? tagger = trained.Tagger;
        TokenStates? testTokens = tagger is null ? null : new TokenStates();
        float[] testFeatures = ExampleFeatures.Embed(features, test, featureCache, testTokens);
        var probabilities = new float[classes.Length];
        var predicted = new string[test.Count];
        for (int i = 0; i < test.Count; i++)
        {
            ReadOnlySpan<float> row = testFeatures.AsSpan(i * dimension, dimension);
            predicted[i] = trained.TooFar(row) ? IntentExample.OutOfScope : head.Decide(row, test[i].Text, probabilities, rejectBelow);
        }

        string[] expected = test.Select(e => e.Intent).ToArray();
        (double? slotPrecision, double? slotRecall, double? slotF1) = SlotScores(train, test, predicted, tagger, testTokens);
        bool hasOutOfScope = expected.Contains(IntentExample.OutOfScope) || classes.Contains(IntentExample.OutOfScope);
        int inScope = expected.Count(e => e != IntentExample.OutOfScope);
        int outOfScope = expected.Length - inScope;
        int predictedOutOfScope = predicted.Count(p => p == IntentExample.OutOfScope);
        int correctOutOfScope = expected.Zip(predicted).Count(p => p.First == IntentExample.OutOfScope && p.Second == IntentExample.OutOfScope);
        (double p50, double p99, double slotsP50) = Latency(features, trained, test);

        return new EvaluationReport(
            test.Count,
            expected.Zip(predicted).Count(p => p.First == p.Second) / (double)test.Count,
            MacroF1(expected, predicted),
            inScope == 0 ? 0 : expected.Zip(predicted).Count(p => p.First != IntentExample.OutOfScope && p.First == p.Second) / (double)inScope,
            hasOutOfScope && outOfScope > 0 ? correctOutOfScope / (double)outOfScope : null,
            hasOutOfScope && predictedOutOfScope > 0 ? correctOutOfScope / (double)predictedOutOfScope : null,
            slotF1,
            slotPrecision,
            slotRecall,
            p50,
            p99,
            rejectBelow,
            expected.Zip(predicted).Where(p => p.First != p.Second).GroupBy(p => p)
                .Select(g => (g.Key.First, g.Key.Second, g.Count())).OrderByDescending(g => g.Item3).ThenBy(g => g.First, StringComparer.Ordinal).Take(10).ToList(),
            trainSeconds,
            embedSeconds,
            head,
            train.Count,
            chosenL2,
            trained,
            slotsP50);
    }

    /// <summary>
    /// Slot precision, recall and F1 over the test file (null when it has no slot annotations), as conlleval counts
    /// entities: each test utterance's slots are found for the predicted intent as the engine finds them (the
    /// <paramref name="tagger"/>'s spans, valued by extractors whose lists are learnt from the training file's
    /// annotations; <see cref="SlotFilling"/>), and a slot counts as right when its name and character range both
    /// equal an annotation's; precision = right / found, recall = right / annotated, over all slots of all
    /// utterances (micro-averaged).
    /// </summary>
    private static (double? Precision, double? Recall, double? F1) SlotScores(IReadOnlyList<IntentExample> train, IReadOnlyList<IntentExample> test, string[] predicted,
        SlotTagger? tagger, TokenStates? tokens)
    {
        if (!test.Any(e => e.Slots.Count > 0) || !train.Any(e => e.Slots.Count > 0))
        {
            return (null, null, null);
        }
        var library = IntentLibrary.Parse("{}", "none");
        var extractors = train.GroupBy(e => e.Intent, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => SlotExtractor.ForIntent(library, g.Key, g), StringComparer.Ordinal);
        long right = 0, found = 0, annotated = 0;
        var spans = new List<TaggedSpan>();
        for (int i = 0; i < test.Count; i++)
        {
            var gold = test[i].Slots.Select(s => (s.Slot, s.Start, s.End)).ToHashSet();
            annotated += gold.Count;
            spans.Clear();
            tagger?.Tag(test[i].Text, predicted[i], tokens!.States(i), tokens.Starts(i), tokens.Ends(i), spans);
            extractors.TryGetValue(predicted[i], out SlotExtractor? extractor);
            if (extractor is null && spans.Count == 0)
            {
                continue;
            }
            foreach (SlotValue slot in SlotFilling.Fill(test[i].Text, spans, extractor, tagger))
            {
                found++;
                if (gold.Contains((slot.Slot, slot.Start, slot.End))) right++;
            }
        }
        double precision = found == 0 ? 0 : right / (double)found, recall = annotated == 0 ? 0 : right / (double)annotated;
        return (precision, recall, precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall));
    }

    private static double MacroF1(string[] expected, string[] predicted)
    {
        var labels = expected.Distinct(StringComparer.Ordinal).ToArray();
        double total = 0;
        foreach (string label in labels)
        {
            int truePositive = expected.Zip(predicted).Count(p => p.First == label && p.Second == label);
            int predictedCount = predicted.Count(p => p == label);
            int expectedCount = expected.Count(e => e == label);
            double precision = predictedCount == 0 ? 0 : truePositive / (double)predictedCount;
            double recall = truePositive / (double)expectedCount;
            total += precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
        }
        return total / labels.Length;
    }

    /// <summary>
    /// p50 and p99 time of one utterance end to end: tokenize, embed with every encoder, classify, tag its slots;
    /// and the p50 of the part that the slot tagger and the distance to the training sentences add (finding the
    /// pieces' ranges, the distance, tagging), timed within the same utterances.
    /// </summary>
    private static (double P50, double P99, double SlotsP50) Latency(SentenceFeatures features, TrainedHead trained, IReadOnlyList<IntentExample> test)
    {
        (IntentHead head, SlotTagger? tagger, double threshold) = (trained.Head, trained.Tagger, trained.Threshold);
        var embedding = new float[features.Dimension];
        TokenStates? tokens = tagger is null ? null : new TokenStates();
        var spans = new List<TaggedSpan>();
        var text = new string[1];
        var probabilities = new float[head.Classes.Count];
        var times = new List<double>();
        var added = new List<double>();
        for (int i = 0; i < Math.Min(LatencySamples, test.Count); i++)
        {
            long start = Stopwatch.GetTimestamp();
            text[0] = test[i].Text;
            features.Embed(text, embedding, [], tokens);
            long embedded = Stopwatch.GetTimestamp();
            bool tooFar = trained.TooFar(embedding);
            long measured = Stopwatch.GetTimestamp();
            string intent = tooFar ? IntentExample.OutOfScope : head.Decide(embedding, test[i].Text, probabilities, threshold);
            long decided = Stopwatch.GetTimestamp();
            if (tagger is not null)
            {
                spans.Clear();
                tagger.Tag(test[i].Text, intent, tokens!.States(0), tokens.Starts(0), tokens.Ends(0), spans);
            }
            long end = Stopwatch.GetTimestamp();
            times.Add(Stopwatch.GetElapsedTime(start, end).TotalMicroseconds);
            added.Add(Stopwatch.GetElapsedTime(embedded, measured).TotalMicroseconds + Stopwatch.GetElapsedTime(decided, end).TotalMicroseconds);
        }
        times.Sort();
        added.Sort();
        return (times[Math.Min(times.Count - 1, (int)(times.Count * 0.50))], times[Math.Min(times.Count - 1, (int)(times.Count * 0.99))], added[added.Count / 2]);
    }
}
