using System.Buffers;
using System.Numerics.Tensors;

namespace EdgeSlm.Intents.Classifiers;

/// <summary>
/// How far a sentence lies from the training sentences: the Mahalanobis distance of its sentence embedding (the
/// first <see cref="Dimension"/> features) to the nearest intent's mean, under one covariance shared by all
/// intents (Podolskiy et al. 2021 did this on transformer features for out-of-scope detection). The covariance is
/// shrunk towards its mean variance (<see cref="Shrinkage"/>) and kept as its Cholesky factor L, with each mean
/// whitened once (L⁻¹μ): a distance is one forward substitution and a squared norm per intent. It needs no
/// out-of-scope examples, so a threshold on it rests on the in-scope distribution, which a device has.
/// </summary>
public sealed class TrainingDistance
{
    /// <summary>Share of the mean variance added to the diagonal: the covariance of a few thousand sentences in hundreds of dimensions is nearly singular.</summary>
    public const double Shrinkage = 0.01;

    private readonly float[] _cholesky; // (dimension, dimension) lower triangle of L, LLᵀ = Σ
    private readonly float[] _means;    // (intents, dimension) L⁻¹ μ of each intent

    internal TrainingDistance(int dimension, float[] cholesky, float[] means)
    {
        if (dimension <= 0 || cholesky.Length != dimension * dimension || means.Length == 0 || means.Length % dimension != 0)
        {
            throw new ArgumentException($"a distance of dimension {dimension} has parameters of other sizes");
        }
        (Dimension, _cholesky, _means) = (dimension, cholesky, means);
    }

    public int Dimension { get; }
    public int Intents => _means.Length / Dimension;
    internal ReadOnlySpan<float> Cholesky => _cholesky;
    internal ReadOnlySpan<float> Means => _means;

