using System.Numerics;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Float;

namespace EdgeSlm.Kernels.Tests.Float;

public sealed class BiasAndOutliersTests
{
    public static TheoryData<int, int, int, int> Cases() => new()
    {
        // tokens, columns, rows, outliers: MiniLM's shapes (4 outliers, 384 and 1536 rows), other counts, rows that are no whole vector.
        { 1, 384, 384, 4 }, { 7, 384, 1536, 4 }, { 3, 1536, 384, 4 }, { 2, 64, 40, 4 }, { 5, 64, 37, 3 }, { 4, 32, 64, 0 }, { 3, 50, 256, 1 }, { 0, 16, 16, 4 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Vector_tier_equals_the_reference_bit_for_bit_with_four_outliers_and_within_rounding_otherwise(int tokens, int columns, int rows, int outliers)
    {
        Assert.SkipUnless(Vector.IsHardwareAccelerated, "Vector<T> is not accelerated on this CPU");
        float[] x = TestData.Gaussian(tokens * columns, seed: tokens + columns, scale: 20f);
        float[] bias = TestData.Gaussian(rows, seed: rows);
        float[] weights = TestData.Gaussian(outliers * rows, seed: 3 * rows + outliers, scale: 0.1f);
        int[] outlierColumns = Enumerable.Range(0, outliers).Select(i => (i * 37 + 5) % columns).ToArray();
        float[] start = TestData.Gaussian(tokens * rows, seed: 11);
        float[] reference = (float[])start.Clone(), vector = [.. start, 777f];

        BiasAndOutliers.AddReference(x, tokens, columns, outlierColumns, bias, weights, reference);
        BiasAndOutliers.AddVector(x, tokens, columns, outlierColumns, bias, weights, vector.AsSpan(0, start.Length));

        Assert.Equal(777f, vector[^1]);
        bool unrolled = outliers == BiasAndOutliers.UnrolledOutliers && rows % Vector<float>.Count == 0;
        for (int i = 0; i < start.Length; i++)
        {
            if (unrolled)
            {
                Assert.Equal(reference[i], vector[i]);
            }
            else
            {
                // The TensorPrimitives passes round the product before adding: at most half an ulp per outlier.
                Assert.True(Math.Abs(reference[i] - vector[i]) <= 1e-5f * (1 + Math.Abs(reference[i])), $"[{i}] {vector[i]} against {reference[i]}");
            }
        }
    }

    [Fact]
    public void Reference_adds_the_bias_and_each_outlier_column_times_its_weights()
    {
        float[] x = [1f, 2f, 3f, /* token 2 */ -1f, 0.5f, 4f];
        float[] bias = [10f, 20f];
        float[] weights = [1f, 2f, /* column 2 */ 100f, 1000f];
        float[] y = [0.5f, 0.25f, 0f, 0f];
        BiasAndOutliers.Add(x, tokens: 2, columns: 3, outlierColumns: [0, 2], bias, weights, y, FloatPath.Reference);
        Assert.Equal([0.5f + 10 + 1 * 1 + 3 * 100, 0.25f + 20 + 1 * 2 + 3 * 1000, 10 - 1 + 4 * 100, 20 - 2 + 4 * 1000], y);
    }

    [Fact]
    public void An_outlier_column_outside_the_input_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            BiasAndOutliers.Add(new float[4], 1, 4, [4], new float[2], new float[2], new float[2]));
    }
}
