using EdgeSlm.Intents.Classifiers;

namespace EdgeSlm.Intents.Tests.Classifiers;

/// <summary>The embedding classifier's training: its products and Adam against scalar references, and that it is reproducible.</summary>
public sealed class SoftmaxTrainerTests
{
    /// <summary>Weights after training, plain loop against the trainer: the rounding of fused and unfused sums, carried through the steps.</summary>
    private const float TrainedWeightTolerance = 2e-3f;

    private static float[] RandomFloats(Random random, int count, float scale = 1f)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        }
        return values;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(17)]
    [InlineData(256)]
    [InlineData(1153)]
    public void Vectorised_Adam_step_rounds_as_the_scalar_reference(int length)
    {
        var random = new Random(length + 1);
        float[] parameters = RandomFloats(random, length), m = RandomFloats(random, length, 0.01f), v = RandomFloats(random, length, 0.001f);
        for (int i = 0; i < length; i++) v[i] = MathF.Abs(v[i]);
        float[] parametersReference = parameters.ToArray(), mReference = m.ToArray(), vReference = v.ToArray();
        var scratch = new float[2 * length + 3];
        scratch.AsSpan()[^3..].Fill(42f); // guard past the two halves the step may use
        for (int step = 1; step <= 5; step++)
        {
            float[] gradient = RandomFloats(random, length, 0.1f);
            Adam.Step(parameters, gradient, m, v, 0.002f, step, scratch);
            Adam.StepReference(parametersReference, gradient, mReference, vReference, 0.002f, step);
        }
        Assert.Equal(parametersReference, parameters);
        Assert.Equal(mReference, m);
        Assert.Equal(vReference, v);
        Assert.All(scratch[^3..], s => Assert.Equal(42f, s));
    }

    private static (string[] Classes, float[] Features, int[] Labels) Problem(int classes, int perClass, int dimension, int seed)
    {
        var random = new Random(seed);
        float[][] centres = Enumerable.Range(0, classes).Select(_ => RandomFloats(random, dimension)).ToArray();
        var features = new float[classes * perClass * dimension];
        var labels = new int[classes * perClass];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = i % classes;
            for (int d = 0; d < dimension; d++)
            {
                features[i * dimension + d] = centres[labels[i]][d] + (float)(random.NextDouble() - 0.5) * 1.5f;
            }
        }
        return (Enumerable.Range(0, classes).Select(c => $"class{c}").ToArray(), features, labels);
    }

    [Fact]
    public void Training_gives_the_same_weights_for_any_number_of_threads_and_runs()
    {
        (string[] classes, float[] features, int[] labels) = Problem(classes: 11, perClass: 20, dimension: 37, seed: 3);
        var settings = new ClassifierTraining(Epochs: 4, BatchSize: 16);
        SoftmaxClassifier one = SoftmaxClassifier.Train(classes, features, labels, 37, settings with { Threads = 1 });
        foreach (int threads in new[] { 1, 2, 3, 8 })
        {
            SoftmaxClassifier other = SoftmaxClassifier.Train(classes, features, labels, 37, settings with { Threads = threads });
            Assert.Equal(one.Weights.ToArray(), other.Weights.ToArray());
            Assert.Equal(one.Bias.ToArray(), other.Bias.ToArray());
        }
        SoftmaxClassifier reseeded = SoftmaxClassifier.Train(classes, features, labels, 37, settings with { Seed = 7 });
        Assert.NotEqual(one.Weights.ToArray(), reseeded.Weights.ToArray());
    }

    [Fact]
    public void Trained_weights_equal_a_plain_loop_of_the_same_algorithm_within_rounding()
    {
        const int dimension = 13, batchSize = 8;
        (string[] classes, float[] features, int[] labels) = Problem(classes: 5, perClass: 12, dimension, seed: 9);
        var settings = new ClassifierTraining(Epochs: 6, BatchSize: batchSize, LearningRate: 0.01f, L2: 1e-2f, Threads: 2);
        SoftmaxClassifier trained = SoftmaxClassifier.Train(classes, features, labels, dimension, settings);
        (float[] weights, float[] bias) = PlainTraining(classes.Length, features, labels, dimension, settings);
        for (int i = 0; i < weights.Length; i++)
        {
            Assert.True(MathF.Abs(weights[i] - trained.Weights[i]) <= TrainedWeightTolerance * (1 + MathF.Abs(weights[i])), $"weight {i}: {trained.Weights[i]} against {weights[i]}");
        }
        for (int c = 0; c < bias.Length; c++)
        {
            Assert.True(MathF.Abs(bias[c] - trained.Bias[c]) <= TrainedWeightTolerance * (1 + MathF.Abs(bias[c])), $"bias {c}: {trained.Bias[c]} against {bias[c]}");
        }
    }

    /// <summary>The training as written before it was vectorised: one example, one class, one element at a time.</summary>
    private static (float[] Weights, float[] Bias) PlainTraining(int k, float[] features, int[] labels, int dimension, ClassifierTraining settings)
    {
        int n = labels.Length;
        (float[] mean, float[] scale) = SoftmaxClassifier.Standardisation(features, n, dimension);
        var x = new float[features.Length];
        for (int i = 0; i < x.Length; i++) x[i] = (features[i] - mean[i % dimension]) * scale[i % dimension];
        float[] w = new float[k * dimension], b = new float[k], m = new float[k * dimension], v = new float[k * dimension], mb = new float[k], vb = new float[k];
        var order = Enumerable.Range(0, n).ToArray();
        var random = new Random(settings.Seed);
        int totalSteps = settings.Epochs * ((n + settings.BatchSize - 1) / settings.BatchSize), step = 0;
        for (int epoch = 0; epoch < settings.Epochs; epoch++)
        {
            random.Shuffle(order);
            for (int start = 0; start < n; start += settings.BatchSize)
            {
                int count = Math.Min(n, start + settings.BatchSize) - start;
                float rate = settings.LearningRate * 0.5f * (1f + MathF.Cos(MathF.PI * step / totalSteps));
                step++;
                var g = new float[count * k];
                for (int i = 0; i < count; i++)
                {
                    int e = order[start + i];
                    double[] logits = Enumerable.Range(0, k).Select(c => (double)b[c] + Enumerable.Range(0, dimension).Sum(j => (double)x[e * dimension + j] * w[c * dimension + j])).ToArray();
                    double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));
                    for (int c = 0; c < k; c++) g[i * k + c] = (float)((Math.Exp(logits[c] - max) / sum - (c == labels[e] ? 1 : 0)) / count);
                }
                for (int c = 0; c < k; c++)
                {
                    var gradient = new float[dimension];
                    float biasGradient = 0;
                    for (int j = 0; j < dimension; j++)
                    {
                        gradient[j] = settings.L2 * w[c * dimension + j];
                        for (int i = 0; i < count; i++) gradient[j] += g[i * k + c] * x[order[start + i] * dimension + j];
                    }
                    for (int i = 0; i < count; i++) biasGradient += g[i * k + c];
                    Adam.StepReference(w.AsSpan(c * dimension, dimension), gradient, m.AsSpan(c * dimension, dimension), v.AsSpan(c * dimension, dimension), rate, step);
                    Adam.StepReference(b.AsSpan(c, 1), [biasGradient], mb.AsSpan(c, 1), vb.AsSpan(c, 1), rate, step);
                }
            }
        }
        for (int c = 0; c < k; c++)
        {
            for (int j = 0; j < dimension; j++)
            {
                w[c * dimension + j] *= scale[j];
                b[c] -= w[c * dimension + j] * mean[j];
            }
        }
        return (w, b);
    }

    [Fact]
    public void A_warm_start_of_no_epochs_returns_the_weights_it_started_from()
    {
        const int dimension = 9;
        (string[] classes, float[] features, int[] labels) = Problem(classes: 4, perClass: 10, dimension, seed: 4);
        var trainer = new SoftmaxTrainer(classes, features, labels, dimension, balanceClasses: false);
        TrainedSoftmax first = trainer.Train(new ClassifierTraining(Epochs: 3, BatchSize: 8, L2: 1e-2f));
        TrainedSoftmax again = trainer.Train(new ClassifierTraining(Epochs: 0, L2: 1e-3f), first);
        Assert.Equal(first.Weights, again.Weights);
        Assert.Equal(first.Classifier.Weights.ToArray(), again.Classifier.Weights.ToArray());
        TrainedSoftmax further = trainer.Train(new ClassifierTraining(Epochs: 2, BatchSize: 8, L2: 1e-3f), first);
        Assert.NotEqual(first.Weights, further.Weights);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Training_on_the_first_examples_ignores_the_labels_of_the_rest_and_differs_from_training_on_all(bool balanceClasses)
    {
        const int dimension = 9, fitted = 30;
        (string[] classes, float[] features, int[] labels) = Problem(classes: 4, perClass: 10, dimension, seed: 5);
        // The rest all relabelled to one class: with balanced classes, counting them would change every weight.
        int[] otherLabels = labels.Select((label, i) => i < fitted ? label : 0).ToArray();
        var settings = new ClassifierTraining(Epochs: 4, BatchSize: 8, L2: 1e-2f);

        TrainedSoftmax first = new SoftmaxTrainer(classes, features, labels, dimension, balanceClasses).Train(settings, examples: fitted);
        TrainedSoftmax relabelled = new SoftmaxTrainer(classes, features, otherLabels, dimension, balanceClasses).Train(settings, examples: fitted);
        TrainedSoftmax all = new SoftmaxTrainer(classes, features, labels, dimension, balanceClasses).Train(settings);

        Assert.Equal(first.Weights, relabelled.Weights);
        Assert.Equal(first.Bias, relabelled.Bias);
        Assert.NotEqual(first.Weights, all.Weights);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SoftmaxTrainer(classes, features, labels, dimension, balanceClasses: false).Train(settings, examples: labels.Length + 1));
    }
}
