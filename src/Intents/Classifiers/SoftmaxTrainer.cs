using System.Numerics.Tensors;
using EdgeSlm.Kernels.Float;

namespace EdgeSlm.Intents.Classifiers;

/// <summary>A trained <see cref="SoftmaxClassifier"/> and the standardised weights it came from (a warm start for the next candidate).</summary>
/// <param name="Weights">(classes, dimension) on the standardised features.</param>
/// <param name="Bias">(classes) on the standardised features.</param>
internal sealed record TrainedSoftmax(SoftmaxClassifier Classifier, float[] Weights, float[] Bias);

/// <summary>
/// Trains <see cref="SoftmaxClassifier"/>s on one training set with mini-batch Adam. The features are standardised
/// once, so candidates of several L2 strengths share that work, and a candidate may start from an earlier one's
/// weights. Each step is one hand-off to the threads, split by groups of classes: a class's gradient and Adam step
/// for the previous batch, then its logits for this batch (they need only that class's weights); the softmax over
/// the classes of each example follows on the calling thread. Every class's arithmetic is the same whichever thread
/// does it, so the result depends on the seed and not on the number of threads.
/// </summary>
internal sealed class SoftmaxTrainer
{
    private readonly string[] _classes;
    private readonly int[] _labels;           // (examples)
    private readonly bool _balanceClasses;
    private readonly float[] _standardised;   // (examples, dimension)
    private readonly float[] _mean;           // (dimension)
    private readonly float[] _scale;          // (dimension): 1 / standard deviation, floored

    public SoftmaxTrainer(IReadOnlyList<string> classes, float[] features, int[] labels, int dimension, bool balanceClasses)
    {
        int n = labels.Length, k = classes.Count;
        if (k == 0 || dimension <= 0 || features.Length != (long)n * dimension)
        {
            throw new ArgumentException($"{n} examples of dimension {dimension} need {(long)n * dimension} features, not {features.Length}, and at least one class");
        }
        if (n == 0 || labels.Any(l => (uint)l >= (uint)k))
        {
            throw new ArgumentException($"training needs examples whose labels are class indices below {k}");
        }
        _classes = classes.ToArray();
        _labels = labels;
        Dimension = dimension;
        (_mean, _scale) = SoftmaxClassifier.Standardisation(features, n, dimension);
        _standardised = new float[features.Length];
        for (int i = 0; i < n; i++)
        {
            Span<float> row = _standardised.AsSpan(i * dimension, dimension);
            TensorPrimitives.Subtract(features.AsSpan(i * dimension, dimension), _mean, row);
            TensorPrimitives.Multiply(row, _scale, row);
        }
        _balanceClasses = balanceClasses;
    }

    public int Dimension { get; }

    /// <summary>
    /// Trains with <paramref name="settings"/> (its epochs, L2, seed, threads), from zero weights or from
    /// <paramref name="start"/>'s; Adam's moments and the step-size schedule start afresh either way. With
    /// <paramref name="examples"/>, on the first that many examples only: the labels of the rest are not read (the
    /// standardisation is over all of them, which needs no labels), so one trainer, and one standardised copy of
    /// the features, serves the choice of settings on some examples and the final training on more.
    /// </summary>
    public TrainedSoftmax Train(ClassifierTraining settings, TrainedSoftmax? start = null, int? examples = null)
    {
        int n = examples ?? _labels.Length, k = _classes.Length, d = Dimension, batchSize = settings.BatchSize;
        if (settings.Epochs < 0 || batchSize <= 0)
        {
            throw new ArgumentException($"training needs a positive batch size and epochs not negative (got {batchSize} and {settings.Epochs})");
        }
        if (n < 1 || n > _labels.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(examples), n, $"training takes 1 to {_labels.Length} examples");
        }
        float[] exampleWeights = SoftmaxClassifier.ExampleWeights(_labels[..n], k, _balanceClasses); // class counts of the examples trained on
        if (start is not null && (start.Weights.Length != k * d || start.Bias.Length != k))
        {
            throw new ArgumentException($"a warm start needs {k} × {d} weights and {k} biases");
        }
        var step = new StepState(k, d, batchSize, Math.Max(1, settings.Threads), settings.L2,
            start?.Weights.ToArray() ?? new float[k * d], start?.Bias.ToArray() ?? new float[k]);
        var order = Enumerable.Range(0, n).ToArray();
        var random = new Random(settings.Seed);
        int batches = (n + batchSize - 1) / batchSize;
        int totalSteps = settings.Epochs * batches;
        int stepNumber = 0;
        for (int epoch = 0; epoch < settings.Epochs; epoch++)
        {
            random.Shuffle(order);
            for (int first = 0; first < n; first += batchSize)
            {
                int count = Math.Min(n, first + batchSize) - first;
                float rate = settings.LearningRate * 0.5f * (1f + MathF.Cos(MathF.PI * stepNumber / totalSteps));
                stepNumber++;
                RunClasses(step, order, first, count);
                // d(cross-entropy)/d(logit) = p − onehot, weighted, averaged over the batch.
                for (int i = 0; i < count; i++)
                {
                    int example = order[first + i];
                    Span<float> row = step.Scores.AsSpan(i * k, k);
                    StableSoftMax.InPlace(row);
                    row[_labels[example]] -= 1f;
                    TensorPrimitives.Multiply(row, exampleWeights[example] / count, row);
                }
                step.SetPending(order.AsSpan(first, count), rate, stepNumber);
            }
        }
        RunClasses(step, order, 0, 0); // the last batch's gradient step

