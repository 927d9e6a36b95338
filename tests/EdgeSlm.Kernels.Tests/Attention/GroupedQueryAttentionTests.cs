using EdgeSlm.Kernels.Attention;

namespace EdgeSlm.Kernels.Tests.Attention;

public sealed class GroupedQueryAttentionTests
{
    [Theory]
    [InlineData(1, 1, 1, 8)]
    [InlineData(4, 2, 5, 16)]
    [InlineData(9, 3, 33, 64)]
    [InlineData(14, 2, 100, 64)]
    [InlineData(2, 2, 7, 3)]
    // Scores are taken 8 positions at a time on x64 and 4 on ARM64, the rest one by one: blocks and tails of both.
    [InlineData(4, 2, 19, 4)]
    [InlineData(3, 1, 17, 32)]
    [InlineData(2, 1, 1000, 64)]
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
}
