using System.Numerics.Tensors;
using System.Text;

namespace EdgeSlm.Intents.Classifiers;

/// <summary>Training settings of <see cref="SoftmaxClassifier"/>.</summary>
/// <param name="Epochs">Passes over the examples; the step size decays to zero over them (cosine). 10: the dev accuracies of 30 within their noise (docs/accuracy.md), in a third of the time.</param>
/// <param name="BatchSize">Examples per gradient step.</param>
/// <param name="LearningRate">Adam's initial step size.</param>
/// <param name="L2">Weight decay on the standardised weights: the regulariser of logistic regression.</param>
/// <param name="Seed">Shuffling is deterministic for a seed.</param>
/// <param name="BalanceClasses">Weight each example by n / (classes × its class's count), so rare intents count as much as common ones.</param>
/// <param name="Threads">Threads that share each step's work (class by class); the result does not depend on it.</param>
public sealed record ClassifierTraining(int Epochs = 10, int BatchSize = 32, float LearningRate = 0.002f, float L2 = 1e-3f, int Seed = 20241126, bool BalanceClasses = false, int Threads = 1);

/// <summary>
/// Multinomial logistic regression on sentence features: p(class | x) = softmax(W·x + b). Trained on the device
/// with mini-batch Adam on standardised features (each dimension shifted by its mean and divided by its standard
/// deviation on the training set), which makes the problem well conditioned: unit-norm embeddings have
/// dimensions of about 1/√d, too small for a few epochs of Adam to reach the optimum. The standardisation is
/// folded into the weights after training (W' = W ⊙ s, b' = b − W'·μ), so prediction is one dot product per class.
/// Small enough (classes × dimension floats) to save next to the model and load instantly. Training is done by
/// <see cref="SoftmaxTrainer"/>.
/// </summary>
public sealed class SoftmaxClassifier
{
    private readonly string[] _classes;
    private readonly float[] _weights; // (classes, dimension), applied to raw features
    private readonly float[] _bias;    // (classes)

    public SoftmaxClassifier(IReadOnlyList<string> classes, int dimension, float[] weights, float[] bias)
    {
        if (classes.Count == 0 || dimension <= 0)
        {
            throw new ArgumentException($"a classifier needs classes and a positive dimension (got {classes.Count} classes of dimension {dimension})");
        }
        if (weights.Length != classes.Count * dimension || bias.Length != classes.Count)
        {
            throw new ArgumentException($"{classes.Count} classes of dimension {dimension} need {classes.Count * dimension} weights and {classes.Count} biases");
        }
        _classes = classes.ToArray();
        Dimension = dimension;
        _weights = weights;
        _bias = bias;
    }

    public IReadOnlyList<string> Classes => _classes;
    public int Dimension { get; }
    public ReadOnlySpan<float> Weights => _weights;
    public ReadOnlySpan<float> Bias => _bias;

    /// <summary>Class probabilities of one feature vector.</summary>
    public void Predict(ReadOnlySpan<float> features, Span<float> probabilities)
    {
        if (features.Length != Dimension || probabilities.Length < _classes.Length)
        {
            throw new ArgumentException($"need {Dimension} features and room for {_classes.Length} probabilities (got {features.Length} and {probabilities.Length})");
        }
        Logits(features, probabilities);
        StableSoftMax.InPlace(probabilities[.._classes.Length]);
    }

    private void Logits(ReadOnlySpan<float> features, Span<float> logits)
    {
        for (int c = 0; c < _classes.Length; c++)
        {
            logits[c] = TensorPrimitives.Dot(features, _weights.AsSpan(c * Dimension, Dimension)) + _bias[c];
        }
    }

    // Head file, version 1, all integers and floats little-endian:
    //   magic        8 bytes  "EDGEHEAD"
    //   version      u32      1
    //   classes      u32      k, 1..MaxClasses
    //   dimension    u32      d, 1..MaxDimension
    //   names        k times: u16 byte length (1..MaxNameBytes), UTF-8 bytes; distinct
    //   weights      k × d f32, class after class, applied to the raw features (standardisation folded in)
    //   bias         k f32
    //   checksum     32 bytes SHA-256 of everything before it
    private static ReadOnlySpan<byte> Magic => "EDGEHEAD"u8;
    private const uint FormatVersion = 1;
    private const int MaxClasses = 1 << 16;
    private const int MaxDimension = 1 << 16;
    private const int MaxNameBytes = 1024;
    private const long MaxFloats = 1 << 26; // 256 MB of weights

