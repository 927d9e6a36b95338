using EdgeSlm.Kernels.Activations;
using EdgeSlm.Kernels.Attention;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Normalization;
using EdgeSlm.Kernels.Positional;

namespace EdgeSlm.Kernels.Tests;

/// <summary>The decoder's float kernels: every tier against its reference (RoPE bit-exact, the others within a stated tolerance).</summary>
public sealed class DecoderKernelTests
{
    // Float tiers sum in a different order (and the references in double where ggml does): relative tolerance.
    private const float SumTolerance = 2e-5f;

    public static TheoryData<int> Lengths() => new() { 1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 100, 127, 128, 255, 256 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void RmsNorm_vector_equals_reference_within_float_rounding(int length)
    {
        float[] x = TestData.Gaussian(length, seed: length, scale: 3f);
        float[] weight = TestData.Gaussian(length, seed: length + 1000);
        var expected = new float[length + 1];
        var actual = new float[length + 1];
        expected[^1] = actual[^1] = 12345f; // guard past the end
        RmsNorm.ComputeReference(x, weight, 1e-5f, expected.AsSpan(0, length));
        RmsNorm.ComputeVector(x, weight, 1e-5f, actual.AsSpan(0, length));
        for (int i = 0; i < length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= SumTolerance * (1 + Math.Abs(expected[i])), $"{i}: {expected[i]} vs {actual[i]}");
        }
        Assert.Equal(12345f, actual[^1]);
    }

    [Fact]
    public void RmsNorm_of_a_zero_row_is_zero_and_an_empty_row_is_refused()
    {
        var y = new float[4];
        RmsNorm.Compute(new float[4], [1, 1, 1, 1], 1e-6f, y);
        Assert.Equal(new float[4], y);
        Assert.Throws<ArgumentException>(() => RmsNorm.Compute([], [], 1e-6f, []));
    }

    [Theory]
    [InlineData(RopeLayout.Interleaved, 2)]
    [InlineData(RopeLayout.Interleaved, 6)]
    [InlineData(RopeLayout.Interleaved, 16)]
    [InlineData(RopeLayout.Interleaved, 64)]
    [InlineData(RopeLayout.Interleaved, 128)]
    [InlineData(RopeLayout.Halves, 2)]
    [InlineData(RopeLayout.Halves, 6)]
    [InlineData(RopeLayout.Halves, 10)]
    [InlineData(RopeLayout.Halves, 64)]
    [InlineData(RopeLayout.Halves, 128)]
    public void Rope_vector_is_bit_exact_with_the_reference(RopeLayout layout, int headSize)
    {
        var table = new RopeTable(layout, headSize, positions: 300, frequencyBase: 10000f);
        foreach (int position in new[] { 0, 1, 17, 299 })
        {
            float[] heads = TestData.Gaussian(3 * headSize, seed: position + headSize);
            float[] expected = (float[])heads.Clone();
            table.ApplyReference(expected, position);
            table.ApplyVector128(heads, position);
            Assert.Equal(expected, heads);
        }
    }

