using System.Diagnostics;
using System.Numerics.Tensors;
using EdgeSlm.EdgeModule.Model;

namespace EdgeSlm.EdgeModule.Intents;

/// <summary>What <c>edgeslm eval</c> reports. Nullable figures are those the test file cannot give.</summary>
public sealed record EvaluationReport(
    int Count,
    double Accuracy,
    double MacroF1,
    double InScopeAccuracy,
    double? OutOfScopeRecall,
    double? OutOfScopePrecision,
    double? SlotF1,
    double P50Microseconds,
    double P99Microseconds,
    double Threshold,
    IReadOnlyList<(string Expected, string Predicted, int Count)> Confusions,
    double TrainSeconds);

/// <summary>
/// Trains an intent classifier on one JSONL file and measures it on another: the sentences are embedded with the
/// int4 encoder in batches, a <see cref="SoftmaxClassifier"/> is trained on 90% of the training file and its
/// "not recognized" threshold is calibrated on the other 10% (held out from training, never from the test file).
/// </summary>
public static class IntentEvaluation
{
    private const int BatchSentences = 32;
    private const int LatencySamples = 300;

    /// <param name="threshold">A fixed "not recognized" threshold (0: never reject); null to calibrate it.</param>
    public static EvaluationReport Run(BertModel model, IReadOnlyList<IntentExample> train, IReadOnlyList<IntentExample> test, int threads, ClassifierTraining settings, double? threshold = null)
    {
        if (train.Count == 0 || test.Count == 0)
        {
            throw new FormatException($"training and test files need examples (got {train.Count} and {test.Count})");
        }
        var tokenizer = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength);
        using var encoder = new BertEncoder(model, threads);
        int dimension = model.Config.HiddenSize;

        string[] classes = train.Select(e => e.Intent).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var classIndex = classes.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
        (List<IntentExample> fit, List<IntentExample> calibration) = HoldOut(train, 0.1, settings.Seed);

        var clock = Stopwatch.StartNew();
        float[] fitFeatures = Embed(encoder, tokenizer, fit, dimension);
        SoftmaxClassifier classifier = SoftmaxClassifier.Train(classes, fitFeatures, fit.Select(e => classIndex[e.Intent]).ToArray(), dimension, settings);
        double rejectBelow = threshold ?? Calibrate(classifier, Embed(encoder, tokenizer, calibration, dimension), calibration);
        double trainSeconds = clock.Elapsed.TotalSeconds;

        float[] testFeatures = Embed(encoder, tokenizer, test, dimension);
        var probabilities = new float[classes.Length];
        var predicted = new string[test.Count];
        for (int i = 0; i < test.Count; i++)
        {
            predicted[i] = Decide(classifier, testFeatures.AsSpan(i * dimension, dimension), probabilities, rejectBelow);
        }

        string[] expected = test.Select(e => e.Intent).ToArray();
        bool hasOutOfScope = expected.Contains(IntentExample.OutOfScope) || classes.Contains(IntentExample.OutOfScope);
        int inScope = expected.Count(e => e != IntentExample.OutOfScope);
        int outOfScope = expected.Length - inScope;
        int predictedOutOfScope = predicted.Count(p => p == IntentExample.OutOfScope);
        int correctOutOfScope = expected.Zip(predicted).Count(p => p.First == IntentExample.OutOfScope && p.Second == IntentExample.OutOfScope);

