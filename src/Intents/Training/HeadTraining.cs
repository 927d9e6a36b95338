using System.Diagnostics;
using System.Numerics.Tensors;
using EdgeSlm.Intents.Classifiers;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.Tagging;

namespace EdgeSlm.Intents.Training;

/// <summary>A trained head, its "not recognized" threshold, and how it was chosen.</summary>
/// <param name="Tagger">The slot tagger trained beside the head; null when no example has a slot span.</param>
/// <param name="Distance">The distance to the training sentences, with <paramref name="DistanceThreshold"/> above which an utterance is out of scope; null when not used.</param>
public sealed record TrainedHead(IntentHead Head, double Threshold, float L2, double EmbedSeconds, SlotTagger? Tagger = null, TrainingDistance? Distance = null, double DistanceThreshold = double.PositiveInfinity)
{
    /// <summary>Whether <paramref name="features"/> lie too far from the training sentences (always false without a distance).</summary>
    public bool TooFar(ReadOnlySpan<float> features) => Distance is not null && Distance.Distance(features) > DistanceThreshold;
}

/// <summary>
/// Trains the intent head as the module and <c>eval</c> do: part of the examples held out to choose the L2
/// strength of the <see cref="SoftmaxClassifier"/> and the weight of the <see cref="LexicalClassifier"/>, then a
/// refit with the chosen settings, and the "not recognized" threshold calibrated on the held-out out-of-scope
/// examples (never on a test file).
/// </summary>
public static class HeadTraining
{
    /// <summary>L2 strengths tried (on standardised features); the held-out split picks one.</summary>
    public static IReadOnlyList<float> L2Candidates { get; } = [1e-4f, 1e-3f, 1e-2f];

    /// <summary>Weights of the lexical classifier tried (0: embeddings alone); the held-out split picks one.</summary>
    public static IReadOnlyList<float> LexicalWeightCandidates { get; } = [0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.6f, 0.8f, 1f];

    /// <summary>Share of each intent held out for choosing L2 and calibrating the threshold.</summary>
    private const double HeldOutFraction = 0.1;

    /// <summary>
    /// Out-of-scope examples are held out at a higher rate: the threshold is set from them, and 10 of CLINC's
    /// 100 give a recall estimate too coarse to aim with (docs/accuracy.md).
    /// </summary>
    private const double OutOfScopeHeldOutFraction = 0.3;