        // Fold the standardisation into the weights: W·((x − μ) ⊙ s) + b = (W ⊙ s)·x + (b − (W ⊙ s)·μ).
        var weights = step.Weights.ToArray();
        var bias = step.Bias.ToArray();
        for (int c = 0; c < k; c++)
        {
            Span<float> row = weights.AsSpan(c * d, d);
            TensorPrimitives.Multiply(row, _scale, row);
            bias[c] -= TensorPrimitives.Dot(row, _mean);
        }
        return new TrainedSoftmax(new SoftmaxClassifier(_classes, d, weights, bias), step.Weights, step.Bias);
    }

    /// <summary>For every class: the pending batch's gradient step, then the logits of examples order[first..first + count).</summary>
    private void RunClasses(StepState step, int[] order, int first, int count)
    {
        int k = _classes.Length, groups = step.Scratch.Length;
        if (step.Threads == 1)
        {
            for (int group = 0; group < groups; group++)
            {
                RunClassGroup(step, order.AsSpan(first, count), group * ClassGroup, Math.Min(k, (group + 1) * ClassGroup), step.Scratch[group]);
            }
            return;
        }
        // Groups rather than one range per thread: a thread that the scheduler has not run yet leaves its groups
        // to the others instead of holding the step back.
        Parallel.For(0, groups, step.Parallel,
            group => RunClassGroup(step, order.AsSpan(first, count), group * ClassGroup, Math.Min(k, (group + 1) * ClassGroup), step.Scratch[group]));
    }

    /// <summary>Classes a job takes at a time; their gradients stay in cache until Adam uses them.</summary>
    private const int ClassGroup = 8;

    private void RunClassGroup(StepState step, ReadOnlySpan<int> batch, int firstClass, int endClass, float[] scratch)
    {
        int k = _classes.Length, d = Dimension;
        Span<float> gradients = scratch.AsSpan(0, ClassGroup * d);
        Span<float> adamScratch = scratch.AsSpan(ClassGroup * d, 2 * d);
        ReadOnlySpan<int> pending = step.Pending.AsSpan(0, step.PendingCount);
        if (pending.Length > 0)
        {
            BatchProducts.Gradients(_standardised, pending, step.Scores, step.Weights, step.L2, k, d, firstClass, endClass, gradients);
            for (int c = firstClass; c < endClass; c++)
            {
                float biasGradient = 0;
                for (int i = 0; i < pending.Length; i++)
                {
                    biasGradient += step.Scores[i * k + c];
                }
                Adam.Step(step.Weights.AsSpan(c * d, d), gradients.Slice((c - firstClass) * d, d), step.M.AsSpan(c * d, d), step.V.AsSpan(c * d, d),
                    step.PendingRate, step.PendingStep, adamScratch);
                Adam.Step(step.Bias.AsSpan(c, 1), [biasGradient], step.MBias.AsSpan(c, 1), step.VBias.AsSpan(c, 1), step.PendingRate, step.PendingStep, adamScratch);
            }
        }
        BatchProducts.Logits(_standardised, batch, step.Weights, step.Bias, d, firstClass, endClass, step.Scores);
    }

    /// <summary>The optimiser's state between steps.</summary>
    private sealed class StepState(int classes, int dimension, int batchSize, int threads, float l2, float[] weights, float[] bias)
    {
        public int Threads { get; } = threads;
        public ParallelOptions Parallel { get; } = new() { MaxDegreeOfParallelism = threads };
        public float L2 { get; } = l2;
        public float[] Weights { get; } = weights;                            // (classes, dimension), standardised
        public float[] Bias { get; } = bias;                                  // (classes)
        public float[] M { get; } = new float[classes * dimension];           // Adam's first moment
        public float[] V { get; } = new float[classes * dimension];           // Adam's second moment
        public float[] MBias { get; } = new float[classes];
        public float[] VBias { get; } = new float[classes];
        public float[] Scores { get; } = new float[batchSize * classes];      // (batch, classes): logits, then d(loss)/d(logit)
        public int[] Pending { get; } = new int[batchSize];                   // the examples whose d(loss)/d(logit) are in Scores
        public int PendingCount { get; private set; }
        public float PendingRate { get; private set; }
        public int PendingStep { get; private set; }
        public float[][] Scratch { get; } = Enumerable.Range(0, (classes + ClassGroup - 1) / ClassGroup).Select(_ => new float[(ClassGroup + 2) * dimension]).ToArray(); // per class group: its gradients, Adam's two

        public void SetPending(ReadOnlySpan<int> examples, float rate, int stepNumber)
        {
            examples.CopyTo(Pending);
            PendingCount = examples.Length;
            PendingRate = rate;
            PendingStep = stepNumber;
        }
    }
}