        return new EvaluationReport(
            test.Count,
            expected.Zip(predicted).Count(p => p.First == p.Second) / (double)test.Count,
            MacroF1(expected, predicted),
            inScope == 0 ? 0 : expected.Zip(predicted).Count(p => p.First != IntentExample.OutOfScope && p.First == p.Second) / (double)inScope,
            hasOutOfScope && outOfScope > 0 ? correctOutOfScope / (double)outOfScope : null,
            hasOutOfScope && predictedOutOfScope > 0 ? correctOutOfScope / (double)predictedOutOfScope : null,
            null,
            LatencyPercentile(encoder, tokenizer, classifier, test, rejectBelow, dimension, 0.50),
            LatencyPercentile(encoder, tokenizer, classifier, test, rejectBelow, dimension, 0.99),
            rejectBelow,
            expected.Zip(predicted).Where(p => p.First != p.Second).GroupBy(p => p)
                .Select(g => (g.Key.First, g.Key.Second, g.Count())).OrderByDescending(g => g.Item3).ThenBy(g => g.First, StringComparer.Ordinal).Take(10).ToList(),
            trainSeconds);
    }

    /// <summary>The class, or "oos" when the classifier is not confident enough (or says out-of-scope itself).</summary>
    public static string Decide(SoftmaxClassifier classifier, ReadOnlySpan<float> features, Span<float> probabilities, double threshold)
    {
        classifier.Predict(features, probabilities);
        int best = TensorPrimitives.IndexOfMax(probabilities[..classifier.Classes.Count]);
        return probabilities[best] < threshold ? IntentExample.OutOfScope : classifier.Classes[best];
    }

    /// <summary>
    /// The confidence below which an utterance is "not recognized". With out-of-scope examples held out: the lowest
    /// threshold at which at least <see cref="OutOfScopeRecallTarget"/> of them are rejected (by the threshold or
    /// by the explicit out-of-scope class), so in-scope accuracy loses no more than needed. Without: the level
    /// that still accepts 99% of the held-out in-scope utterances the classifier gets right.
    /// </summary>
    internal static double Calibrate(SoftmaxClassifier classifier, float[] features, IReadOnlyList<IntentExample> heldOut)
    {
        if (heldOut.Count == 0)
        {
            return 0;
        }
        int dimension = classifier.Dimension;
        var probabilities = new float[classifier.Classes.Count];
        var scored = new List<(float Confidence, bool InScope, bool Correct, bool PredictedOutOfScope)>();
        for (int i = 0; i < heldOut.Count; i++)
        {
            classifier.Predict(features.AsSpan(i * dimension, dimension), probabilities);
            int best = TensorPrimitives.IndexOfMax(probabilities.AsSpan());
            string predicted = classifier.Classes[best];
            scored.Add((probabilities[best], heldOut[i].Intent != IntentExample.OutOfScope, predicted == heldOut[i].Intent, predicted == IntentExample.OutOfScope));
        }
        var outOfScope = scored.Where(s => !s.InScope).ToList();
        if (outOfScope.Count == 0)
        {
            float[] correct = scored.Where(s => s.Correct).Select(s => s.Confidence).Order().ToArray();
            return correct.Length == 0 ? 0 : correct[(int)(correct.Length * 0.01)];
        }
        foreach (float candidate in outOfScope.Select(s => s.Confidence).Append(0f).Select(c => c == 0f ? 0f : MathF.BitIncrement(c)).Distinct().Order())
        {
            double recall = outOfScope.Count(s => s.PredictedOutOfScope || s.Confidence < candidate) / (double)outOfScope.Count;
            if (recall >= OutOfScopeRecallTarget)
            {
                return candidate;
            }
        }
        return 1;
    }

    /// <summary>Share of held-out out-of-scope utterances the calibrated threshold must reject.</summary>
    public const double OutOfScopeRecallTarget = 0.6;

    internal static (List<IntentExample> Fit, List<IntentExample> HeldOut) HoldOut(IReadOnlyList<IntentExample> train, double fraction, int seed)
    {
        var random = new Random(seed);
        var fit = new List<IntentExample>();
        var heldOut = new List<IntentExample>();
        foreach (IGrouping<string, IntentExample> group in train.GroupBy(e => e.Intent).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            IntentExample[] examples = group.ToArray();
            random.Shuffle(examples);
            int take = examples.Length >= 5 ? (int)Math.Round(examples.Length * fraction) : 0;
            heldOut.AddRange(examples.Take(take));
            fit.AddRange(examples.Skip(take));
        }
        return (fit, heldOut);
    }

    public static float[] Embed(BertEncoder encoder, WordPieceTokenizer tokenizer, IReadOnlyList<IntentExample> examples, int dimension)
    {
        var features = new float[examples.Count * dimension];
        for (int start = 0; start < examples.Count; start += BatchSentences)
        {
            int count = Math.Min(BatchSentences, examples.Count - start);
            int[][] ids = Enumerable.Range(start, count).Select(i => tokenizer.Encode(examples[i].Text)).ToArray();
            encoder.Encode(ids.SelectMany(i => i).ToArray(), ids.Select(i => i.Length).ToArray(), features.AsSpan(start * dimension, count * dimension));
        }
        return features;
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

    private static double LatencyPercentile(BertEncoder encoder, WordPieceTokenizer tokenizer, SoftmaxClassifier classifier,
        IReadOnlyList<IntentExample> test, double threshold, int dimension, double percentile)
    {
        var embedding = new float[dimension];
        var probabilities = new float[classifier.Classes.Count];
        var times = new List<double>();
        for (int i = 0; i < Math.Min(LatencySamples, test.Count); i++)
        {
            long start = Stopwatch.GetTimestamp();
            int[] ids = tokenizer.Encode(test[i].Text);
            encoder.Encode(ids, [ids.Length], embedding);
            Decide(classifier, embedding, probabilities, threshold);
            times.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        }
        times.Sort();
        return times[Math.Min(times.Count - 1, (int)(times.Count * percentile))];
    }
}