    /// <summary>Writes the head in its versioned binary format (see the layout above).</summary>
    public void Write(Stream stream)
    {
        using var buffer = new MemoryStream();
        buffer.Write(Magic);
        ChecksummedReader.WriteUInt32(buffer, FormatVersion);
        ChecksummedReader.WriteUInt32(buffer, (uint)_classes.Length);
        ChecksummedReader.WriteUInt32(buffer, (uint)Dimension);
        foreach (string name in _classes)
        {
            ChecksummedReader.WriteName(buffer, name, MaxNameBytes, "head file");
        }
        ChecksummedReader.WriteFloats(buffer, _weights);
        ChecksummedReader.WriteFloats(buffer, _bias);
        ChecksummedReader.WriteWithChecksum(buffer, stream);
    }

    /// <summary>Reads a head written by <see cref="Write"/>.</summary>
    /// <exception cref="InvalidDataException">The stream does not hold a valid head file; the message says what is wrong.</exception>
    public static SoftmaxClassifier Read(Stream stream)
    {
        using var reader = new ChecksummedReader(stream, "intent head file");
        reader.Header(Magic, FormatVersion);
        uint classCount = reader.UInt32("class count");
        uint dimension = reader.UInt32("dimension");
        if (classCount is 0 or > MaxClasses || dimension is 0 or > MaxDimension)
        {
            throw new InvalidDataException($"intent head file has {classCount} classes of dimension {dimension}; 1 to {MaxClasses} classes of 1 to {MaxDimension} are allowed");
        }
        long floats = (long)classCount * (dimension + 1);
        if (floats > MaxFloats || (stream.CanSeek && stream.Length - stream.Position < floats * sizeof(float)))
        {
            throw new InvalidDataException($"intent head file: {classCount} classes of dimension {dimension} need {floats * sizeof(float)} bytes of weights, more than {(floats > MaxFloats ? "a head file may hold" : "the file has left")}");
        }
        string[] classes = reader.DistinctNames((int)classCount, MaxNameBytes, "class");
        float[] weights = reader.Floats(checked((int)(classCount * dimension)), "weights");
        float[] bias = reader.Floats((int)classCount, "bias");
        reader.VerifyChecksum();
        int firstBad = Array.FindIndex(weights, w => !float.IsFinite(w));
        if (firstBad >= 0 || bias.Any(b => !float.IsFinite(b)))
        {
            throw new InvalidDataException($"intent head file holds a non-finite {(firstBad >= 0 ? $"weight (class {classes[firstBad / (int)dimension]})" : "bias")}");
        }
        return new SoftmaxClassifier(classes, (int)dimension, weights, bias);
    }

    /// <summary>Trains on <paramref name="features"/> (examples × dimension, row after row) with class indices.</summary>
    public static SoftmaxClassifier Train(IReadOnlyList<string> classes, float[] features, int[] labels, int dimension, ClassifierTraining settings) =>
        new SoftmaxTrainer(classes, features, labels, dimension, settings.BalanceClasses).Train(settings).Classifier;

    internal static (float[] Mean, float[] Scale) Standardisation(float[] features, int n, int dimension)
    {
        var mean = new double[dimension];
        var square = new double[dimension];
        for (int i = 0; i < n; i++)
        {
            for (int d = 0; d < dimension; d++)
            {
                double x = features[i * dimension + d];
                mean[d] += x;
                square[d] += x * x;
            }
        }
        var meanOut = new float[dimension];
        var deviation = new double[dimension];
        for (int d = 0; d < dimension; d++)
        {
            double mu = mean[d] / n;
            meanOut[d] = (float)mu;
            deviation[d] = Math.Sqrt(Math.Max(0, square[d] / n - mu * mu));
        }
        // A (nearly) constant dimension carries nothing, and dividing by its tiny deviation would turn rounding
        // noise, or an unseen sentence's ordinary value, into thousands of standard deviations (an early layer's
        // [CLS] state has one dimension at 0.995 in every sentence, deviation 2.5e-5). Deviations are therefore
        // floored at 1% of the median one.
        double floor = Math.Max(1e-6, 0.01 * deviation.Order().ElementAt(dimension / 2));
        var scaleOut = new float[dimension];
        for (int d = 0; d < dimension; d++)
        {
            scaleOut[d] = (float)(1 / Math.Max(deviation[d], floor));
        }
        return (meanOut, scaleOut);
    }

    internal static float[] ExampleWeights(int[] labels, int classes, bool balance)
    {
        var weights = new float[labels.Length];
        if (!balance)
        {
            Array.Fill(weights, 1f);
            return weights;
        }
        var counts = new int[classes];
        foreach (int label in labels) counts[label]++;
        int present = counts.Count(c => c > 0);
        for (int i = 0; i < labels.Length; i++)
        {
            weights[i] = labels.Length / (float)(present * counts[labels[i]]);
        }
        return weights;
    }
}