    [Fact]
    public void Rope_rotates_the_pairs_each_layout_names_by_position_times_frequency()
    {
        const int d = 8;
        var interleaved = new RopeTable(RopeLayout.Interleaved, d, 8, 10000f);
        var halves = new RopeTable(RopeLayout.Halves, d, 8, 10000f);
        // Pair 1 (frequency 10000^(-2/8) = 0.1) at position 3: angle 0.3.
        float[] x = new float[d];
        x[2] = 1f; // interleaved pair 1 = dims (2, 3)
        interleaved.ApplyReference(x, 3);
        Assert.Equal(MathF.Cos(0.3f), x[2], 1e-6f);
        Assert.Equal(MathF.Sin(0.3f), x[3], 1e-6f);
        float[] y = new float[d];
        y[1] = 1f; // halves pair 1 = dims (1, 5)
        halves.ApplyReference(y, 3);
        Assert.Equal(MathF.Cos(0.3f), y[1], 1e-6f);
        Assert.Equal(MathF.Sin(0.3f), y[5], 1e-6f);
        Assert.Throws<ArgumentOutOfRangeException>(() => halves.Apply(y, 8));
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SwiGlu_vector_equals_reference_including_in_place(int length)
    {
        float[] gate = TestData.Gaussian(length, seed: length, scale: 4f);
        float[] up = TestData.Gaussian(length, seed: length + 7);
        var expected = new float[length];
        SwiGlu.ComputeReference(gate, up, expected);
        float[] inPlace = (float[])gate.Clone();
        SwiGlu.ComputeVector(inPlace, up, inPlace);
        for (int i = 0; i < length; i++)
        {
            Assert.True(Math.Abs(expected[i] - inPlace[i]) <= 1e-6f * (1 + Math.Abs(expected[i])), $"{i}: {expected[i]} vs {inPlace[i]}");
        }
    }

    [Theory]
    [InlineData(1, 1, 1, 8)]
    [InlineData(4, 2, 5, 16)]
    [InlineData(9, 3, 33, 64)]
    [InlineData(14, 2, 100, 64)]
    [InlineData(2, 2, 7, 3)]
    public void Grouped_query_attention_vector_equals_reference(int heads, int kvHeads, int length, int headSize)
    {
        float[] query = TestData.Gaussian(heads * headSize, seed: 1, scale: 2f);
        float[] keys = TestData.Gaussian(length * kvHeads * headSize, seed: 2, scale: 2f);
        float[] values = TestData.Gaussian(length * kvHeads * headSize, seed: 3);
        var expected = new float[heads * headSize];
        var actual = new float[heads * headSize];
        var scores = new float[length];
        float scale = 1f / MathF.Sqrt(headSize);
        GroupedQueryAttention.ComputeReference(query, keys, values, length, heads, kvHeads, headSize, scale, scores, expected);
        GroupedQueryAttention.ComputeVector(query, keys, values, length, heads, kvHeads, headSize, scale, scores, actual);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f, $"{i}: {expected[i]} vs {actual[i]}");
        }
    }

    [Fact]
    public void Grouped_query_attention_of_one_position_returns_its_value()
    {
        float[] values = [1, 2, 3, 4];
        var output = new float[8];
        GroupedQueryAttention.Compute(TestData.Gaussian(8, 1), TestData.Gaussian(4, 2), values, 1, heads: 2, kvHeads: 1, headSize: 4, 0.5f, new float[1], output);
        Assert.Equal(new float[] { 1, 2, 3, 4, 1, 2, 3, 4 }, output);
    }

    [Theory]
    [InlineData(QuantType.F32, 1, 1, 1)]
    [InlineData(QuantType.F32, 37, 33, 1)]
    [InlineData(QuantType.F32, 64, 256, 5)]
    [InlineData(QuantType.F16, 1, 3, 1)]
    [InlineData(QuantType.F16, 37, 33, 3)]
    [InlineData(QuantType.F16, 100, 255, 2)]
    public unsafe void Dense_products_equal_the_reference_on_one_and_two_threads(QuantType type, int rows, int columns, int tokens)
    {
        float[] w = TestData.Gaussian(rows * columns, seed: rows, scale: 0.5f);
        byte[] bytes = type == QuantType.F32
            ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.AsSpan()).ToArray()
            : System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.Select(v => (Half)v).ToArray().AsSpan()).ToArray();
        float[] x = TestData.Gaussian(tokens * columns, seed: columns);
        float[] rounded = (float[])x.Clone();
        if (type == QuantType.F16)
        {
            DenseMatMul.RoundToHalf(x, rounded);
        }
        var expected = new float[tokens * rows];
        fixed (byte* wp = bytes)
        fixed (float* xp = rounded)
        fixed (float* yp = expected)
        {
            DenseMatMul.RowsReference(type, wp, columns, xp, tokens, yp, rows, 0, rows);
        }
        foreach (int threads in new[] { 1, 2 })
        {
            using var pool = new QuantMatMul(threads);
            var dense = new DenseMatMul(pool);
            var actual = new float[tokens * rows];
            fixed (byte* wp = bytes)
            {
                dense.Multiply(type, wp, rows, columns, x, tokens, actual);
            }
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - actual[i]) <= SumTolerance * (1 + Math.Sqrt(columns)), $"{threads} threads, {i}: {expected[i]} vs {actual[i]}");
            }
        }
    }
}

public sealed class ParallelAttentionTests
{
    [Theory]
    [InlineData(1, 9, 3, 64, 1)]
    [InlineData(1, 14, 2, 64, 70)]
    [InlineData(7, 4, 2, 16, 1)]
    [InlineData(64, 9, 3, 64, 5)]
    [InlineData(300, 4, 4, 8, 2)]
    public void Batched_attention_on_two_threads_equals_the_vector_tier_per_token_bit_for_bit(int tokens, int heads, int kvHeads, int headSize, int firstLength)
    {
        int positions = firstLength - 1 + tokens;
        float[] queries = TestData.Gaussian(tokens * heads * headSize, seed: 1, scale: 2f);
        float[] keys = TestData.Gaussian(positions * kvHeads * headSize, seed: 2, scale: 2f);
        float[] values = TestData.Gaussian(positions * kvHeads * headSize, seed: 3);
        float scale = 1f / MathF.Sqrt(headSize);
        var expected = new float[queries.Length];
        var scores = new float[positions];
        for (int t = 0; t < tokens; t++)
        {
            GroupedQueryAttention.ComputeVector(queries.AsSpan(t * heads * headSize, heads * headSize), keys, values, firstLength + t,
                heads, kvHeads, headSize, scale, scores, expected.AsSpan(t * heads * headSize, heads * headSize));
        }
        foreach (int threads in new[] { 1, 2 })
        {
            using var pool = new EdgeSlm.Kernels.MatMul.QuantMatMul(threads);
            var attention = new ParallelGroupedQueryAttention(pool, positions);
            var actual = new float[queries.Length];
            attention.Compute(queries, keys, values, firstLength, tokens, heads, kvHeads, headSize, scale, actual);
            Assert.Equal(expected, actual);
        }
    }
}
