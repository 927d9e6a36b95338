using EdgeSlm.Kernels.Float;

namespace EdgeSlm.Kernels.Tests.Float;

public sealed class BatchProductsTests
{
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
    [InlineData(1, 1, 1)]
    [InlineData(3, 5, 7)]
    [InlineData(9, 6, 33)]
    [InlineData(32, 13, 1152)]
    public void Batch_logits_equal_the_reference_and_do_not_depend_on_the_class_range(int batch, int classes, int dimension)
    {
        var random = new Random(batch * 1000 + classes);
        const int examples = 40;
        float[] features = RandomFloats(random, examples * dimension), weights = RandomFloats(random, classes * dimension), bias = RandomFloats(random, classes);
        int[] rows = Enumerable.Range(0, batch).Select(_ => random.Next(examples)).ToArray(); // any order, repeats allowed
        var expected = new float[batch * classes];
        BatchProducts.LogitsReference(features, rows, weights, bias, dimension, 0, classes, expected);

        var whole = new float[batch * classes];
        BatchProducts.Logits(features, rows, weights, bias, dimension, 0, classes, whole);
        var split = new float[batch * classes];
        for (int first = 0; first < classes; first += 3) // ranges that cut across the four-class tiles
        {
            BatchProducts.Logits(features, rows, weights, bias, dimension, first, Math.Min(classes, first + 3), split);
        }
        Assert.Equal(whole, split);
        for (int i = 0; i < batch; i++)
        {
            for (int c = 0; c < classes; c++)
            {
                float scale = 1 + dimension; // |x|, |w| ≤ 1
                Assert.True(MathF.Abs(whole[i * classes + c] - expected[i * classes + c]) <= ReorderedSumTolerance * scale,
                    $"logit ({i}, {c}): {whole[i * classes + c]} against {expected[i * classes + c]}");
            }
        }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 5, 7)]
    [InlineData(32, 9, 33)]
    [InlineData(17, 13, 1152)]
    public void Batch_gradients_equal_the_reference_bit_for_bit(int batch, int classes, int dimension)
    {
        var random = new Random(batch * 1000 + classes);
        const int examples = 40;
        float[] features = RandomFloats(random, examples * dimension), weights = RandomFloats(random, classes * dimension), g = RandomFloats(random, batch * classes, 0.05f);
        int[] rows = Enumerable.Range(0, batch).Select(_ => random.Next(examples)).ToArray();
        int first = classes / 3, end = classes;
        var expected = new float[(end - first) * dimension + 1];
        var actual = new float[(end - first) * dimension + 1];
        expected[^1] = actual[^1] = 42f; // guard
        BatchProducts.GradientsReference(features, rows, g, weights, 1e-3f, classes, dimension, first, end, expected);
        BatchProducts.Gradients(features, rows, g, weights, 1e-3f, classes, dimension, first, end, actual);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Batch_products_reject_rows_outside_the_features()
    {
        float[] features = new float[4 * 3], weights = new float[2 * 3], bias = new float[2], scores = new float[2 * 2];
        Assert.Throws<ArgumentOutOfRangeException>(() => BatchProducts.Logits(features, [0, 4], weights, bias, 3, 0, 2, scores));
        Assert.Throws<ArgumentException>(() => BatchProducts.Logits(features, [0, 1], weights, bias, 3, 0, 3, scores));
    }

    /// <summary>Products of a few hundred terms, summed in another order: relative to the sum of |terms|.</summary>
    private const float ReorderedSumTolerance = 1e-5f;
}