    /// <summary>
    /// Trains the head as <c>eval</c> and the module do: hold out part of the examples, train one candidate per
    /// L2 strength on the rest and keep the best on the held-out part, train the lexical classifier on the same
    /// rest and choose its weight on the held-out part; then train both once more with the chosen settings on every
    /// example but the held-out out-of-scope ones (<see cref="Refit"/>) and calibrate the threshold on those. The
    /// candidates go from the strongest L2 to the weakest, each after the first starting from the one before it and
    /// trained for <see cref="WarmStartEpochs"/>. The held-out examples' probabilities are computed once per
    /// classifier; the weights of the words only recombine them.
    /// </summary>
    /// <param name="distanceQuantile">Share of held-out in-scope sentences the distance rule keeps (0: no distance rule); null: the best of <see cref="DistanceQuantiles"/> and none.</param>
    public static TrainedHead Train(SentenceFeatures features, IReadOnlyList<IntentExample> train, ClassifierTraining settings,
        double? threshold, bool selectL2 = true, string? featureCache = null, float? lexicalWeight = null, double? distanceQuantile = null)
    {
        int dimension = features.Dimension;
        string[] classes = train.Select(e => e.Intent).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        var classIndex = classes.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
        (List<IntentExample> fit, List<IntentExample> heldOut) = HoldOut(train, settings.Seed);
        // The held-out in-scope examples before the out-of-scope ones: the final head is trained on every row
        // before those (Refit).
        List<IntentExample> calibration = [.. heldOut.Where(e => e.Intent != IntentExample.OutOfScope), .. heldOut.Where(e => e.Intent == IntentExample.OutOfScope)];
        List<IntentExample> examples = [.. fit, .. calibration];

        var clock = Stopwatch.StartNew();
        // The pieces' states too when there are slots to tag: the same forward pass.
        TokenStates? tokens = examples.Any(e => e.Slots.Any(s => s.End > s.Start)) ? new TokenStates() : null;
        float[] exampleFeatures = ExampleFeatures.Embed(features, examples, featureCache, tokens); // (fitted, then held out; dimension)
        double embedSeconds = clock.Elapsed.TotalSeconds;
        ReadOnlyMemory<float> calibrationFeatures = exampleFeatures.AsMemory(fit.Count * dimension);
        int[] labels = examples.Select(e => classIndex[e.Intent]).ToArray();
        int[] fitLabels = labels[..fit.Count];
        int[] heldOutLabels = labels[fit.Count..];
        var trainer = new SoftmaxTrainer(classes, exampleFeatures, labels, dimension, settings.BalanceClasses);
        SoftmaxClassifier? classifier = null;
        float[] embeddingProbabilities = []; // (held out, classes) of the chosen classifier
        float chosenL2 = settings.L2;
        double bestScore = double.NegativeInfinity;
        TrainedSoftmax? previous = null;
        // With nothing held out (intents of fewer than 5 examples) there is one candidate and no score.
        float[] candidates = selectL2 && calibration.Count > 0 ? L2Candidates.OrderDescending().ToArray() : [settings.L2];
        foreach (float l2 in candidates)
        {
            previous = TrainCandidate(trainer, settings, l2, previous, fit.Count);
            float[] probabilities = Probabilities(new IntentHead(previous.Classifier, null, 0), calibration, calibrationFeatures.Span);
            double score = HeldOutScore(probabilities, classes.Length, heldOutLabels);
            if (classifier is null || score >= bestScore) // ties to the weaker L2, as when the candidates went upwards
            {
                (classifier, embeddingProbabilities, bestScore, chosenL2) = (previous.Classifier, probabilities, score, l2);
            }
        }

        var head = new IntentHead(classifier!, null, 0);
        if (lexicalWeight is not 0)
        {
            var lexical = LexicalClassifier.Train(classes, fit.Select(e => e.Text).ToArray(), fitLabels, new LexicalTraining(Seed: settings.Seed));
            var words = new float[calibration.Count * classes.Length];
            for (int i = 0; i < calibration.Count; i++)
            {
                lexical.LogProbabilities(calibration[i].Text, words.AsSpan(i * classes.Length, classes.Length));
            }
            // Without held-out examples there is nothing to choose with: the embeddings alone, as before.
            IReadOnlyList<float> weights = lexicalWeight is float fixedWeight ? [fixedWeight] : calibration.Count == 0 ? [0f] : LexicalWeightCandidates;
            bestScore = double.NegativeInfinity;
            foreach (float weight in weights)
            {
                var combined = new float[embeddingProbabilities.Length];
                for (int i = 0; i < calibration.Count; i++)
                {
                    Span<float> row = combined.AsSpan(i * classes.Length, classes.Length);
                    IntentHead.Combine(embeddingProbabilities.AsSpan(i * classes.Length, classes.Length), words.AsSpan(i * classes.Length, classes.Length), weight, row);
                }
                double score = HeldOutScore(combined, classes.Length, heldOutLabels);
                if (score > bestScore)
                {
                    (head, bestScore) = (new IntentHead(classifier!, lexical, weight), score);
                }
            }
        }

        int inScope = fit.Count + calibration.Count(e => e.Intent != IntentExample.OutOfScope);
        if (inScope > fit.Count) // else the refit would train on the same examples again
        {
            // The chosen candidate's schedule: the candidates before it, each warm-starting the next.
            float[] schedule = [.. candidates.TakeWhile(c => c != chosenL2), chosenL2];
            head = Refit(head, trainer, schedule, settings, examples.Take(inScope).Select(e => e.Text).ToArray(), labels[..inScope]);
        }
        // With out-of-scope examples to aim at, the distance to the training sentences may reject beside the
        // confidence: fitted on the fitted in-scope rows, its threshold the distance that keeps a share of the
        // held-out in-scope ones (which it never saw), and the confidence threshold calibrated after it. The share
        // (or no distance rule) is the one that keeps the most held-out in-scope sentences right at the recall aimed at.
        TrainingDistance? distance = null;
        double distanceThreshold = double.PositiveInfinity;
        float[] calibrationProbabilities = Probabilities(head, calibration, calibrationFeatures.Span);
        double rejectBelow = threshold ?? Calibrate(classes, calibrationProbabilities, calibration, new bool[calibration.Count]);
        int heldInScope = inScope - fit.Count;
        double[] shares = distanceQuantile is double fixedShare ? (fixedShare > 0 ? [fixedShare] : []) : DistanceQuantiles.ToArray();
        if (threshold is null && shares.Length > 0 && heldInScope > 0 && calibration.Count > heldInScope)
        {
            int outOfScopeClass = Array.IndexOf(classes, IntentExample.OutOfScope);
            int[] inScopeLabels = fitLabels.Select(l => l == outOfScopeClass ? -1 : l).ToArray();
            TrainingDistance fitted = TrainingDistance.Fit(exampleFeatures, dimension, fit.Count, inScopeLabels, classes.Length, features.FirstBlockDimension);
            var distances = new float[calibration.Count];
            for (int i = 0; i < calibration.Count; i++) distances[i] = fitted.Distance(calibrationFeatures.Span.Slice(i * dimension, dimension));
            float[] kept = distances[..heldInScope].Order().ToArray();
            int bestKept = distanceQuantile is null ? KeptRight(classes, calibrationProbabilities, heldOutLabels, heldInScope, rejectBelow, new bool[calibration.Count]) : -1;
            foreach (double share in shares)
            {
                float candidate = kept[Math.Clamp((int)Math.Ceiling(share * kept.Length) - 1, 0, kept.Length - 1)];
                bool[] farAway = distances.Select(d => d > candidate).ToArray();
                double confidence = Calibrate(classes, calibrationProbabilities, calibration, farAway);
                int right = KeptRight(classes, calibrationProbabilities, heldOutLabels, heldInScope, confidence, farAway);
                if (right > bestKept)
                {
                    (bestKept, distance, distanceThreshold, rejectBelow) = (right, fitted, candidate, confidence);
                }
            }
        }
        // The tagger learns from every in-scope example, as the refit head does.
        SlotTagger? tagger = tokens is null ? null
            : SlotTaggerTraining.Train(examples.Take(inScope).ToList(), tokens, new TaggerTraining(Seed: settings.Seed, Threads: settings.Threads));
        return new TrainedHead(head, rejectBelow, chosenL2, embedSeconds, tagger, distance, distanceThreshold);
    }