    /// <summary>
    /// Fits the distance on the first <paramref name="dimension"/> features of <paramref name="rows"/> rows of
    /// <paramref name="features"/> (stride <paramref name="stride"/>); rows whose label is negative are left out.
    /// </summary>
    public static TrainingDistance Fit(ReadOnlySpan<float> features, int stride, int rows, ReadOnlySpan<int> labels, int classes, int dimension)
    {
        int d = dimension;
        var sums = new double[classes * d];
        var counts = new int[classes];
        for (int r = 0; r < rows; r++)
        {
            if (labels[r] < 0) continue;
            counts[labels[r]]++;
            ReadOnlySpan<float> x = features.Slice(r * stride, d);
            for (int i = 0; i < d; i++) sums[labels[r] * d + i] += x[i];
        }
        var means = new float[classes * d];
        for (int c = 0; c < classes; c++)
        {
            for (int i = 0; i < d; i++) means[c * d + i] = counts[c] == 0 ? 0 : (float)(sums[c * d + i] / counts[c]);
        }
        // Covariance of the rows around their intent's mean, in float rows accumulated into double.
        var covariance = new double[d * d];
        var centred = new float[d];
        var rowProducts = new float[d];
        int used = 0;
        for (int r = 0; r < rows; r++)
        {
            if (labels[r] < 0) continue;
            used++;
            TensorPrimitives.Subtract(features.Slice(r * stride, d), means.AsSpan(labels[r] * d, d), centred);
            for (int i = 0; i < d; i++)
            {
                TensorPrimitives.Multiply(centred.AsSpan(0, i + 1), centred[i], rowProducts.AsSpan(0, i + 1));
                for (int j = 0; j <= i; j++) covariance[i * d + j] += rowProducts[j];
            }
        }
        double trace = 0;
        for (int i = 0; i < d; i++) trace += covariance[i * d + i];
        double ridge = Shrinkage * trace / Math.Max(1, used) / d + 1e-9;
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j <= i; j++) covariance[i * d + j] /= Math.Max(1, used);
            covariance[i * d + i] += ridge;
        }
        // Cholesky, lower triangle in place.
        for (int j = 0; j < d; j++)
        {
            double diagonal = covariance[j * d + j];
            for (int k = 0; k < j; k++) diagonal -= covariance[j * d + k] * covariance[j * d + k];
            diagonal = Math.Sqrt(Math.Max(diagonal, 1e-12));
            covariance[j * d + j] = diagonal;
            for (int i = j + 1; i < d; i++)
            {
                double v = covariance[i * d + j];
                for (int k = 0; k < j; k++) v -= covariance[i * d + k] * covariance[j * d + k];
                covariance[i * d + j] = v / diagonal;
            }
        }
        var cholesky = new float[d * d];
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j <= i; j++) cholesky[i * d + j] = (float)covariance[i * d + j];
        }
        var whitened = new float[classes * d];
        for (int c = 0; c < classes; c++)
        {
            Whiten(cholesky, d, means.AsSpan(c * d, d), whitened.AsSpan(c * d, d));
        }
        return new TrainingDistance(d, cholesky, whitened);
    }

    /// <summary>z = L⁻¹ x by forward substitution.</summary>
    private static void Whiten(ReadOnlySpan<float> cholesky, int d, ReadOnlySpan<float> x, Span<float> z)
    {
        for (int i = 0; i < d; i++)
        {
            float v = x[i] - TensorPrimitives.Dot(cholesky.Slice(i * d, i), z[..i]);
            z[i] = v / cholesky[i * d + i];
        }
    }

    /// <summary>The squared Mahalanobis distance of <paramref name="features"/> (its first <see cref="Dimension"/>) to the nearest intent's mean.</summary>
    public float Distance(ReadOnlySpan<float> features)
    {
        int d = Dimension;
        float[] z = ArrayPool<float>.Shared.Rent(d);
        try
        {
            Whiten(_cholesky, d, features[..d], z.AsSpan(0, d));
            float best = float.PositiveInfinity;
            for (int c = 0; c < Intents; c++)
            {
                best = MathF.Min(best, TensorPrimitives.Distance(z.AsSpan(0, d), _means.AsSpan(c * d, d)));
            }
            return best * best;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(z);
        }
    }

    private static ReadOnlySpan<byte> Magic => "EDGEDIST"u8;
    private const uint FormatVersion = 1;
    private const int MaxDimension = 1 << 12;
    private const int MaxIntents = 1 << 16;

    /// <summary>Writes "EDGEDIST", version, dimension, intents, L's rows (lower triangle in full rows), the whitened means, a SHA-256.</summary>
    public void Write(Stream stream)
    {
        using var buffer = new MemoryStream();
        buffer.Write(Magic);
        ChecksummedReader.WriteUInt32(buffer, FormatVersion);
        ChecksummedReader.WriteUInt32(buffer, (uint)Dimension);
        ChecksummedReader.WriteUInt32(buffer, (uint)Intents);
        ChecksummedReader.WriteFloats(buffer, _cholesky);
        ChecksummedReader.WriteFloats(buffer, _means);
        ChecksummedReader.WriteWithChecksum(buffer, stream);
    }

    /// <exception cref="InvalidDataException">The stream does not hold a valid distance; the message says what is wrong.</exception>
    public static TrainingDistance Read(Stream stream)
    {
        const string kind = "training distance file";
        using var reader = new ChecksummedReader(stream, kind);
        reader.Header(Magic, FormatVersion);
        uint dimension = reader.UInt32("dimension");
        uint intents = reader.UInt32("intent count");
        if (dimension is 0 or > MaxDimension || intents is 0 or > MaxIntents)
        {
            throw new InvalidDataException($"{kind} has {intents} intents of dimension {dimension}; 1 to {MaxIntents} of 1 to {MaxDimension} are allowed");
        }
        long floats = (long)dimension * dimension + (long)intents * dimension;
        if (stream.CanSeek && stream.Length - stream.Position < floats * sizeof(float))
        {
            throw new InvalidDataException($"{kind}: {intents} intents of dimension {dimension} need {floats * sizeof(float)} bytes, more than the file has left");
        }
        float[] cholesky = reader.Floats((int)(dimension * dimension), "Cholesky factor");
        float[] means = reader.Floats((int)(intents * dimension), "means");
        reader.VerifyChecksum();
        for (int i = 0; i < dimension; i++)
        {
            if (!(cholesky[i * dimension + i] > 0)) throw new InvalidDataException($"{kind}: the Cholesky factor's diagonal {i} is not positive");
        }
        if (Array.FindIndex(cholesky, v => !float.IsFinite(v)) >= 0 || Array.FindIndex(means, v => !float.IsFinite(v)) >= 0)
        {
            throw new InvalidDataException($"{kind} holds a non-finite value");
        }
        return new TrainingDistance((int)dimension, cholesky, means);
    }
}
