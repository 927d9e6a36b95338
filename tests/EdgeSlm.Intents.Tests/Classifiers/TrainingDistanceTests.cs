using EdgeSlm.Intents.Classifiers;

namespace EdgeSlm.Intents.Tests.Classifiers;

public sealed class TrainingDistanceTests
{
    /// <summary>(rows, stride) features around three class centres, the first <paramref name="d"/> used; labels with some rows left out (−1).</summary>
    private static (float[] Features, int[] Labels) Data(int rows, int d, int stride, int seed)
    {
        var random = new Random(seed);
        var features = new float[rows * stride];
        var labels = new int[rows];
        for (int r = 0; r < rows; r++)
        {
            labels[r] = r % 7 == 6 ? -1 : r % 3;
            for (int i = 0; i < stride; i++)
            {
                double correlated = i > 0 ? 0.5 * features[r * stride + i - 1] : 0;
                features[r * stride + i] = (float)(correlated + (labels[r] == i % 3 ? 2 : 0) + random.NextDouble() * (1 + i % 2));
            }
        }
        return (features, labels);
    }

    /// <summary>The same distance from its definition: the shrunk covariance inverted by Gauss-Jordan, in double.</summary>
    private static double Reference(float[] features, int[] labels, int rows, int d, int stride, ReadOnlySpan<float> x)
    {
        var means = new double[3, d];
        var counts = new int[3];
        for (int r = 0; r < rows; r++)
        {
            if (labels[r] < 0) continue;
            counts[labels[r]]++;
            for (int i = 0; i < d; i++) means[labels[r], i] += features[r * stride + i];
        }
        for (int c = 0; c < 3; c++) for (int i = 0; i < d; i++) means[c, i] /= counts[c];
        var a = new double[d, 2 * d];
        int used = counts.Sum();
        for (int r = 0; r < rows; r++)
        {
            if (labels[r] < 0) continue;
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++)
                    a[i, j] += (features[r * stride + i] - means[labels[r], i]) * (features[r * stride + j] - means[labels[r], j]) / used;
        }
        double trace = 0;
        for (int i = 0; i < d; i++) trace += a[i, i];
        for (int i = 0; i < d; i++) { a[i, i] += TrainingDistance.Shrinkage * trace / d; a[i, d + i] = 1; }
        for (int col = 0; col < d; col++)
        {
            double pivot = a[col, col];
            for (int j = 0; j < 2 * d; j++) a[col, j] /= pivot;
            for (int i = 0; i < d; i++)
            {
                if (i == col) continue;
                double factor = a[i, col];
                for (int j = 0; j < 2 * d; j++) a[i, j] -= factor * a[col, j];
            }
        }
        double best = double.PositiveInfinity;
        for (int c = 0; c < 3; c++)
        {
            double sum = 0;
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++)
                    sum += (x[i] - means[c, i]) * a[i, d + j] * (x[j] - means[c, j]);
            best = Math.Min(best, sum);
        }
        return best;
    }

    [Theory]
    [InlineData(1, 3, 5)]
    [InlineData(6, 8, 6)]
    [InlineData(17, 20, 7)]
    public void Distance_is_the_shared_covariance_Mahalanobis_distance_to_the_nearest_mean(int d, int stride, int seed)
    {
        const int rows = 300;
        (float[] features, int[] labels) = Data(rows, d, stride, seed);
        TrainingDistance distance = TrainingDistance.Fit(features, stride, rows, labels, 3, d);
        for (int r = 0; r < 40; r++)
        {
            ReadOnlySpan<float> x = features.AsSpan(r * stride, stride);
            double expected = Reference(features, labels, rows, d, stride, x);
            Assert.True(Math.Abs(distance.Distance(x) - expected) <= 1e-3 * (1 + expected), $"row {r}: {distance.Distance(x)} against {expected}");
        }
        // Far from every mean is far.
        float[] outlier = Enumerable.Repeat(40f, stride).ToArray();
        Assert.True(distance.Distance(outlier) > 10 * distance.Distance(features.AsSpan(0, stride)));
    }

    [Fact]
    public void File_round_trip_keeps_the_distance_and_damage_is_named()
    {
        (float[] features, int[] labels) = Data(200, 6, 6, 9);
        TrainingDistance distance = TrainingDistance.Fit(features, 6, 200, labels, 3, 6);
        using var stream = new MemoryStream();
        distance.Write(stream);
        byte[] bytes = stream.ToArray();
        TrainingDistance read = TrainingDistance.Read(new MemoryStream(bytes));
        for (int r = 0; r < 20; r++)
        {
            Assert.Equal(distance.Distance(features.AsSpan(r * 6, 6)), read.Distance(features.AsSpan(r * 6, 6)));
        }
        bytes[30] ^= 0x10;
        var error = Assert.Throws<InvalidDataException>(() => TrainingDistance.Read(new MemoryStream(bytes)));
        Assert.Contains("checksum", error.Message);
    }
}