    /// <summary>
    /// The chosen head trained again, with the L2 <paramref name="schedule"/> that led to it (the stronger
    /// candidates before it, each warm-starting the next, as in the choice) and its words' weight, on the fitted
    /// examples and the held-out in-scope ones: a tenth more examples once they have served their purpose (what it
    /// gains, by cross-validation: docs/accuracy.md). The held-out out-of-scope examples stay out: the
    /// threshold is calibrated on them with this head, and only on them (<see cref="Calibrate"/> looks at nothing
    /// else), so their rejection rate stays an estimate for unseen sentences.
    /// </summary>
    private static IntentHead Refit(IntentHead chosen, SoftmaxTrainer trainer, float[] schedule, ClassifierTraining settings, string[] texts, int[] labels)
    {
        TrainedSoftmax? embedding = null;
        foreach (float l2 in schedule)
        {
            embedding = TrainCandidate(trainer, settings, l2, embedding, texts.Length);
        }
        if (chosen.Lexical is null || chosen.LexicalWeight == 0)
        {
            return new IntentHead(embedding!.Classifier, null, 0);
        }
        var lexical = LexicalClassifier.Train(chosen.Classes, texts, labels, new LexicalTraining(Seed: settings.Seed));
        return new IntentHead(embedding!.Classifier, lexical, chosen.LexicalWeight);
    }

    /// <summary>
    /// One L2 candidate on the first <paramref name="examples"/> rows: from zero for the settings' epochs, or from
    /// <paramref name="previous"/> (the next stronger candidate) for <see cref="WarmStartEpochs"/>.
    /// </summary>
    private static TrainedSoftmax TrainCandidate(SoftmaxTrainer trainer, ClassifierTraining settings, float l2, TrainedSoftmax? previous, int examples) =>
        previous is null
            ? trainer.Train(settings with { L2 = l2 }, examples: examples)
            : trainer.Train(settings with { L2 = l2, Epochs = Math.Min(settings.Epochs, WarmStartEpochs) }, previous, examples);

    /// <summary>(examples, classes) probabilities of <paramref name="head"/> on <paramref name="examples"/>, whose features are rows of <paramref name="features"/>.</summary>
    private static float[] Probabilities(IntentHead head, List<IntentExample> examples, ReadOnlySpan<float> features)
    {
        int k = head.Classes.Count, dimension = head.Embedding.Dimension;
        var probabilities = new float[examples.Count * k];
        for (int i = 0; i < examples.Count; i++)
        {
            head.Predict(features.Slice(i * dimension, dimension), examples[i].Text, probabilities.AsSpan(i * k, k));
        }
        return probabilities;
    }

    /// <summary>
    /// Epochs of each L2 candidate after the first (which has the settings' epochs): it starts from the weights of
    /// the one before it, the next stronger L2, which are near its own optimum: far fewer passes over the examples
    /// than training each candidate from zero, for the same dev accuracy (docs/accuracy.md).
    /// </summary>
    public const int WarmStartEpochs = 5;