/// <summary>Adam (Kingma and Ba), β1 = 0.9, β2 = 0.999, ε = 1e-8, with bias correction folded into the step size.</summary>
internal static class Adam
{
    private const float Beta1 = 0.9f, Beta2 = 0.999f, Epsilon = 1e-8f;

    private static float StepSize(float rate, int step) =>
        rate * MathF.Sqrt(1f - MathF.Pow(Beta2, step)) / (1f - MathF.Pow(Beta1, step));

    /// <summary>One step of <paramref name="parameters"/>; <paramref name="scratch"/> holds at least twice their length. Rounds as <see cref="StepReference"/> does.</summary>
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> m, Span<float> v, float rate, int step, Span<float> scratch)
    {
        float stepSize = StepSize(rate, step);
        Span<float> a = scratch[..parameters.Length], b = scratch.Slice(parameters.Length, parameters.Length);
        // m = β1·m + (1 − β1)·g
        TensorPrimitives.Multiply(m, Beta1, m);
        TensorPrimitives.MultiplyAdd(gradient, 1 - Beta1, m, m);
        // v = β2·v + (1 − β2)·g·g
        TensorPrimitives.Multiply(gradient, 1 - Beta2, a);
        TensorPrimitives.Multiply(a, gradient, a);
        TensorPrimitives.Multiply(v, Beta2, v);
        TensorPrimitives.Add(v, a, v);
        // θ −= stepSize·m / (√v + ε)
        TensorPrimitives.Sqrt(v, a);
        TensorPrimitives.Add(a, Epsilon, a);
        TensorPrimitives.Multiply(m, stepSize, b);
        TensorPrimitives.Divide(b, a, b);
        TensorPrimitives.Subtract(parameters, b, parameters);
    }

    /// <summary>The same step one element at a time: what <see cref="Step"/> is held to.</summary>
    public static void StepReference(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> m, Span<float> v, float rate, int step)
    {
        float stepSize = StepSize(rate, step);
        for (int i = 0; i < parameters.Length; i++)
        {
            m[i] = Beta1 * m[i] + (1 - Beta1) * gradient[i];
            v[i] = Beta2 * v[i] + (1 - Beta2) * gradient[i] * gradient[i];
            parameters[i] -= stepSize * m[i] / (MathF.Sqrt(v[i]) + Epsilon);
        }
    }
}
