using System.Numerics.Tensors;

namespace EdgeSlm.EdgeModule.Intents;

/// <summary>Training settings of <see cref="SoftmaxClassifier"/>.</summary>
/// <param name="Epochs">Passes over the examples.</param>
/// <param name="BatchSize">Examples per gradient step.</param>
/// <param name="LearningRate">Adam's step size.</param>
/// <param name="L2">Weight decay: pulls weights toward zero, the regulariser of logistic regression.</param>
/// <param name="Seed">Shuffling is deterministic for a seed.</param>
public sealed record ClassifierTraining(int Epochs = 40, int BatchSize = 32, float LearningRate = 0.01f, float L2 = 1e-5f, int Seed = 20241126);

/// <summary>
/// Multinomial logistic regression on sentence embeddings: p(class | x) = softmax(W·x + b). Trained on the device
/// with mini-batch Adam; small enough (classes × dimension floats) to save next to the model and load instantly.
/// </summary>
public sealed class SoftmaxClassifier
{
    private readonly float[] _weights; // (classes, dimension)
    private readonly float[] _bias;    // (classes)

    public SoftmaxClassifier(IReadOnlyList<string> classes, int dimension, float[] weights, float[] bias)
    {
        if (weights.Length != classes.Count * dimension || bias.Length != classes.Count)
        {
            throw new ArgumentException($"{classes.Count} classes of dimension {dimension} need {classes.Count * dimension} weights and {classes.Count} biases");
        }
        Classes = classes;
        Dimension = dimension;
        _weights = weights;
        _bias = bias;
    }

    public IReadOnlyList<string> Classes { get; }
    public int Dimension { get; }
    public ReadOnlySpan<float> Weights => _weights;
    public ReadOnlySpan<float> Bias => _bias;

    /// <summary>Class probabilities of one feature vector.</summary>
    public void Predict(ReadOnlySpan<float> features, Span<float> probabilities)
    {
        for (int c = 0; c < Classes.Count; c++)
        {
            probabilities[c] = TensorPrimitives.Dot(features, _weights.AsSpan(c * Dimension, Dimension)) + _bias[c];
        }
        TensorPrimitives.SoftMax(probabilities[..Classes.Count], probabilities[..Classes.Count]);
    }

    /// <summary>Trains on <paramref name="features"/> (examples × dimension, row after row) with class indices.</summary>
    public static SoftmaxClassifier Train(IReadOnlyList<string> classes, float[] features, int[] labels, int dimension, ClassifierTraining settings)
    {
        int n = labels.Length, k = classes.Count;
        if (features.Length != n * dimension)
        {
            throw new ArgumentException($"{n} examples of dimension {dimension} need {n * dimension} features, not {features.Length}");
        }
        var weights = new float[k * dimension];
        var bias = new float[k];
        var gradient = new float[k * dimension];
        var biasGradient = new float[k];
        var m = new float[k * dimension];
        var v = new float[k * dimension];
        var mb = new float[k];
        var vb = new float[k];
        var logits = new float[k];
        var order = Enumerable.Range(0, n).ToArray();
        var random = new Random(settings.Seed);
        const float Beta1 = 0.9f, Beta2 = 0.999f, Epsilon = 1e-8f;
        int step = 0;
        for (int epoch = 0; epoch < settings.Epochs; epoch++)
        {
            random.Shuffle(order);
            for (int start = 0; start < n; start += settings.BatchSize)
            {
                int end = Math.Min(n, start + settings.BatchSize);
                Array.Clear(gradient);
                Array.Clear(biasGradient);
                for (int i = start; i < end; i++)
                {
                    int example = order[i];
                    ReadOnlySpan<float> x = features.AsSpan(example * dimension, dimension);
                    for (int c = 0; c < k; c++)
                    {
                        logits[c] = TensorPrimitives.Dot(x, weights.AsSpan(c * dimension, dimension)) + bias[c];
                    }
                    TensorPrimitives.SoftMax(logits, logits);
                    logits[labels[example]] -= 1f; // d(cross-entropy)/d(logit) = p - onehot
                    for (int c = 0; c < k; c++)
                    {
                        if (MathF.Abs(logits[c]) < 1e-6f) continue;
                        Span<float> g = gradient.AsSpan(c * dimension, dimension);
                        TensorPrimitives.MultiplyAdd(x, logits[c], g, g);
                        biasGradient[c] += logits[c];
                    }
                }
                float scale = 1f / (end - start);
                TensorPrimitives.Multiply(gradient, scale, gradient);
                TensorPrimitives.MultiplyAdd(weights, settings.L2, gradient, gradient);
                TensorPrimitives.Multiply(biasGradient, scale, biasGradient);
                step++;
                Adam(weights, gradient, m, v, settings.LearningRate, step);
                Adam(bias, biasGradient, mb, vb, settings.LearningRate, step);
            }
        }
        return new SoftmaxClassifier(classes, dimension, weights, bias);

        static void Adam(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> m, Span<float> v, float rate, int step)
        {
            float correction1 = 1f - MathF.Pow(Beta1, step), correction2 = 1f - MathF.Pow(Beta2, step);
            float stepSize = rate * MathF.Sqrt(correction2) / correction1;
            for (int i = 0; i < parameters.Length; i++)
            {
                m[i] = Beta1 * m[i] + (1 - Beta1) * gradient[i];
                v[i] = Beta2 * v[i] + (1 - Beta2) * gradient[i] * gradient[i];
                parameters[i] -= stepSize * m[i] / (MathF.Sqrt(v[i]) + Epsilon);
            }
        }
    }
}