    /// <summary>
    /// The confidence below which an utterance is "not recognized": the lowest threshold at which at least
    /// <see cref="OutOfScopeCalibrationRecall"/> of the held-out out-of-scope examples are rejected (by the threshold
    /// or by the explicit out-of-scope class), so in-scope accuracy loses no more than needed. Without out-of-scope
    /// examples there is nothing to aim at, and the threshold is 0: a level set from in-scope confidences alone
    /// (the first version accepted 99% of the held-out utterances it got right) only turns correct answers into
    /// rejections, 1 to 8 points of accuracy on the dev splits. Give out-of-scope examples, or a fixed threshold.
    /// </summary>
    /// <summary>
    /// Shares of the held-out in-scope sentences a distance rule may keep (<see cref="TrainingDistance"/>): the
    /// rest of them, and anything as far from the training sentences, is out of scope. Tried beside no distance
    /// rule when out-of-scope examples are held out (docs/accuracy.md).
    /// </summary>
    public static IReadOnlyList<double> DistanceQuantiles { get; } = [0.995, 0.99, 0.98, 0.95];

    /// <summary>Held-out in-scope sentences (the first <paramref name="inScope"/>) the rules accept with the right intent.</summary>
    private static int KeptRight(string[] classes, float[] probabilities, int[] labels, int inScope, double threshold, bool[] farAway)
    {
        int right = 0;
        for (int i = 0; i < inScope; i++)
        {
            ReadOnlySpan<float> row = probabilities.AsSpan(i * classes.Length, classes.Length);
            int best = TensorPrimitives.IndexOfMax(row);
            if (best == labels[i] && row[best] >= threshold && !farAway[i]) right++;
        }
        return right;
    }

    private static double Calibrate(string[] classes, float[] probabilities, IReadOnlyList<IntentExample> heldOut, bool[] farAway)
    {
        if (!heldOut.Any(e => e.Intent == IntentExample.OutOfScope))
        {
            return 0;
        }
        var scored = new List<(float Confidence, bool InScope, bool PredictedOutOfScope)>();
        for (int i = 0; i < heldOut.Count; i++)
        {
            ReadOnlySpan<float> row = probabilities.AsSpan(i * classes.Length, classes.Length);
            int best = TensorPrimitives.IndexOfMax(row);
            scored.Add((row[best], heldOut[i].Intent != IntentExample.OutOfScope, classes[best] == IntentExample.OutOfScope || farAway[i]));
        }
        var outOfScope = scored.Where(s => !s.InScope).ToList();
        foreach (float candidate in outOfScope.Select(s => s.Confidence).Append(0f).Select(c => c == 0f ? 0f : MathF.BitIncrement(c)).Distinct().Order())
        {
            double recall = outOfScope.Count(s => s.PredictedOutOfScope || s.Confidence < candidate) / (double)outOfScope.Count;
            if (recall >= OutOfScopeCalibrationRecall)
            {
                return candidate;
            }
        }
        return 1;
    }

    /// <summary>Share of unseen out-of-scope utterances the threshold is meant to reject.</summary>
    public const double OutOfScopeRecallTarget = 0.6;

    /// <summary>
    /// The recall the threshold is set for on the held-out out-of-scope examples: above the target, because
    /// the estimate rests on a few dozen examples (30 of CLINC's 100; one standard error is about 9 points).
    /// </summary>
    public const double OutOfScopeCalibrationRecall = 0.7;

    /// <summary>
    /// How a candidate classifier is ranked on the held-out split, from its (examples, classes) probabilities: the
    /// mean log-likelihood of the right intents. Held-out accuracy moves in steps of one example and chose the
    /// words' weight erratically (on HWU64 0.8 for one encoder file and 0.2 for another, 0.7 points apart on dev);
    /// the likelihood also counts how sure the right answers are, and chose the same weights for the f32 and q4_0
    /// files of every dataset (docs/accuracy.md).
    /// </summary>
    private static double HeldOutScore(float[] probabilities, int classes, int[] labels)
    {
        double logLikelihood = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            logLikelihood += Math.Log(Math.Max(1e-9, probabilities[i * classes + labels[i]]));
        }
        return labels.Length == 0 ? 0 : logLikelihood / labels.Length;
    }

    private static (List<IntentExample> Fit, List<IntentExample> HeldOut) HoldOut(IReadOnlyList<IntentExample> train, int seed)
    {
        var random = new Random(seed);
        var fit = new List<IntentExample>();
        var heldOut = new List<IntentExample>();
        foreach (IGrouping<string, IntentExample> group in train.GroupBy(e => e.Intent).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            IntentExample[] examples = group.ToArray();
            random.Shuffle(examples);
            double fraction = group.Key == IntentExample.OutOfScope ? OutOfScopeHeldOutFraction : HeldOutFraction;
            int take = examples.Length >= 5 ? (int)Math.Round(examples.Length * fraction) : 0;
            heldOut.AddRange(examples.Take(take));
            fit.AddRange(examples.Skip(take));
        }
        return (fit, heldOut);
    }
}
